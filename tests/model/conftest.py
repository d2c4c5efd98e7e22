"""Fixtures for the model tests: a small byte-level BPE tokenizer and briefly trained tiny models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model import Transformer, preset
from model.model_dir import END_OF_TEXT, PAD
from tests.fixtures.torch_threads import one_torch_thread  # noqa: F401  (autouse)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TEXT_FILE = FIXTURES / "model_text.txt"


def text_lines() -> list[str]:
    return [line for line in TEXT_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_tokenizer(vocab_size: int = 384) -> Tokenizer:
    """Byte-level BPE with <|endoftext|> and <|pad|> as special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(text_lines(), trainer=trainer)
    return tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return build_tokenizer()


def train_tiny(tokenizer: Tokenizer, *, tie_embeddings: bool, steps: int = 80, seed: int = 0) -> Transformer:
    """A tiny model trained for a few steps on the fixture text, so its logits are far from uniform."""
    torch.manual_seed(seed)
    eot = tokenizer.token_to_id(END_OF_TEXT)
    ids: list[int] = []
    for line in text_lines():
        ids += tokenizer.encode(line).ids + [eot]
    data = torch.tensor(ids)
    config = preset("tiny", vocab_size=tokenizer.get_vocab_size(), tie_embeddings=tie_embeddings,
                    max_seq_len=128)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    model.init_weights()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seq_len, batch = 48, 8
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,))
        x = torch.stack([data[s:s + seq_len] for s in starts])  # (B, T)
        y = torch.stack([data[s + 1:s + seq_len + 1] for s in starts])
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_model(tokenizer) -> Callable[[bool], Transformer]:
    """trained_model(tie_embeddings) -> the same trained tiny model on every call."""
    cache: dict[bool, Transformer] = {}

    def get(tie_embeddings: bool = False) -> Transformer:
        if tie_embeddings not in cache:
            cache[tie_embeddings] = train_tiny(tokenizer, tie_embeddings=tie_embeddings)
        return cache[tie_embeddings]

    return get


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer, trained_model) -> Callable[[bool], Path]:
    """model_dir(tie_embeddings) -> a saved model directory of the trained tiny model."""
    from model.model_dir import save_model_dir

    cache: dict[bool, Path] = {}

    def get(tie_embeddings: bool = False) -> Path:
        if tie_embeddings not in cache:
            out = tmp_path_factory.mktemp("tied" if tie_embeddings else "untied") / "model"
            cache[tie_embeddings] = save_model_dir(out, trained_model(tie_embeddings), tokenizer)
        return cache[tie_embeddings]

    return get
