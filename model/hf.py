"""Hugging Face Llama format: export a model directory, import one back.

An export loads offline with `AutoModelForCausalLM.from_pretrained(out_dir)` (as
`LlamaForCausalLM`) and `AutoTokenizer.from_pretrained(out_dir)`. Our rotary layout is the one
Hugging Face's Llama uses, so weights map by name only, with no permutation.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from model.config import ModelConfig, ModelConfigError
from model.model_dir import (
    CONFIG_FILE,
    END_OF_TEXT,
    PAD,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    ModelDirError,
    build_from_state,
    check_state,
    load_model_dir,
    read_model_config,
    read_safetensors,
    read_tokenizer,
    save_model_dir,
)

HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"

_TOP_LEVEL = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_PER_LAYER = {
    "attention_norm.weight": "input_layernorm.weight",
    "attention.q_proj.weight": "self_attn.q_proj.weight",
    "attention.k_proj.weight": "self_attn.k_proj.weight",
    "attention.v_proj.weight": "self_attn.v_proj.weight",
    "attention.out_proj.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "feed_forward.gate_proj.weight": "mlp.gate_proj.weight",
    "feed_forward.up_proj.weight": "mlp.up_proj.weight",
    "feed_forward.down_proj.weight": "mlp.down_proj.weight",
}
_TOP_LEVEL_BACK = {hf: ours for ours, hf in _TOP_LEVEL.items()}
_PER_LAYER_BACK = {hf: ours for ours, hf in _PER_LAYER.items()}


def hf_name(name: str) -> str:
    """Our parameter name -> the LlamaForCausalLM name."""
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if match is None or match.group(2) not in _PER_LAYER:
        raise KeyError(f"no Hugging Face name for parameter {name!r}")
    return f"model.layers.{match.group(1)}.{_PER_LAYER[match.group(2)]}"


def our_name(name: str) -> str:
    """A LlamaForCausalLM parameter name -> ours."""
    if name in _TOP_LEVEL_BACK:
        return _TOP_LEVEL_BACK[name]
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    if match is None or match.group(2) not in _PER_LAYER_BACK:
        raise KeyError(f"unsupported Llama parameter {name!r}")
    return f"layers.{match.group(1)}.{_PER_LAYER_BACK[match.group(2)]}"


def hf_config(config: ModelConfig, *, bos_id: int | None, eos_id: int | None, pad_id: int | None,
              dtype: torch.dtype) -> dict[str, Any]:
    """The LlamaConfig (config.json) for `config`."""
    dtype_name = str(dtype).removeprefix("torch.")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "intermediate_size": config.ffn_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_seq_len,
        "initializer_range": config.init_std,
        "rms_norm_eps": config.norm_eps,
        # transformers 5 reads rope_parameters; earlier versions read rope_theta.
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "use_cache": True,
        "dtype": dtype_name,
        "torch_dtype": dtype_name,
    }


def export_hf(model_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write our model directory as a Hugging Face Llama directory; returns `out_dir`.

    `<|endoftext|>` serves as both bos and eos (documents are separated by it, none starts with a
    bos of its own) and `<|pad|>` as pad, when the tokenizer has them. Tied embeddings are
    written once, as `model.embed_tokens.weight`, with `tie_word_embeddings: true`.
    """
    from safetensors.torch import save_file

    source = Path(model_dir)
    config = read_model_config(source)
    tokenizer = read_tokenizer(source / TOKENIZER_FILE)
    state = read_safetensors(source / WEIGHTS_FILE)
    check_state(config, state, source / WEIGHTS_FILE)

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelDirError(f"{out}: exists and is not a directory; choose another output directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ModelDirError(f"{out}: directory is not empty; choose a new one or pass overwrite")
    out.mkdir(parents=True, exist_ok=True)

    eos_id = tokenizer.token_to_id(END_OF_TEXT)
    pad_id = tokenizer.token_to_id(PAD)
    dtype = state["tok_embeddings.weight"].dtype
    hf_state = {hf_name(name): tensor.contiguous() for name, tensor in state.items()}
    save_file(hf_state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json(out / HF_CONFIG_FILE, hf_config(config, bos_id=eos_id, eos_id=eos_id, pad_id=pad_id, dtype=dtype))
    generation = {"bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": pad_id}
    _write_json(out / "generation_config.json", {k: v for k, v in generation.items() if v is not None})

    shutil.copyfile(source / TOKENIZER_FILE, out / TOKENIZER_FILE)
    special = {}
    if eos_id is not None:
        special.update(bos_token=END_OF_TEXT, eos_token=END_OF_TEXT)
    if pad_id is not None:
        special["pad_token"] = PAD
    added = json.loads((source / TOKENIZER_FILE).read_text()).get("added_tokens", [])
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "model_max_length": config.max_seq_len,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(token["id"]): {key: token[key] for key in
                               ("content", "lstrip", "rstrip", "normalized", "single_word", "special")
                               if key in token}
            for token in added
        },
    })
    _write_json(out / "special_tokens_map.json", special)
    return out


