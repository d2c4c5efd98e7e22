"""`python -m train JOB`: one training process; torchrun starts one per rank."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

EXIT_BAD_INPUT = 2  # the job, its data or its checkpoint cannot be used as given


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="Run one rank of a training job.")
    parser.add_argument("job", help="training job file (TOML)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from model.config import ModelConfigError
    from model.model_dir import ModelDirError
    from pipeline.configfile import ConfigError
    from train.checkpoint import CheckpointError
    from train.config import load_train_job
    from train.loader import LoaderStateError
    from train.shards import TokenShardError
    from train.trainer import TrainSetupError, run_job

    rank = os.environ.get("RANK", "0")
    try:
        run_job(load_train_job(args.job))
    except (ConfigError, TrainSetupError, TokenShardError, LoaderStateError, CheckpointError, ModelDirError,
            ModelConfigError) as error:
        print(f"train (rank {rank}): error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
