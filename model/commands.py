"""The `winnow generate` and `winnow export-hf` commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys

# torch and the model modules load inside the run functions: registering the commands must
# not slow down every other `winnow` command.

EXIT_BAD_INPUT = 2  # a missing or malformed model directory, a bad option: nothing ran


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `generate` and `export-hf`; each parser's `handler` default is its run function."""
    generate = subparsers.add_parser(
        "generate", help="continue a prompt with a trained model, streaming the text",
        description="Continue a prompt with a trained model and print the text as it is produced. "
                    "Temperature 0 is greedy decoding.",
    )
    generate.add_argument("--checkpoint", required=True,
                          help="model directory (model.json) or Hugging Face export (config.json)")
    generate.add_argument("--prompt", default="",
                          help="text to continue; empty starts a new document after <|endoftext|>")
    generate.add_argument("--max-new-tokens", type=int, default=128, help="at most this many tokens (default 128)")
    generate.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    generate.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens only")
    generate.add_argument("--top-p", type=float, default=None,
                          help="sample from the smallest set of tokens holding this much probability")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    generate.add_argument("--device", default="cpu", help="torch device to run on (default cpu)")
    generate.set_defaults(handler=run_generate)

    export = subparsers.add_parser(
        "export-hf", help="write a model directory in Hugging Face Llama format",
        description="Write a model directory as a Hugging Face Llama directory that "
                    "AutoModelForCausalLM and AutoTokenizer load offline.",
    )
    export.add_argument("checkpoint", help="model directory (model.json, model.safetensors, tokenizer.json)")
    export.add_argument("out_dir", help="output directory; must be new or empty")
    export.add_argument("--overwrite", action="store_true", help="write into a directory that is not empty")
    export.set_defaults(handler=run_export)


def _fail(command: str, message: str) -> int:
    print(f"winnow {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_generate(args: argparse.Namespace) -> int:
    """Load the checkpoint, print the prompt, then each piece of text as soon as it decodes."""
    import torch
    from tokenizers.decoders import DecodeStream

    from model.config import ModelConfigError
    from model.generate import SamplingConfig, stream_tokens
    from model.hf import open_model_dir
    from model.model_dir import ModelDirError

    try:
        sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p)
        device = torch.device(args.device)
        loaded = open_model_dir(args.checkpoint, device=device)
    except (ModelDirError, ModelConfigError, ValueError, RuntimeError) as error:
        return _fail("generate", str(error))
    tokenizer = loaded.tokenizer
    prompt = tokenizer.encode(args.prompt, add_special_tokens=False).ids
    if not prompt:
        if loaded.end_of_text_id is None:
            return _fail("generate", f"{args.checkpoint}: the tokenizer has no end-of-text token to start "
                                     f"from; give a non-empty --prompt")
        prompt = [loaded.end_of_text_id]
    sampling = dataclasses.replace(sampling, stop_token_id=loaded.end_of_text_id)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    decoder = DecodeStream(skip_special_tokens=True)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    try:
        for token_id in stream_tokens(loaded.model, prompt, sampling, generator=generator):
            piece = decoder.step(tokenizer, token_id)
            if piece:
                sys.stdout.write(piece)
                sys.stdout.flush()
    except ValueError as error:
        sys.stdout.write("\n")
        return _fail("generate", str(error))
    sys.stdout.write("\n")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export the model directory; prints where the files went."""
    from model.config import ModelConfigError
    from model.hf import export_hf
    from model.model_dir import ModelDirError

    try:
        out = export_hf(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    except (ModelDirError, ModelConfigError) as error:
        return _fail("export-hf", str(error))
    files = ", ".join(sorted(path.name for path in out.iterdir()))
    print(f"exported {args.checkpoint} to {out} ({files})")
    return 0