def read_hf_config(hf_dir: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Our ModelConfig from a Llama config.json, and the raw JSON; unsupported features are errors."""
    path = hf_dir / HF_CONFIG_FILE
    if not path.is_file():
        raise ModelDirError(f"{path}: not found; a Hugging Face model directory holds {HF_CONFIG_FILE}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(f"{path}: not readable JSON ({error})") from None
    if raw.get("model_type") != "llama":
        raise ModelDirError(f"{path}: model_type is {raw.get('model_type')!r}; only 'llama' can be imported")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    unsupported = {
        "rope_type": (rope_type, "default"),
        "hidden_act": (raw.get("hidden_act", "silu"), "silu"),
        "attention_bias": (raw.get("attention_bias", False), False),
        "mlp_bias": (raw.get("mlp_bias", False), False),
    }
    for key, (value, allowed) in unsupported.items():
        if value != allowed:
            raise ModelDirError(f"{path}: {key}={value!r} is not supported; only {allowed!r} maps onto this model")
    try:
        hidden, heads = raw["hidden_size"], raw["num_attention_heads"]
        head_dim = raw.get("head_dim") or hidden // heads
        if head_dim * heads != hidden:
            raise ModelDirError(f"{path}: head_dim={head_dim} with {heads} heads != hidden_size={hidden}; "
                                f"only head_dim = hidden_size / num_attention_heads is supported")
        config = ModelConfig(
            vocab_size=raw["vocab_size"],
            dim=hidden,
            n_layers=raw["num_hidden_layers"],
            n_heads=heads,
            n_kv_heads=raw.get("num_key_value_heads") or heads,
            ffn_dim=raw["intermediate_size"],
            norm_eps=raw.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", raw.get("rope_theta", 10000.0)),
            max_seq_len=raw.get("max_position_embeddings", 2048),
            tie_embeddings=raw.get("tie_word_embeddings", False),
            init_std=raw.get("initializer_range", 0.02),
        )
    except KeyError as error:
        raise ModelDirError(f"{path}: missing key {error.args[0]!r}") from None
    except ModelConfigError as error:
        raise ModelDirError(f"{path}: {error}") from None
    return config, raw


def _read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    single = hf_dir / WEIGHTS_FILE
    if single.is_file():
        return read_safetensors(single)
    index = hf_dir / HF_WEIGHTS_INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            state.update(read_safetensors(hf_dir / shard))
        return state
    raise ModelDirError(f"{hf_dir}: no {WEIGHTS_FILE} or {HF_WEIGHTS_INDEX}; only safetensors weights "
                        f"can be imported (re-save the model with safe_serialization)")


def import_hf(hf_dir: str | Path, out_dir: str | Path | None = None, *, device: torch.device | str = "cpu",
              dtype: torch.dtype | None = None) -> LoadedModel:
    """Read a Hugging Face Llama directory as our model; also save it as a model directory at `out_dir`."""
    root = Path(hf_dir)
    if not root.is_dir():
        raise ModelDirError(f"{root}: not a directory")
    config, raw = read_hf_config(root)
    tokenizer = read_tokenizer(root / TOKENIZER_FILE)
    hf_state = _read_hf_weights(root)
    state = {}
    for name, tensor in hf_state.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue  # a derived buffer some older checkpoints store
        if name == "lm_head.weight" and config.tie_embeddings:
            continue  # tied: the embedding table is the output projection
        try:
            state[our_name(name)] = tensor
        except KeyError as error:
            raise ModelDirError(f"{root}: {error.args[0]}") from None
    model = build_from_state(config, state, source=root, device=device, dtype=dtype)
    eos = raw.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if eos is None:
        eos = tokenizer.token_to_id(END_OF_TEXT)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, end_of_text_id=eos)
    if out_dir is not None:
        save_model_dir(out_dir, model, tokenizer)
    return loaded


def open_model_dir(path: str | Path, *, device: torch.device | str = "cpu",
                   dtype: torch.dtype | None = None) -> LoadedModel:
    """Load either format: our model directory (model.json) or a Hugging Face Llama directory (config.json)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelDirError(f"{root}: not a directory; give a model directory or a Hugging Face export")
    if (root / CONFIG_FILE).is_file():
        return load_model_dir(root, device=device, dtype=dtype)
    if (root / HF_CONFIG_FILE).is_file():
        return import_hf(root, device=device, dtype=dtype)
    raise ModelDirError(f"{root}: neither model.json (a model directory) nor {HF_CONFIG_FILE} "
                        f"(a Hugging Face export) is there")


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")
