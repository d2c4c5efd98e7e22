import math

import pytest
import torch

from model import KVCache, ModelConfig, Transformer, preset
from model.transformer import apply_rope, rope_tables


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(preset("tiny", vocab_size=97, **overrides))
    model.init_weights()
    return model.eval()


def test_logits_have_batch_time_vocab_shape():
    model = tiny_model()
    tokens = torch.randint(0, 97, (3, 11))
    assert model(tokens).shape == (3, 11, 97)


def test_layers_are_a_module_list_of_blocks():
    model = tiny_model()
    assert isinstance(model.layers, torch.nn.ModuleList) and len(model.layers) == model.config.n_layers


@pytest.mark.parametrize("position", [0, 5, 15])
def test_changing_a_future_token_leaves_earlier_logits_unchanged(position):
    model = tiny_model()
    tokens = torch.randint(0, 97, (2, 16))
    changed = tokens.clone()
    changed[:, position] = (changed[:, position] + 1) % 97
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :position], after[:, :position], rtol=0, atol=0)
    assert not torch.allclose(before[:, position:], after[:, position:])


def test_rope_matches_complex_rotation():
    torch.manual_seed(0)
    head_dim, theta, T = 16, 500.0, 12
    x = torch.randn(2, 3, T, head_dim, dtype=torch.float64).float()
    cos, sin = rope_tables(head_dim, 32, theta)
    ours = apply_rope(x, cos[:T], sin[:T])

    # Reference: dimension i pairs with i + head_dim/2 as the real and imaginary parts of one
    # complex number, which turns by angle position * theta^(-2i / head_dim).
    half = head_dim // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())
    freqs = torch.tensor([theta ** (-2.0 * i / head_dim) for i in range(half)], dtype=torch.float64)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * freqs[None, :]
    turned = z * torch.polar(torch.ones_like(angle), angle)
    reference = torch.cat((turned.real, turned.imag), dim=-1).float()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    cos, sin = rope_tables(8, 64, 10000.0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i, j):
        return (apply_rope(q, cos[i:i + 1], sin[i:i + 1]) * apply_rope(k, cos[j:j + 1], sin[j:j + 1])).sum()

    torch.testing.assert_close(score(7, 3), score(40, 36), rtol=1e-5, atol=1e-5)


def test_meta_build_then_init_weights_gives_finite_weights_with_the_planned_std():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=1000, dim=256, n_layers=4, n_heads=4, multiple_of=64)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    model.init_weights()
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    truncation = 0.9866  # std of a normal truncated at 3 std, relative to the untruncated std
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    block = model.layers[1]
    for weight, std in [(block.attention.q_proj.weight, 0.02), (block.feed_forward.up_proj.weight, 0.02),
                        (block.attention.out_proj.weight, residual_std),
                        (block.feed_forward.down_proj.weight, residual_std),
                        (model.tok_embeddings.weight, 0.02), (model.output.weight, 0.02)]:
        assert weight.std().item() == pytest.approx(std * truncation, rel=0.03)
        assert weight.abs().max().item() <= 3 * std + 1e-7
    assert torch.equal(block.attention_norm.weight, torch.ones(256))
    reference_cos, _ = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
    assert torch.equal(model.rope_cos, reference_cos)
    assert "rope_cos" not in model.state_dict()


def test_tied_embeddings_have_no_separate_output_matrix():
    model = tiny_model(tie_embeddings=True)
    assert model.output is None
    assert "output.weight" not in model.state_dict()
    tokens = torch.randint(0, 97, (1, 5))
    with torch.no_grad():
        hidden = model.tok_embeddings(tokens)
        for block in model.layers:
            hidden = block(hidden, model.rope_cos[:5], model.rope_sin[:5])
        torch.testing.assert_close(model(tokens), model.norm(hidden) @ model.tok_embeddings.weight.T)


def test_backward_reaches_every_parameter():
    model = tiny_model().train()
    tokens = torch.randint(0, 97, (2, 9))
    model(tokens).logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("chunks", [[16], [10, 1, 1, 4], [1] * 8 + [8], [3, 5, 8]])
def test_kv_cache_forward_in_chunks_equals_one_forward(chunks):
    model = tiny_model()
    tokens = torch.randint(0, 97, (2, sum(chunks)))
    cache = KVCache(model.config, batch_size=2, max_len=sum(chunks))
    pieces, start = [], 0
    with torch.no_grad():
        for size in chunks:
            pieces.append(model(tokens[:, start:start + size], cache))
            start += size
        full = model(tokens)
    assert cache.length == sum(chunks)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_sequence_longer_than_the_context_is_an_error():
    model = tiny_model(max_seq_len=8)
    with pytest.raises(ValueError, match="exceeds max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_flash_attention_backend_runs_grouped_query_attention_on_gpu():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=256, dim=256, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cuda")
    model.init_weights()
    model.to(torch.bfloat16)
    model.init_rope()
    tokens = torch.randint(0, 256, (2, 128), device="cuda")
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        flash = model(tokens)
        flash.float().logsumexp(-1).mean().backward()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        math_logits = model(tokens)
    torch.testing.assert_close(flash.detach().float(), math_logits.float(), rtol=0.05, atol=0.05)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
