"""Model throughput: training forward+backward tokens/s (and MFU on a GPU), generation tokens/s.

    python benchmarks/bench_model.py                                   # CPU, float32, tiny and 125m
    python benchmarks/bench_model.py --device cuda --dtype bfloat16 --flash-only --compile

Training steps are forward, cross-entropy and backward on random tokens (no optimizer step);
tokens/s counts every position of the batch. MFU = flops_per_token(config, seq_len) * tokens/s
divided by the device's dense peak for the dtype (table below, or --peak-tflops). Generation is
greedy decoding of --new-tokens after a --prompt-tokens prompt, batch 1, with the KV cache and
without it (every step reruns the whole sequence). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model import Transformer, flops_per_token, num_params, preset  # noqa: E402
from model.generate import SamplingConfig, generate  # noqa: E402

# Dense (no sparsity) tensor-core peak in TFLOP/s, from the vendors' data sheets; float32 means TF32.
# The first substring found in torch.cuda.get_device_name() wins, so the more specific comes first.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bfloat16": 989.4, "float16": 989.4, "float32": 494.7}),
    ("H100 PCIe", {"bfloat16": 756.0, "float16": 756.0, "float32": 378.0}),
    ("H100", {"bfloat16": 989.4, "float16": 989.4, "float32": 494.7}),  # SXM
    ("A100", {"bfloat16": 312.0, "float16": 312.0, "float32": 156.0}),
    ("L40S", {"bfloat16": 362.05, "float16": 362.05, "float32": 183.0}),
    ("L4", {"bfloat16": 121.0, "float16": 121.0, "float32": 60.0}),
]

# Per preset: (vocab_size, batch, seq_len) on a CPU and on a GPU.
SHAPES = {
    "tiny": {"cpu": (512, 8, 256), "cuda": (512, 64, 256)},
    "125m": {"cpu": (32000, 2, 512), "cuda": (32000, 16, 2048)},
    "350m": {"cpu": (32000, 2, 512), "cuda": (32000, 8, 2048)},
    "1b": {"cpu": (32000, 1, 512), "cuda": (32000, 4, 2048)},
}


def peak_tflops(device: torch.device, dtype: torch.dtype) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks.get(str(dtype).removeprefix("torch."))
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(name: str, vocab_size: int, device: torch.device, dtype: torch.dtype) -> Transformer:
    torch.manual_seed(0)
    config = preset(name, vocab_size=vocab_size)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device=device)
    model.init_weights()
    model.to(dtype=dtype)
    model.init_rope()  # rotary tables stay float32
    return model


def bench_training(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    vocab_size, batch, seq_len = SHAPES[name][device.type]
    batch = args.batch or batch
    seq_len = args.seq_len or seq_len
    model = build(name, vocab_size, device, dtype).train()
    step_model = torch.compile(model) if args.compile else model
    tokens = torch.randint(0, vocab_size, (batch, seq_len + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        logits = step_model(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)

    steps = args.steps if name != "tiny" else max(args.steps, 10)
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - start
    tokens_per_s = batch * seq_len * steps / seconds
    achieved = flops_per_token(model.config, seq_len) * tokens_per_s / 1e12
    peak = args.peak_tflops or peak_tflops(device, dtype)
    return {
        "preset": name, "params": num_params(model.config), "batch": batch, "seq_len": seq_len,
        "steps": steps, "seconds": round(seconds, 3), "tokens_per_s": round(tokens_per_s, 1),
        "tflops": round(achieved, 4), "mfu": round(achieved / peak, 4) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }


def bench_generation(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    vocab_size = SHAPES[name][device.type][0]
    model = build(name, vocab_size, device, dtype).eval()
    prompt = torch.randint(0, vocab_size, (args.prompt_tokens,)).tolist()
    new_tokens = args.new_tokens if name == "tiny" else args.new_tokens_large
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=0)
    result = {"preset": name, "prompt_tokens": len(prompt), "new_tokens": new_tokens}
    for use_cache in (True, False):
        generate(model, prompt, SamplingConfig(max_new_tokens=4, temperature=0), use_cache=use_cache)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        produced = generate(model, prompt, sampling, use_cache=use_cache)
        synchronize(device)
        seconds = time.perf_counter() - start
        result["cache" if use_cache else "no_cache"] = round(len(produced) / seconds, 1)
    result["speedup"] = round(result["cache"] / result["no_cache"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--presets", default="tiny,125m", help="training presets (default tiny,125m)")
    parser.add_argument("--generate-presets", default="tiny,125m", help="generation presets (default tiny,125m)")
    parser.add_argument("--batch", type=int, default=None, help="override the preset's batch size")
    parser.add_argument("--seq-len", type=int, default=None, help="override the preset's sequence length")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (tiny runs at least 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=200, help="generated tokens, tiny")
    parser.add_argument("--new-tokens-large", type=int, default=32, help="generated tokens, larger presets")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: on a small busy machine two threads "
                             "that wait for each other are slower than one)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training model")
    parser.add_argument("--flash-only", action="store_true",
                        help="allow only the flash attention SDPA backend (fails where it cannot run)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU, if not in the table")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.flash_only:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backends = sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    else:
        backends = contextlib.nullcontext()

    training, generation = [], []
    with backends:
        for name in filter(None, args.presets.split(",")):
            training.append(bench_training(name, args, device, dtype))
        for name in filter(None, args.generate_presets.split(",")):
            generation.append(bench_generation(name, args, device, dtype))

    from rich.console import Console
    from rich.table import Table

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} threads"
    console = Console()
    table = Table(title=f"training forward+backward, {device_name}, {args.dtype}")
    for column in ("preset", "params", "batch x seq", "steps", "tokens/s", "TFLOP/s", "MFU"):
        table.add_column(column, justify="right")
    for r in training:
        table.add_row(r["preset"], f"{r['params'] / 1e6:.1f}M", f"{r['batch']} x {r['seq_len']}", str(r["steps"]),
                      f"{r['tokens_per_s']:,.0f}", f"{r['tflops']:.3f}", f"{r['mfu']:.1%}" if r["mfu"] else "-")
    console.print(table)
    table = Table(title="greedy generation, batch 1, tokens/s")
    for column in ("preset", "prompt", "new tokens", "KV cache", "no cache", "speedup"):
        table.add_column(column, justify="right")
    for r in generation:
        table.add_row(r["preset"], str(r["prompt_tokens"]), str(r["new_tokens"]), f"{r['cache']:,.1f}",
                      f"{r['no_cache']:,.1f}", f"{r['speedup']:.2f}x")
    console.print(table)
    print(json.dumps({"benchmark": "model", "device": device_name, "dtype": args.dtype, "compile": args.compile,
                      "flash_only": args.flash_only, "training": training, "generation": generation}))


if __name__ == "__main__":
    main()
