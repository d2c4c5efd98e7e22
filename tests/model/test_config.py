import pytest
import torch

from model import PRESETS, ModelConfig, ModelConfigError, Transformer, flops_per_token, num_params, preset
from model.config import llama_ffn_dim


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_on_meta_with_the_closed_form_count(name):
    config = preset(name, vocab_size=32000)
    with torch.device("meta"):
        model = Transformer(config)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == num_params(config)
    table = model.tok_embeddings.weight.numel()
    expected_non_embedding = num_params(config) - (0 if config.tie_embeddings else table)
    assert num_params(config, embedding=False) == expected_non_embedding


def test_tiny_is_well_under_a_million_parameters():
    assert num_params(preset("tiny", vocab_size=512)) < 250_000


def test_7b_has_llama_2_7b_shapes_and_count():
    config = preset("7b", vocab_size=32000)
    assert (config.dim, config.n_layers, config.n_heads, config.n_kv_heads, config.ffn_dim) == (4096, 32, 32, 32, 11008)
    assert num_params(config) == 6_738_415_616  # Llama-2-7b-hf, counted from its safetensors


def test_ffn_dim_is_derived_llama_style_or_explicit():
    assert llama_ffn_dim(4096, 256) == 11008
    assert ModelConfig(vocab_size=10, dim=64, n_layers=1, n_heads=4, multiple_of=16).ffn_dim == 176
    assert ModelConfig(vocab_size=10, dim=64, n_layers=1, n_heads=4, ffn_dim=100).ffn_dim == 100
    assert ModelConfig(vocab_size=10, dim=64, n_layers=1, n_heads=4).n_kv_heads == 4


@pytest.mark.parametrize("fields, message", [
    (dict(dim=100, n_heads=3), "not divisible by n_heads=3: pick n_heads from"),
    (dict(dim=96, n_heads=32), "odd"),
    (dict(n_heads=4, n_kv_heads=3), "pick n_kv_heads from [1, 2, 4]"),
    (dict(vocab_size=0), "vocab_size must be a whole number >= 1"),
    (dict(norm_eps=0), "norm_eps must be a number > 0"),
    (dict(tie_embeddings="yes"), "tie_embeddings must be true or false"),
])
def test_invalid_configs_say_how_to_fix(fields, message):
    base = dict(vocab_size=10, dim=64, n_layers=1, n_heads=4)
    with pytest.raises(ModelConfigError, match="^.*" + message.replace("[", r"\[").replace("]", r"\]")):
        ModelConfig(**{**base, **fields})


def test_config_is_frozen_and_keyword_only():
    config = preset("tiny", vocab_size=16)
    with pytest.raises(AttributeError):
        config.dim = 8
    with pytest.raises(TypeError):
        ModelConfig(16, 64, 1, 4)


def test_from_dict_round_trips_and_rejects_unknown_keys():
    config = preset("125m", vocab_size=1000)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ModelConfigError, match=r"unknown key\(s\) \['hidden'\]; allowed: \["):
        ModelConfig.from_dict({**config.to_dict(), "hidden": 3}, where="model.json")
    with pytest.raises(ModelConfigError, match=r"missing key\(s\) \['dim'\]"):
        ModelConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "dim"})


def test_unknown_preset_names_the_choices():
    with pytest.raises(ModelConfigError, match=r"choose one of \['125m', '1b', '350m', '7b', 'tiny'\]"):
        preset("13b", vocab_size=10)
    with pytest.raises(ModelConfigError, match="unknown override"):
        preset("tiny", vocab_size=10, width=3)


def test_flops_per_token_is_6n_plus_attention():
    config = preset("7b", vocab_size=32000)
    n = num_params(config) - 32000 * 4096  # untied: the input table is a lookup
    assert flops_per_token(config, 4096) == 6 * n + 12 * 32 * 32 * 128 * 4096
    tied = preset("125m", vocab_size=32000)
    assert flops_per_token(tied, 1) == 6 * num_params(tied) + 12 * 12 * 12 * 64
