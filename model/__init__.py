"""The decoder-only transformer: architecture only (tokens in, logits out).

`config` holds shapes, presets and closed-form counts; `transformer` the modules; `kv_cache`
the decoding cache; `generate` sampling; `model_dir` and `hf` the saved formats; `commands`
the `generate` and `export-hf` command lines. Names load on first use, so the `winnow`
command line does not import torch until a model command runs.
"""

import importlib

_EXPORTS = {
    "PRESETS": "model.config",
    "ModelConfig": "model.config",
    "ModelConfigError": "model.config",
    "flops_per_token": "model.config",
    "num_params": "model.config",
    "preset": "model.config",
    "KVCache": "model.kv_cache",
    "Transformer": "model.transformer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
