"""Language identification: how many characters to score, measured as cost against agreement.

    python benchmarks/bench_language.py [--pages 2000] [--limits 500 1000 2000 3000 5000]

fastText's cost grows with the length of the text it reads, and a label settles long before
the end of most documents. For each limit in --limits, on the same texts in one run, this
reports the milliseconds per document of scoring the first `limit` characters, and how often
the label, and the keep/drop decision at the default minimum score, differ from scoring the
whole text. The texts are the main text of the curation benchmark's multilingual pages
(benchmarks/bench_curation.py builds them), extracted and repaired as the pipeline does, plus
the 181 article bodies of ../shared/data/article-extraction-benchmark when it is there.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_curation import build_corpus, html_pages  # noqa: E402
from real_text import ARTICLES  # noqa: E402


def texts(pages: int) -> list[str]:
    from pipeline.extract import ExtractConfig, extract_main_text
    from pipeline.repair import RepairConfig, repair_text

    extract, repair = ExtractConfig(), RepairConfig()
    out = []
    for html, url in html_pages(build_corpus(5000, 8))[:pages]:
        text = extract_main_text(html, url, extract)
        if text:
            out.append(repair_text(text, repair))
    if ARTICLES.exists():
        out += [a["articleBody"] for a in json.loads(ARTICLES.read_text()).values() if a.get("articleBody")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="benchmark pages to extract (of 5,000)")
    parser.add_argument("--limits", type=int, nargs="+", default=[500, 1000, 2000, 3000, 5000])
    args = parser.parse_args()

    from pipeline.language import LanguageConfig, LanguageIdentifier, bundled_model_path

    docs = texts(args.pages)
    min_score = LanguageConfig().min_score
    identifier = LanguageIdentifier(bundled_model_path())
    longest = max(map(len, docs))

    def score_all(limit: int) -> tuple[float, list[tuple[str, float]]]:
        start = time.perf_counter()
        results = [identifier.identify(text, limit) for text in docs]
        return (time.perf_counter() - start) / len(docs) * 1000, results

    whole_ms, whole = score_all(longest)
    languages = Counter(label for label, _ in whole)
    rows = []
    for limit in args.limits:
        ms, results = score_all(limit)
        rows.append({
            "max_chars": limit,
            "ms_per_doc": round(ms, 3),
            "label_differs": sum(a[0] != b[0] for a, b in zip(results, whole)),
            "decision_differs": sum((a[1] >= min_score) != (b[1] >= min_score) for a, b in zip(results, whole)),
            "mean_abs_score_change": round(sum(abs(a[1] - b[1]) for a, b in zip(results, whole)) / len(docs), 4),
        })

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"language identification, {len(docs)} documents, "
                        f"{sum(map(len, docs)) / len(docs):,.0f} characters on average")
    for column in ("max_chars", "ms/doc", "label differs", "keep/drop differs", "mean |score change|"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['max_chars']:,}", str(row["ms_per_doc"]), str(row["label_differs"]),
                      str(row["decision_differs"]), str(row["mean_abs_score_change"]))
    table.add_row("whole text", f"{whole_ms:.3f}", "", "", "")
    Console().print(table)
    print("languages (whole text):", ", ".join(f"{k} {v}" for k, v in languages.most_common()))
    print(json.dumps({"benchmark": "language", "documents": len(docs), "min_score": min_score,
                      "whole_text_ms_per_doc": round(whole_ms, 3), "limits": rows,
                      "languages": dict(languages.most_common())}))


if __name__ == "__main__":
    main()
