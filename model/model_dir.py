"""The model directory: model.json (the ModelConfig), model.safetensors and tokenizer.json.

```
model.json          {"format_version": 1, "config": {ModelConfig fields}}
model.safetensors   the state dict under our parameter names, in the dtype it was saved in
tokenizer.json      a Hugging Face `tokenizers` file; carries the special tokens
```
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from model.config import ModelConfig, ModelConfigError
from model.transformer import Transformer

FORMAT_VERSION = 1
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"

# Special tokens the curation pipeline's tokenizer defines.
END_OF_TEXT = "<|endoftext|>"
PAD = "<|pad|>"


class ModelDirError(ValueError):
    """A model directory that cannot be read or written, in one line naming the file."""


@dataclass
class LoadedModel:
    """A model ready to run, its tokenizer, and the token that ends a text (None if it has none)."""

    model: Transformer
    tokenizer: Tokenizer
    end_of_text_id: int | None

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def save_model_dir(out_dir: str | Path, model: Transformer, tokenizer: Tokenizer | str | Path) -> Path:
    """Write `model` and its tokenizer (a Tokenizer or a tokenizer.json path) to `out_dir`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(tokenizer, Tokenizer):
        tokenizer.save(str(out / TOKENIZER_FILE))
        tokenizer_obj = tokenizer
    else:
        source = Path(tokenizer)
        if not source.is_file():
            raise ModelDirError(f"{source}: tokenizer file not found")
        if source.resolve() != (out / TOKENIZER_FILE).resolve():
            shutil.copyfile(source, out / TOKENIZER_FILE)
        tokenizer_obj = Tokenizer.from_file(str(source))
    _check_vocab(model.config, tokenizer_obj, out / TOKENIZER_FILE)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    document = {"format_version": FORMAT_VERSION, "config": model.config.to_dict()}
    (out / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return out


def read_model_config(model_dir: str | Path) -> ModelConfig:
    """The ModelConfig from a directory's model.json."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelDirError(f"{path}: not found; a model directory holds {CONFIG_FILE}, {WEIGHTS_FILE} "
                            f"and {TOKENIZER_FILE}")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(document, dict) or "config" not in document:
        raise ModelDirError(f"{path}: expected an object with keys 'format_version' and 'config'")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelDirError(f"{path}: format_version {version!r} is not supported; this version reads "
                            f"{FORMAT_VERSION}")
    if not isinstance(document["config"], dict):
        raise ModelDirError(f"{path}: 'config' must be an object of ModelConfig fields")
    try:
        return ModelConfig.from_dict(document["config"], where=f"{path}: config")
    except ModelConfigError as error:
        raise ModelDirError(str(error)) from None


def load_model_dir(model_dir: str | Path, *, device: torch.device | str = "cpu",
                   dtype: torch.dtype | None = None) -> LoadedModel:
    """Read a model directory; weights keep their saved dtype unless `dtype` is given."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelDirError(f"{root}: not a directory")
    config = read_model_config(root)
    tokenizer = read_tokenizer(root / TOKENIZER_FILE)
    _check_vocab(config, tokenizer, root / TOKENIZER_FILE)
    state = read_safetensors(root / WEIGHTS_FILE)
    model = build_from_state(config, state, source=root / WEIGHTS_FILE, device=device, dtype=dtype)
    return LoadedModel(model=model, tokenizer=tokenizer, end_of_text_id=tokenizer.token_to_id(END_OF_TEXT))


def read_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise ModelDirError(f"{path}: not found; the model directory needs its tokenizer")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises plain Exception for malformed files
        raise ModelDirError(f"{path}: not a tokenizers file ({error})") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelDirError(f"{path}: not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ModelDirError(f"{path}: not a readable safetensors file ({error})") from None


def check_state(config: ModelConfig, state: dict[str, torch.Tensor], source: Path) -> None:
    """Raise unless `state` (our names) has exactly the tensors and shapes `config` implies."""
    with torch.device("meta"):
        expected = {name: tuple(p.shape) for name, p in Transformer(config).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelDirError(f"{source}: weights do not match the config: missing {_few(missing)}, "
                            f"unexpected {_few(extra)}")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise ModelDirError(f"{source}: {name} has shape {tuple(state[name].shape)}, the config "
                                f"implies {shape}")


def _few(names: list[str]) -> str:
    return "[" + ", ".join(names[:4]) + (f", ... {len(names) - 4} more]" if len(names) > 4 else "]")


def build_from_state(config: ModelConfig, state: dict[str, torch.Tensor], *, source: Path,
                     device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> Transformer:
    """A Transformer in eval mode holding exactly `state` (our names), in `dtype` or the state's own."""
    check_state(config, state, source)
    with torch.device("meta"):
        model = Transformer(config)
    model.to(dtype=dtype or state["tok_embeddings.weight"].dtype)
    model.to_empty(device=device)
    model.init_rope()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(state[name])
    model.eval()
    return model


def _check_vocab(config: ModelConfig, tokenizer: Tokenizer, path: Path) -> None:
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > config.vocab_size:
        raise ModelDirError(f"{path}: the tokenizer has {size} tokens but the model's vocab_size is "
                            f"{config.vocab_size}; use the tokenizer the model was trained with")
