"""report.json of a dedup run, assembled from the pipeline's bounded pieces, and report.html beside it."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.pvalue import AsList, AsSingleton

from pipeline.dedup import KEEP_ORDER, URL_KEEP_ORDER, DedupConfig, DedupNote, DedupReason
from pipeline.document import Outcome, Stage
from pipeline.minhash import exact_jaccard, normalize_for_dedup, word_shingles
from pipeline.sinks import MergeCounts, write_json, write_text
from pipeline.stages import tally_key


class WriteDedupReport(beam.PTransform):
    """report.json and the self-contained report.html, from the bounded pieces and the dedup tallies."""

    def __init__(self, directory: str, job_name: str, config: DedupConfig):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._job_name = job_name
        self._config = config

    def expand(self, pieces: dict):
        counts = pieces["tally"] | "MergeCounts" >> beam.CombineGlobally(MergeCounts())
        singles = {name: AsSingleton(pieces[name]) for name in ("largest", "sizes", "pairs", "similarity", "domains")}
        return (
            counts.pipeline
            | "Once" >> beam.Create([None])
            | "WriteReport" >> beam.Map(self._write, counts=AsSingleton(counts), snippets=AsList(pieces["snippets"]),
                                        **singles)
        )

    def _write(self, _, counts, snippets, largest, sizes, pairs, similarity, domains) -> dict:
        from pipeline.report import render_html

        report = build_report(self._job_name, self._config, counts, largest, sizes, pairs, similarity, domains,
                              snippets)
        write_json(f"{self._directory}/report.json", report)
        write_text(f"{self._directory}/report.html", render_html(report), "text/html")
        return {"write.dedup_reports": 1}


def build_report(job_name: str, config: DedupConfig, counts: dict, largest: list, sizes: list, pairs: list,
                 similarity: dict, domains: list, snippets: list) -> dict:
    """report.json from the pipeline's bounded pieces (see the README for every field)."""
    minhash = config.minhash
    texts = {s["id"]: s for s in snippets}

    def shingle_set(doc_id: str) -> set[str]:
        text = texts.get(doc_id, {}).get("text") or ""
        return set(word_shingles(normalize_for_dedup(text), minhash.ngram))

    dropped = lambda reason: counts.get(tally_key(Stage.DEDUP, Outcome.DROPPED, reason), 0)  # noqa: E731
    note = lambda name: counts.get(tally_key("note", name), 0)  # noqa: E731
    removed = sum(dropped(r) for r in (DedupReason.URL_DUPLICATE, DedupReason.EXACT_DUPLICATE,
                                       DedupReason.NEAR_DUPLICATE))
    clusters = []
    for cluster in sorted(largest, key=lambda c: (-c["size"], c["cluster"])):
        clusters.append({
            "cluster": cluster["cluster"],
            "size": cluster["size"],
            "members": [{**m, "text": texts.get(m["id"], {}).get("text") or ""} for m in cluster["members"]],
        })
    sampled = []
    for pair in sorted(pairs, key=lambda c: (c.a, c.b)):
        sampled.append({
            "a": pair.a, "b": pair.b,
            "url_a": texts.get(pair.a, {}).get("url"), "url_b": texts.get(pair.b, {}).get("url"),
            "estimated": round(pair.estimated, 4),
            "exact": round(exact_jaccard(shingle_set(pair.a), shingle_set(pair.b)), 4),
            "passed": pair.passed,
        })
    return {
        "version": 1,
        "job": job_name,
        "parameters": {
            "ngram": minhash.ngram, "num_perm": minhash.num_perm, "bands": minhash.bands, "rows": minhash.rows,
            "threshold": minhash.threshold, "verify_threshold": minhash.verify_threshold,
            "similarity_threshold": round(minhash.similarity_threshold, 4),
            "seed": minhash.seed, "scheme": minhash.scheme, "verify": minhash.verify,
            "url_dedup": config.url, "exact_dedup": config.exact, "near_dedup": config.near,
            "keep_order": KEEP_ORDER, "url_keep_order": URL_KEEP_ORDER,
        },
        "counts": {
            "in": counts.get(tally_key(Stage.DEDUP, "in"), 0),
            "url_duplicates": dropped(DedupReason.URL_DUPLICATE),
            "exact_duplicates": dropped(DedupReason.EXACT_DUPLICATE),
            "candidate_edges": note(DedupNote.CANDIDATE_EDGES),
            "edges_removed_by_verification": note(DedupNote.VERIFICATION_REMOVED),
            "near_duplicate_clusters": note(DedupNote.NEAR_CLUSTERS),
            "near_duplicates_removed": dropped(DedupReason.NEAR_DUPLICATE),
            "removed": removed,
            "kept": counts.get(tally_key(Stage.DEDUP, Outcome.KEPT), 0),
        },
        "cluster_sizes": {str(size): n for size, n in sorted(sizes)},
        "largest_clusters": clusters,
        "domains": [{"domain": d, "documents": n, "duplicates": dup, "rate": round(dup / n, 4)}
                    for d, (n, dup) in sorted(domains, key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))],
        "pairs": sampled,
        "similarity_histogram": similarity,
    }
