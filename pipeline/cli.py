"""The `winnow` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from pipeline.configfile import ConfigError

EXIT_CONFIG = 2  # a bad job file, a missing input: nothing ran
EXIT_UNBALANCED = 3  # the run finished but its books do not balance


def _split_runner_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winnow", description="Curate web crawls into LLM training data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (Beam included)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run a curation job",
        description="Run a curation job. Beam runner flags go after `--`, e.g. "
                    "`winnow run jobs/sample.toml -- --runner DirectRunner --direct_num_workers 2`.",
    )
    run.add_argument("job", help="job file (TOML)")
    run.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in output_dir")
    check = commands.add_parser("check", help="validate a job file and its inputs without running it")
    check.add_argument("job", help="job file (TOML)")
    for command in (run, check):
        command.add_argument("--profile", action="append", default=[], metavar="TOML",
                             help="runner profile: a TOML file with only a [runner] table, merged over the "
                                  "job's own (e.g. deploy/dataflow/profile.toml); flags after `--` win over both")
    report = commands.add_parser(
        "report", help="summarise a run's dedup report and (re)write its report.html",
        description="Print the dedup summary of a finished run and write RUN_DIR/dedup/report.html.")
    report.add_argument("run_dir", help="run directory (the job's output_dir)")
    from model.commands import add_commands as add_model_commands
    from pipeline.tokenizer_commands import add_commands as add_tokenizer_commands
    from train.commands import add_commands as add_train_commands

    add_tokenizer_commands(commands)  # tokenizer train, tokenize, plan
    add_train_commands(commands)  # train
    add_model_commands(commands)  # generate, export-hf
    return parser


def print_summary(stats: dict, run_dir: str, console: Console) -> None:
    """The end-of-run table: documents in, kept, dropped by stage and reason, failed, outputs."""
    table = Table(title=f"winnow run: {stats['job']}", show_lines=False)
    table.add_column("stage")
    table.add_column("outcome")
    table.add_column("reason")
    table.add_column("documents", justify="right")
    table.add_row("input", "", f"{stats['input_files']} files", f"{stats['records']:,}")
    for stage in stats["stages"]:
        for outcome in ("dropped", "failed"):
            for reason, count in stage[outcome].items():
                table.add_row(stage["stage"], outcome, reason, f"{count:,}")
    table.add_row("total", "kept", "", f"{stats['kept']:,}", style="bold green")
    table.add_row("total", "dropped", "", f"{stats['dropped']:,}")
    table.add_row("total", "failed", "", f"{stats['failed']:,}", style="red" if stats["failed"] else None)
    console.print(table)
    written = stats["written"]
    console.print(f"curated:  {run_dir}/curated/  ({written['curated_rows']:,} documents, "
                  f"{written['curated_shards']} shards)")
    console.print(f"rejected: {run_dir}/rejected/ ({written['rejected_rows']:,} documents, "
                  f"{written['rejected_shards']} shards)")
    if "tokens" in stats:
        tokens = stats["tokens"]
        dropped = sum(tokens["dropped"].values()) + sum(tokens["failed"].values())
        console.print(f"tokens:   {run_dir}/tokens/   ({tokens['tokens']:,} tokens, {tokens['encoded']:,} documents, "
                      f"{tokens['shards_written']} shards" + (f", {dropped:,} not tokenized" if dropped else "") + ")")
        console.print(f"tokenizer: {run_dir}/tokenizer/tokenizer.json")
    if stats.get("stages") and any(s["stage"] == "dedup" and s["in"] for s in stats["stages"]):
        console.print(f"dedup:    {run_dir}/dedup/report.html  (`winnow report {run_dir}`)")
    console.print(f"stats:    {run_dir}/stats.json")
    console.print(f"job:      {run_dir}/job.toml")
    if stats["balanced"]:
        console.print("books balance: input = kept + dropped + failed at every stage")
    else:
        console.print("[red]books do not balance:[/red] " + "; ".join(stats["problems"]))


def main(argv: Sequence[str] | None = None) -> int:
    args_list, runner_flags = _split_runner_flags(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    err = Console(stderr=True)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    if args.command == "report":
        from pipeline.report import run_report

        return run_report(args.run_dir, console)
    from pipeline.curate import match_inputs, run_curation_pipeline
    from pipeline.job import apply_profile, load_job

    try:
        job = load_job(args.job)
        for profile in args.profile:
            job = apply_profile(job, profile)
        if args.command == "check":
            files = match_inputs(job.input)
            console.print(f"{args.job}: ok, {len(files)} input files")
            return 0
        stats, result = run_curation_pipeline(job, runner_flags, overwrite=args.overwrite)
    except ConfigError as error:
        err.print(f"winnow: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_CONFIG
    if stats is None:  # a dry run: the job was built, not run
        steps = len(result.job.proto_pipeline.components.transforms)
        console.print(f"dry run: the {job.job.name} job was built ({steps} transforms) and not submitted")
        return 0
    print_summary(stats, job.run_dir, console)
    return 0 if stats["balanced"] else EXIT_UNBALANCED


if __name__ == "__main__":
    sys.exit(main())
