"""The `winnow train` command: check the job, then start torchrun with one process per rank."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

EXIT_BAD_INPUT = 2  # a bad job file: nothing started


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `train`; its parser's `handler` default is the run function, which returns an exit code."""
    train = subparsers.add_parser(
        "train", help="train a model on token shards (FSDP2 under torchrun)",
        description="Train a model on a token directory as the job file says, with one process per rank "
                    "under torchrun. The run resumes from its newest complete checkpoint. For several "
                    "machines, start `torchrun ... -m train JOB` on each instead.",
    )
    train.add_argument("job", help="training job file (TOML), e.g. jobs/train-tiny.toml")
    train.add_argument("--processes", type=int, default=None,
                       help="processes on this machine (default: the job's parallel.processes)")
    train.set_defaults(handler=run_train)


def torchrun_command(job_path: str, processes: int) -> list[str]:
    """The single-machine torchrun command line for a job."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "train", job_path]


def run_train(args: argparse.Namespace) -> int:
    from pipeline.configfile import ConfigError
    from train.config import load_train_job

    try:
        job = load_train_job(args.job)
    except ConfigError as error:
        print(f"winnow train: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    processes = args.processes or job.parallel.processes
    if processes < 1:
        print("winnow train: error: --processes must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    env = dict(os.environ)
    # Share the cores between the processes rather than letting each start one thread per core.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return subprocess.call(torchrun_command(args.job, processes), env=env)
