"""The Dataflow Flex Template entry point: build a curation job from a job file and submit it.

    python -m pipeline.flex --job gs://BUCKET/jobs/X.toml [--profile gs://.../profile.toml] [--overwrite true] [Beam options]

Dataflow's template launcher runs this with the template's parameters as flags (see
deploy/dataflow/). The job and profile files may live on any Beam filesystem. The launcher
submits the job and exits; the pipeline itself writes stats.json when it ends.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from pipeline.configfile import ConfigError
from pipeline.curate import run_curation_pipeline
from pipeline.job import apply_profile, load_job


def _local_copy(path: str, directory: str) -> str:
    """A job or profile file on any Beam filesystem, copied to a local file (the TOML readers read local files)."""
    if "://" not in path:
        return path
    local = os.path.join(directory, os.path.basename(path))
    with FileSystems.open(path) as src, open(local, "wb") as dst:
        dst.write(src.read())
    return local


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="job file (TOML), local or gs://, s3://")
    parser.add_argument("--profile", action="append", default=[], help="runner profile (TOML [runner] table)")
    parser.add_argument("--overwrite", default="false", choices=("true", "false"),
                        help="replace the outputs of an earlier run in output_dir (template parameters are strings)")
    args, beam_flags = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO)
    try:
        with tempfile.TemporaryDirectory(prefix="winnow-flex-") as directory:
            job = load_job(_local_copy(args.job, directory))
            for profile in args.profile:
                job = apply_profile(job, _local_copy(profile, directory))
        run_curation_pipeline(job, beam_flags, overwrite=args.overwrite == "true", wait=False)
    except ConfigError as error:
        print(f"winnow: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
