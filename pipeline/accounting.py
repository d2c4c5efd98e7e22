"""The books: per-stage counts from the pipeline's tallies, and the check that they balance."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.document import STAGE_ORDER

STATS_VERSION = 1


def _by_reason(counts: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {key[len(prefix):]: n for key, n in sorted(counts.items()) if key.startswith(prefix)}


def build_stats(counts: Mapping[str, int], job_name: str) -> dict:
    """stats.json from merged tallies: every stage's in = kept + dropped + failed, chained stage to stage."""
    stages = []
    problems: list[str] = []
    previous_kept = None
    for stage in STAGE_ORDER:
        name = str(stage)
        entry = {
            "stage": name,
            "in": counts.get(f"{name}.in", 0),
            "kept": counts.get(f"{name}.kept", 0),
            "dropped": _by_reason(counts, f"{name}.dropped."),
            "failed": _by_reason(counts, f"{name}.failed."),
        }
        out = entry["kept"] + sum(entry["dropped"].values()) + sum(entry["failed"].values())
        if entry["in"] != out:
            problems.append(f"{name}: in {entry['in']} != kept + dropped + failed {out}")
        if previous_kept is not None and entry["in"] != previous_kept:
            problems.append(f"{name}: in {entry['in']} != kept by the stage before {previous_kept}")
        previous_kept = entry["kept"]
        stages.append(entry)
    kept = stages[-1]["kept"]
    dropped = sum(sum(s["dropped"].values()) for s in stages)
    failed = sum(sum(s["failed"].values()) for s in stages)
    records = stages[0]["in"]
    if records != kept + dropped + failed:
        problems.append(f"input {records} != kept {kept} + dropped {dropped} + failed {failed}")
    written = {
        "curated_rows": counts.get("write.curated_rows", 0),
        "curated_shards": counts.get("write.curated_shards", 0),
        "rejected_rows": counts.get("write.rejected_rows", 0),
        "rejected_shards": counts.get("write.rejected_shards", 0),
    }
    if written["curated_rows"] != kept:
        problems.append(f"curated rows written {written['curated_rows']} != kept {kept}")
    tokens = None
    if "tokenize.in" in counts:
        # Token shards are an output of the kept documents, not a stage of the books: a document
        # too long to tokenize stays kept in curated/ and is counted here.
        tokens = {
            "in": counts.get("tokenize.in", 0),
            "encoded": counts.get("tokenize.kept", 0),
            "dropped": _by_reason(counts, "tokenize.dropped."),
            "failed": _by_reason(counts, "tokenize.failed."),
            "tokens": counts.get("tokenize.tokens", 0),
            "rows_written": counts.get("write.tokens_rows", 0),
            "shards_written": counts.get("write.tokens_shards", 0),
        }
        if tokens["in"] != kept:
            problems.append(f"tokenize: in {tokens['in']} != kept {kept}")
        out = tokens["encoded"] + sum(tokens["dropped"].values()) + sum(tokens["failed"].values())
        if tokens["in"] != out:
            problems.append(f"tokenize: in {tokens['in']} != encoded + dropped + failed {out}")
        if tokens["rows_written"] != tokens["encoded"]:
            problems.append(f"token rows written {tokens['rows_written']} != encoded {tokens['encoded']}")
    stats = {
        "version": STATS_VERSION,
        "job": job_name,
        "input_files": counts.get("input.files", 0),
        "records": records,
        "kept": kept,
        "dropped": dropped,
        "failed": failed,
        "balanced": not problems,
        "problems": problems,
        "stages": stages,
        "written": written,
        "notes": _by_reason(counts, "note."),
    }
    if tokens is not None:
        stats["tokens"] = tokens
    return stats
