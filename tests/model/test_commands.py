import argparse
import json

import pytest

from model.commands import EXIT_BAD_INPUT, add_commands
from model.generate import SamplingConfig, generate
from model.model_dir import load_model_dir


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="winnow")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse(argv)
    return args.handler(args)


def test_generate_streams_the_greedy_continuation(model_dir, capsys):
    source = model_dir(False)
    code = run(["generate", "--checkpoint", str(source), "--prompt", "The baker", "--max-new-tokens", "20",
                "--temperature", "0"])
    out = capsys.readouterr().out
    loaded = load_model_dir(source)
    prompt = loaded.tokenizer.encode("The baker").ids
    tokens = generate(loaded.model, prompt, SamplingConfig(max_new_tokens=20, temperature=0,
                                                          stop_token_id=loaded.end_of_text_id))
    assert code == 0
    assert out == "The baker" + loaded.tokenizer.decode(tokens) + "\n"


def test_generate_with_a_seed_repeats_and_reads_a_hugging_face_export(model_dir, tmp_path, capsys):
    assert run(["export-hf", str(model_dir(True)), str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    outputs = []
    for checkpoint in (model_dir(True), tmp_path / "hf"):
        code = run(["generate", "--checkpoint", str(checkpoint), "--prompt", "", "--max-new-tokens", "15",
                    "--top-k", "50", "--top-p", "0.95", "--temperature", "1.0", "--seed", "3"])
        assert code == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_export_prints_where_the_files_went(model_dir, tmp_path, capsys):
    assert run(["export-hf", str(model_dir(False)), str(tmp_path / "out")]) == 0
    assert "config.json" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "llama"


@pytest.mark.parametrize("argv, message", [
    (["generate", "--checkpoint", "{missing}"], "not a directory"),
    (["generate", "--checkpoint", "{empty}"], "neither model.json"),
    (["generate", "--checkpoint", "{model}", "--top-p", "2"], "top_p must be in (0, 1]"),
    (["export-hf", "{missing}", "{out}"], "model.json: not found"),
    (["export-hf", "{bad_config}", "{out}"], "unknown key(s) ['width']"),
])
def test_errors_are_one_line_and_a_non_zero_exit(argv, message, model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad_config"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps({"format_version": 1, "config": {"width": 3}}))
    paths = dict(missing=tmp_path / "missing", empty=tmp_path / "empty", model=model_dir(False),
                 out=tmp_path / "out", bad_config=bad)
    code = run([part.format(**paths) for part in argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert message in err and err.count("\n") == 1 and err.startswith("winnow ")
