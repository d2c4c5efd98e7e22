"""`winnow train`: registration, the torchrun command line, bad jobs stop before anything starts."""

from __future__ import annotations

import argparse
import sys

from train.commands import add_commands, run_train, torchrun_command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winnow")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def test_registers_train_with_a_handler():
    args = parser().parse_args(["train", "jobs/train-tiny.toml", "--processes", "3"])
    assert args.handler is run_train and args.job == "jobs/train-tiny.toml" and args.processes == 3


def test_torchrun_command():
    assert torchrun_command("job.toml", 2) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                               "--nproc_per_node=2", "-m", "train", "job.toml"]


def test_a_bad_job_returns_2_without_starting(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "x"\noutput_dir = "out/x"\n[data]\npath = "t"\n[model]\npreset = "tiny"\n'
                   '[train]\nsteps = 1\nbatch = 3\n')
    args = parser().parse_args(["train", str(job)])
    assert args.handler(args) == 2
    assert "train: unknown key 'batch'" in capsys.readouterr().err
