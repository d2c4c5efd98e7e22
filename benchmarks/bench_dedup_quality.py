"""Dedup quality: `winnow run` on a labelled near-duplicate corpus of real text, scored against exact Jaccard.

    python benchmarks/bench_dedup_quality.py [--sources 800] [--variant-share 0.55] [--max-variants 3] [--seed 11]

The corpus (benchmarks/data/dedup-quality-S<sources>-v<share>-m<max>-seed<seed>/: JSONL shards
with text, url and date fields under corpus/, and manifest.jsonl saying what each document is,
its pipeline id included) is built from real prose (benchmarks/real_text.py): the
article-extraction benchmark's article bodies and prose paragraphs of /usr/share/doc, a few
hundred distinct source documents. About half of the sources get one to three variants, each
of one edit type:

  exact_copy           the same text
  formatting           case, punctuation and line breaks changed: the same normalised text
  word_edits           word substitutions, insertions and deletions at random places, their
                       number searched so the 5-gram Jaccard to the source hits a target drawn
                       from [0.5, 0.98]
  truncated            a prefix, cut so the Jaccard hits a target from [0.5, 0.98]
  boilerplate_added    a header and/or footer (newsletter, cookie, navigation, copyright text)
  boilerplate_swapped  the source with other boilerplate than a boilerplate_added sibling,
                       scored against that sibling
  reordered            the paragraphs shuffled
  edit_chain           three documents, each word_edits of the one before at Jaccard 0.82-0.92,
                       so the chain's ends may fall below the threshold yet belong together
  copy_of_variant      an exact copy of a word_edits variant (exact and near groups must chain)

The rest of the sources stay without variants. With --max-variants 1 each source gets at most
one variant, and the edits that make several documents are left out.

Ground truth is the exact Jaccard of every pair's normalised word 5-gram shingle sets
(pipeline.minhash.normalize_for_dedup and word_shingles, the pipeline's own definitions), over
all pairs by a sparse matrix product: true pairs have J >= 0.8, true clusters are their
connected components.

The corpus goes through the real pipeline twice (`winnow run` with a job file written here:
language and quality filters off, `[dedup.minhash] threshold = 0.8`, exact dedup on), with
`verify = true` and with `verify = false`. A predicted group is a `cluster` of
dedup/clusters.parquet after chaining exact and near groups (a document removed as an exact
duplicate of X belongs with X's near cluster). Scores: pair precision, recall and F1
(predicted pairs: both documents in one predicted group) against the pairs with J >= 0.8 and
against all pairs of the true clusters; the adjusted Rand index of predicted against true
clusters; and, per edit type and per Jaccard band, the share of variants found with the
document they were made from. A group's members need not all be within the threshold of each
other (two variants of one source rarely are), so against the J >= 0.8 pairs even the true
clusters score below 1: the summary shows them as a reference. Prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline.document import document_id  # noqa: E402
from pipeline.minhash import normalize_for_dedup, word_shingles  # noqa: E402
from real_text import SourceText, article_texts, doc_texts  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
THRESHOLD = 0.8
NGRAM = 5
SHARDS = 4
MIN_SOURCE_WORDS, MAX_SOURCE_WORDS = 100, 3000
MAX_SOURCE_OVERLAP = 0.3  # a candidate source this similar to an accepted one is not distinct: skipped
JACCARD_TARGETS = (0.5, 0.98)
CHAIN_TARGETS = (0.82, 0.92)
CHAIN_LINKS = 3
# Jaccard bands for the per-band table; the threshold is a band edge.
BANDS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001)


class Edit:
    SOURCE = "source"
    EXACT_COPY = "exact_copy"
    FORMATTING = "formatting"
    WORD_EDITS = "word_edits"
    TRUNCATED = "truncated"
    BOILERPLATE_ADDED = "boilerplate_added"
    BOILERPLATE_SWAPPED = "boilerplate_swapped"
    REORDERED = "reordered"
    EDIT_CHAIN = "edit_chain"
    COPY_OF_VARIANT = "copy_of_variant"


# How often a variant is of each type (edit_chain makes three documents, boilerplate_swapped two).
EDIT_WEIGHTS = {
    Edit.WORD_EDITS: 30, Edit.TRUNCATED: 12, Edit.BOILERPLATE_ADDED: 8, Edit.BOILERPLATE_SWAPPED: 8,
    Edit.REORDERED: 10, Edit.EXACT_COPY: 8, Edit.FORMATTING: 7, Edit.EDIT_CHAIN: 9, Edit.COPY_OF_VARIANT: 8,
}

# Page furniture that sites wrap around the same article; {site} varies.
HEADERS = (
    "{site} Home News World Business Technology Science Health Sport Culture Opinion Podcasts Newsletters Sign in",
    "Skip to main content. {site} uses cookies to give you the best experience on our website. By continuing to "
    "browse you agree to our use of cookies. Read our privacy policy to find out more and how to change your settings.",
    "Breaking news from {site}: sign up for alerts and never miss a story. Download the {site} app for iPhone and "
    "Android and get the headlines delivered straight to your phone every morning.",
    "You are reading the free edition of {site}. Subscribers get unlimited access to every article, the daily "
    "crossword and our archive going back twenty years. Start your trial today and cancel whenever you like.",
    "Menu Search Latest Popular Local Events Jobs Property Motors Dating Announcements Puzzles Weather Traffic {site}",
)
FOOTERS = (
    "Copyright {site}. All rights reserved. This material may not be published, broadcast, rewritten or "
    "redistributed in whole or in part without the express written permission of the publisher.",
    "Subscribe to the {site} newsletter to get our best stories in your inbox every week. We will never share your "
    "email address, and you can unsubscribe at any time by following the link at the bottom of each message.",
    "Share this article on Facebook, Twitter, LinkedIn or by email. Comments are closed for this story. Have a tip "
    "or a correction? Write to the newsroom of {site} and our editors will look into it as soon as they can.",
    "Related stories from {site}: what the new rules mean for you; five things we learned this week; the week in "
    "pictures; letters to the editor; how we report and why you can trust our journalism.",
    "About {site} Contact us Advertise with us Careers Terms of use Privacy notice Cookie settings Accessibility "
    "Sitemap Help centre Corrections Complaints Syndication",
)
SITES = ("The Morning Ledger", "Riverside Gazette", "Northern Tribune", "Harbour Post", "Daily Lantern",
         "Valley Courier", "Metro Chronicle", "Evening Standardbearer")


@dataclass
class LabelledDoc:
    key: str  # s<source>[.v<n>]: what it is, readable
    source: int  # index of the source it derives from
    parent: str | None  # key of the document it was made from; None for sources
    edit: str
    target: float | None  # Jaccard to the parent the edit aimed at, where one was set
    text: str
    url: str
    date: str
    id: str = ""  # the pipeline's document id, set once the shards are written
    shard: str = ""
    record: int = -1


# ---------------------------------------------------------------------------- shingles and Jaccard


def shingle_set(text: str) -> set[str]:
    return set(word_shingles(normalize_for_dedup(text), NGRAM))


def jaccard(a: set[str], b: set[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def shingle_matrix(texts: list[str]):
    """Documents x distinct shingles, 1 where the document has the shingle (scipy CSR, int32)."""
    from scipy.sparse import csr_matrix

    vocabulary: dict[str, int] = {}
    indices, indptr = [], [0]
    for text in texts:
        row = {vocabulary.setdefault(s, len(vocabulary)) for s in shingle_set(text)}
        indices.extend(sorted(row))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.int32)
    return csr_matrix((data, np.array(indices, dtype=np.int64), np.array(indptr, dtype=np.int64)),
                      shape=(len(texts), len(vocabulary)))


def similar_pairs(texts: list[str], threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) whose exact shingle Jaccard is at least threshold: all pairs, via X @ X.T."""
    matrix = shingle_matrix(texts)
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    overlap = (matrix @ matrix.T).tocoo()
    i, j, shared = overlap.row, overlap.col, overlap.data
    upper = i < j
    i, j, shared = i[upper], j[upper], shared[upper].astype(np.float64)
    union = sizes[i] + sizes[j] - shared
    similarity = np.divide(shared, union, out=np.ones_like(shared), where=union > 0)
    keep = similarity >= threshold
    return [(int(a), int(b), float(s)) for a, b, s in zip(i[keep], j[keep], similarity[keep])]


# ---------------------------------------------------------------------------- partitions and scores


class DisjointSets:
    """Union-find over hashable items, for connected components."""

    def __init__(self):
        self._parent: dict = {}

    def find(self, item):
        parent = self._parent.setdefault(item, item)
        if parent != item:
            parent = self._parent[item] = self.find(parent)
        return parent

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def labels_from_pairs(items: list, pairs) -> dict:
    """Each item's component label (its component's smallest item) under the given pairs."""
    sets = DisjointSets()
    for item in items:
        sets.find(item)
    for a, b in pairs:
        sets.union(a, b)
    return {item: sets.find(item) for item in items}


def pairs_of(labels: dict) -> set[tuple]:
    """Every unordered pair of items that share a label, as (smaller, larger)."""
    groups = defaultdict(list)
    for item, label in labels.items():
        groups[label].append(item)
    return {tuple(sorted(pair)) for members in groups.values() if len(members) > 1
            for pair in combinations(members, 2)}


def pair_scores(predicted: set, truth: set) -> dict:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"predicted_pairs": len(predicted), "true_pairs": len(truth), "true_positives": hits,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def adjusted_rand_index(first: dict, second: dict) -> float:
    """ARI of two labellings of the same items (Hubert and Arabie 1985), from the contingency table."""
    if first.keys() != second.keys():
        raise ValueError("the two labellings cover different items")

    def pairs(count: int) -> float:
        return count * (count - 1) / 2

    cells = Counter((first[item], second[item]) for item in first)
    rows = Counter(first.values())
    columns = Counter(second.values())
    index = sum(pairs(n) for n in cells.values())
    row_sum = sum(pairs(n) for n in rows.values())
    column_sum = sum(pairs(n) for n in columns.values())
    expected = row_sum * column_sum / pairs(len(first)) if len(first) > 1 else 0.0
    maximum = (row_sum + column_sum) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


# ---------------------------------------------------------------------------- corpus


def pick_sources(count: int, rng: random.Random) -> list[SourceText]:
    """Every article of usable length, then documentation sources, all pairwise below MAX_SOURCE_OVERLAP."""
    articles = [s for s in article_texts() if MIN_SOURCE_WORDS <= s.words <= MAX_SOURCE_WORDS]
    docs = [s for s in doc_texts(min_words=MIN_SOURCE_WORDS) if s.words <= MAX_SOURCE_WORDS]
    rng.shuffle(docs)
    candidates = articles + docs[: max(0, 2 * (count - len(articles)))]
    close = defaultdict(set)
    for i, j, _ in similar_pairs([c.text for c in candidates], MAX_SOURCE_OVERLAP):
        close[j].add(i)
    accepted: list[int] = []
    taken: set[int] = set()
    for index in range(len(candidates)):
        if len(accepted) == count:
            break
        if not close[index] & taken:
            accepted.append(index)
            taken.add(index)
    return [candidates[i] for i in accepted]


def _edit_plan(rng: random.Random, vocabulary: list[str], steps: int) -> list[tuple[str, float, str]]:
    """Random word operations, drawn up front so that applying the first k is a prefix of applying k + 1."""
    kinds = rng.choices(("substitute", "insert", "delete"), weights=(2, 1, 1), k=steps)
    return [(kind, rng.random(), rng.choice(vocabulary)) for kind in kinds]


def _apply_edits(paragraphs: list[list[str]], plan: list[tuple[str, float, str]]) -> list[list[str]]:
    out = [list(words) for words in paragraphs]
    for kind, where, word in plan:
        total = sum(map(len, out))
        if total < 2:
            break
        position = min(int(where * total), total - 1)
        for words in out:
            if position < len(words):
                break
            position -= len(words)
        if kind == "substitute":
            words[position] = word
        elif kind == "insert":
            words.insert(position, word)
        elif len(words) > 1:
            del words[position]
    return out


def _text(paragraphs: list[list[str]]) -> str:
    return "\n\n".join(" ".join(words) for words in paragraphs if words)


def edit_to_target(text: str, target: float, rng: random.Random, vocabulary: list[str]) -> str:
    """Word edits whose number is searched so the shingle Jaccard to `text` is as close to target as it gets."""
    paragraphs = [p.split() for p in text.split("\n\n")]
    base = shingle_set(text)
    plan = _edit_plan(rng, vocabulary, sum(map(len, paragraphs)))

    def similarity(steps: int) -> float:
        return jaccard(base, shingle_set(_text(_apply_edits(paragraphs, plan[:steps]))))

    low, high = 0, len(plan)  # similarity(low) >= target > similarity(high), nearly monotone
    while high - low > 1:
        middle = (low + high) // 2
        if similarity(middle) >= target:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda steps: abs(similarity(steps) - target))
    return _text(_apply_edits(paragraphs, plan[:max(best, 1)]))


def truncate_to_target(text: str, target: float) -> str:
    """The longest prefix (whole words) whose shingle Jaccard to the whole text is at most target."""
    words = text.split(" ")
    base = shingle_set(text)
    low, high = NGRAM, len(words)
    while high - low > 1:
        middle = (low + high) // 2
        if jaccard(base, shingle_set(" ".join(words[:middle]))) <= target:
            low = middle
        else:
            high = middle
    return " ".join(words[:low])


def reformat(text: str, rng: random.Random) -> str:
    """The same normalised text in another dress: case, punctuation and line breaks changed."""
    out = []
    for paragraph in text.split("\n\n"):
        words = paragraph.split()
        styled = []
        for index, word in enumerate(words):
            roll = rng.random()
            if roll < 0.1:
                word = word.upper()
            elif roll < 0.2:
                word = word.capitalize()
            elif roll < 0.25:
                word = word + ","
            elif roll < 0.28:
                word = word.rstrip(".,;:") + ";"
            styled.append(word)
            if index % 12 == 11:
                styled.append("\n")
        out.append(re.sub(r" ?\n ?", "\n", " ".join(styled)))
    return "\n\n\n".join(out)


def with_boilerplate(text: str, rng: random.Random,
                      avoid: tuple[int, int] | None = None) -> tuple[str, tuple[int, int]]:
    """Text with a header, a footer or both; returns the choice so a sibling can take different ones."""
    site = rng.choice(SITES)
    while True:
        header = rng.randrange(-1, len(HEADERS))  # -1: none
        footer = rng.randrange(-1, len(FOOTERS))
        if (header, footer) != (-1, -1) and (avoid is None or (header != avoid[0] and footer != avoid[1])):
            break
    parts = ([HEADERS[header].format(site=site)] if header >= 0 else []) + [text]
    parts += [FOOTERS[footer].format(site=site)] if footer >= 0 else []
    return "\n\n".join(parts), (header, footer)


def reorder(text: str, rng: random.Random) -> str | None:
    paragraphs = text.split("\n\n")
    if len(paragraphs) < 3:
        return None
    shuffled = paragraphs[:]
    while shuffled == paragraphs:
        rng.shuffle(shuffled)
    return "\n\n".join(shuffled)


# Edits that make more than one document, so that some members meet only through a third.
MULTI_DOCUMENT_EDITS = (Edit.EDIT_CHAIN, Edit.BOILERPLATE_SWAPPED, Edit.COPY_OF_VARIANT)


def build_corpus(sources: list[SourceText], variant_share: float, max_variants: int,
                 rng: random.Random) -> list[LabelledDoc]:
    """Every source, and variants of a variant_share of them: 1 to max_variants edits each.

    With max_variants = 1 every family is a source and one variant (no edit that makes
    several documents), so no two documents belong together only through a third.
    """
    vocabulary = sorted({w for s in sources for w in s.text.split() if w.isalpha() and len(w) >= 3})
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    docs: list[LabelledDoc] = []
    variants_of: Counter = Counter()

    def add(source: int, parent: LabelledDoc | None, edit: str, target: float | None, text: str) -> LabelledDoc:
        key = f"s{source:04d}"
        if parent is not None:
            variants_of[source] += 1
            key += f".v{variants_of[source]}"
        slug = sources[source].name.replace("/", "-").replace("#", "-")
        date = (start + timedelta(minutes=rng.randrange(60 * 24 * 600))).isoformat()
        site = rng.choice(SITES).lower().replace(" ", "")
        doc = LabelledDoc(key=key, source=source, parent=parent.key if parent else None, edit=edit, target=target,
                          text=text, url=f"https://{site}.example/{slug}/{key}", date=date)
        docs.append(doc)
        return doc

    edits, weights = zip(*((edit, weight) for edit, weight in EDIT_WEIGHTS.items()
                           if max_variants > 1 or edit not in MULTI_DOCUMENT_EDITS))
    for number, source in enumerate(sources):
        text = source.text
        root = add(number, None, Edit.SOURCE, None, text)
        if rng.random() >= variant_share:
            continue
        for edit in rng.choices(edits, weights=weights, k=rng.randint(1, max_variants)):
            if edit == Edit.EXACT_COPY:
                add(number, root, edit, 1.0, text)
            elif edit == Edit.FORMATTING:
                add(number, root, edit, 1.0, reformat(text, rng))
            elif edit in (Edit.WORD_EDITS, Edit.COPY_OF_VARIANT):
                target = round(rng.uniform(*JACCARD_TARGETS), 3)
                variant = add(number, root, Edit.WORD_EDITS, target, edit_to_target(text, target, rng, vocabulary))
                if edit == Edit.COPY_OF_VARIANT:
                    add(number, variant, edit, 1.0, variant.text)
            elif edit == Edit.TRUNCATED:
                target = round(rng.uniform(*JACCARD_TARGETS), 3)
                add(number, root, edit, target, truncate_to_target(text, target))
            elif edit in (Edit.BOILERPLATE_ADDED, Edit.BOILERPLATE_SWAPPED):
                first_text, chosen = with_boilerplate(text, rng)
                first = add(number, root, Edit.BOILERPLATE_ADDED, None, first_text)
                if edit == Edit.BOILERPLATE_SWAPPED:
                    add(number, first, edit, None, with_boilerplate(text, rng, avoid=chosen)[0])
            elif edit == Edit.REORDERED:
                shuffled = reorder(text, rng)
                if shuffled is not None:
                    add(number, root, edit, None, shuffled)
            elif edit == Edit.EDIT_CHAIN:
                link = root
                for _ in range(CHAIN_LINKS):
                    target = round(rng.uniform(*CHAIN_TARGETS), 3)
                    link = add(number, link, edit, target, edit_to_target(link.text, target, rng, vocabulary))
    return docs


def write_corpus(docs: list[LabelledDoc], out: Path, rng: random.Random) -> None:
    """JSONL shards in a shuffled order, and manifest.jsonl with every document's label and pipeline id."""
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    order = list(range(len(docs)))
    rng.shuffle(order)
    files = [open(out / "corpus" / f"part-{n:02d}.jsonl", "w", encoding="utf-8") for n in range(SHARDS)]
    counts = [0] * SHARDS
    try:
        for position, index in enumerate(order):
            doc, shard = docs[index], position % SHARDS
            doc.shard = f"part-{shard:02d}.jsonl"
            doc.record = counts[shard]
            # The pipeline's id: the file name below the input glob's directory, and the line's index.
            doc.id = document_id(doc.shard, doc.record)
            counts[shard] += 1
            files[shard].write(json.dumps({"text": doc.text, "url": doc.url, "date": doc.date}) + "\n")
    finally:
        for f in files:
            f.close()
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(asdict(doc)) + "\n")


def load_or_build(sources_wanted: int, variant_share: float, max_variants: int,
                  seed: int) -> tuple[Path, list[LabelledDoc]]:
    out = DATA / f"dedup-quality-S{sources_wanted}-v{variant_share}-m{max_variants}-seed{seed}"
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        rng = random.Random(seed)
        sources = pick_sources(sources_wanted, rng)
        docs = build_corpus(sources, variant_share, max_variants, rng)
        write_corpus(docs, out, rng)
    docs = [LabelledDoc(**json.loads(line)) for line in manifest.read_text(encoding="utf-8").splitlines()]
    return out, docs


# ---------------------------------------------------------------------------- the pipeline run


def run_winnow(corpus: Path, verify: bool, workers: int, minhash: list[str]) -> tuple[Path, float]:
    tag = "verify" if verify else "no-verify"
    run_dir = corpus / f"run-{tag}"
    job = corpus / f"job-{tag}.toml"
    off = "enabled = false\n"
    job.write_text(
        f'[job]\nname = "dedup-quality-{tag}"\noutput_dir = "{run_dir}"\n\n'
        f'[input]\npaths = ["{corpus}/corpus/*.jsonl"]\nformat = "jsonl"\n\n'
        '[language]\nlanguages = []\nmin_score = 0.0\n\n'
        f"[quality.c4]\n{off}\n[quality.gopher_quality]\n{off}\n[quality.gopher_repetition]\n{off}\n"
        f"[quality.fineweb]\n{off}\n"
        "[tokenizer]\nenabled = false\n\n"
        "[dedup]\nexact = true\nnear = true\n\n"
        "[dedup.minhash]\n" + ("\n".join(minhash) if minhash else f"threshold = {THRESHOLD}")
        + f"\nverify = {'true' if verify else 'false'}\n")
    command = [sys.executable, "-m", "pipeline.cli", "run", str(job), "--overwrite"]
    if workers > 1:
        command += ["--", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"winnow run failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return run_dir, seconds


def predicted_labels(run_dir: Path, ids: list[str]) -> dict[str, str]:
    """Each document's predicted group: exact and near groups chained through their shared members."""
    import pyarrow.parquet as pq

    rows = pq.read_table(run_dir / "dedup" / "clusters.parquet", columns=["id", "cluster", "kept_id"]).to_pylist()
    unknown = {r["id"] for r in rows} - set(ids)
    if unknown:
        raise SystemExit(f"clusters.parquet names {len(unknown)} ids not in the corpus, e.g. {sorted(unknown)[0]}; "
                         "the corpus shards and the manifest disagree: delete the corpus directory and rerun")
    pairs = [(r["id"], r["cluster"]) for r in rows] + [(r["id"], r["kept_id"]) for r in rows]
    return labels_from_pairs(ids, pairs)


def pipeline_text_mismatches(run_dir: Path, texts: dict[str, str]) -> int:
    """Curated documents whose normalised text differs from the corpus's (repair changed more than punctuation)."""
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "curated", columns=["id", "text"]).to_pylist()
    return sum(normalize_for_dedup(row["text"]) != normalize_for_dedup(texts[row["id"]]) for row in table)


# ---------------------------------------------------------------------------- main


def band_of(similarity: float) -> str:
    for low, high in zip(BANDS, BANDS[1:]):
        if low <= similarity < high:
            return f"[{low:.2f}, {min(high, 1.0):.2f}{']' if high > 1 else ')'}"
    raise ValueError(similarity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=800, help="distinct source documents")
    parser.add_argument("--variant-share", type=float, default=0.55, help="share of sources that get variants")
    parser.add_argument("--max-variants", type=int, default=3,
                        help="variants per source at most; 1 also leaves out the edits that make several documents")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=1, help="DirectRunner worker processes for `winnow run`")
    parser.add_argument("--minhash", nargs="*", default=[],
                        help="[dedup.minhash] lines instead of `threshold = 0.8`, e.g. "
                             "--minhash 'bands = 14' 'rows = 8' 'verify_threshold = 0.8'")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 170)  # wide tables stay whole in logs
    started = time.perf_counter()
    corpus, docs = load_or_build(args.sources, args.variant_share, args.max_variants, args.seed)
    built = time.perf_counter() - started
    ids = [d.id for d in docs]
    by_key = {d.key: d for d in docs}
    texts = {d.id: d.text for d in docs}

    # Ground truth: exact Jaccard over all pairs.
    started = time.perf_counter()
    true_similar = similar_pairs([d.text for d in docs], THRESHOLD)
    true_pairs = {tuple(sorted((ids[i], ids[j]))) for i, j, _ in true_similar}
    true_labels = labels_from_pairs(ids, true_pairs)
    truth_seconds = time.perf_counter() - started
    true_cluster_pairs = pairs_of(true_labels)
    true_clusters = sum(1 for n in Counter(true_labels.values()).values() if n > 1)
    reference = pair_scores(true_cluster_pairs, true_pairs)

    # Each variant against the document it was made from.
    shingles = {d.key: shingle_set(d.text) for d in docs}
    lineage = [(d, by_key[d.parent], jaccard(shingles[d.key], shingles[d.parent])) for d in docs if d.parent]

    runs = {}
    for verify in (True, False):
        run_dir, seconds = run_winnow(corpus, verify, args.workers, args.minhash)
        labels = predicted_labels(run_dir, ids)
        predicted = pairs_of(labels)
        report = json.loads((run_dir / "dedup" / "report.json").read_text())
        stats = json.loads((run_dir / "stats.json").read_text())
        dedup_in = next(s["in"] for s in stats["stages"] if s["stage"] == "dedup")
        found = {d.key: labels[d.id] == labels[parent.id] for d, parent, _ in lineage}
        runs[verify] = {
            "seconds": round(seconds, 1),
            "dedup_in": dedup_in,
            "vs_true_pairs": pair_scores(predicted, true_pairs),
            "vs_true_cluster_pairs": pair_scores(predicted, true_cluster_pairs),
            "ari": round(adjusted_rand_index(labels, true_labels), 4),
            "predicted_groups": sum(1 for n in Counter(labels.values()).values() if n > 1),
            "counts": report["counts"],
            "parameters": {k: report["parameters"][k] for k in ("bands", "rows", "similarity_threshold", "verify")},
            "text_mismatches": pipeline_text_mismatches(run_dir, texts),
            "found": found,
        }

    # Per edit type and per Jaccard band: variants found together with their parent.
    def tally(key_of) -> dict:
        table: dict = defaultdict(lambda: Counter())
        for d, parent, similarity in lineage:
            row = table[key_of(d, similarity)]
            is_true = similarity >= THRESHOLD
            # Two documents below the threshold may still belong together through a third:
            # merging them is wrong only when they lie in different true clusters.
            apart = true_labels[d.id] != true_labels[parent.id]
            row["variants"] += 1
            row["true"] += is_true
            row["apart"] += apart
            for verify, run in runs.items():
                tag = "v" if verify else "nv"
                hit = run["found"][d.key]
                row[f"{tag}_found_true"] += hit and is_true
                row[f"{tag}_merged_apart"] += hit and apart
        return table

    by_edit = tally(lambda d, s: d.edit)
    by_band = tally(lambda d, s: band_of(s))
    edit_similarity = defaultdict(list)
    for d, _, similarity in lineage:
        edit_similarity[d.edit].append(similarity)

    def rate(hits: int, total: int) -> str:
        return f"{hits / total:.3f}" if total else "-"

    kinds = Counter(d.edit for d in docs)
    summary = Table(title=f"dedup quality: {len(docs):,} documents ({kinds[Edit.SOURCE]} sources, "
                          f"{len(docs) - kinds[Edit.SOURCE]} variants), threshold {THRESHOLD}, "
                          f"{runs[True]['parameters']['bands']} bands x {runs[True]['parameters']['rows']} rows")
    for column in ("grouping", "true pairs", "predicted pairs", "precision", "recall", "F1", "ARI",
                   "P / R / F1 vs true-cluster pairs", "groups", "candidates", "removed by verify",
                   "exact dups", "near dups", "run s"):
        summary.add_column(column, justify="left" if column == "grouping" else "right")
    for verify, run in runs.items():
        scores, closure, counts = run["vs_true_pairs"], run["vs_true_cluster_pairs"], run["counts"]
        summary.add_row(f"winnow, verify {'on' if verify else 'off'}", f"{scores['true_pairs']:,}",
                        f"{scores['predicted_pairs']:,}",
                        f"{scores['precision']:.4f}", f"{scores['recall']:.4f}", f"{scores['f1']:.4f}",
                        f"{run['ari']:.4f}",
                        f"{closure['precision']:.3f} / {closure['recall']:.3f} / {closure['f1']:.3f}",
                        str(run["predicted_groups"]), f"{counts['candidate_edges']:,}",
                        f"{counts['edges_removed_by_verification']:,}", f"{counts['exact_duplicates']:,}",
                        f"{counts['near_duplicates_removed']:,}", f"{run['seconds']:.1f}")
    # What a perfect clustering scores: its pairs joined only through a third document count as false here.
    summary.add_row("the true clusters themselves", f"{reference['true_pairs']:,}", f"{reference['predicted_pairs']:,}",
                    f"{reference['precision']:.4f}", f"{reference['recall']:.4f}", f"{reference['f1']:.4f}",
                    "1.0000", "1.000 / 1.000 / 1.000", str(true_clusters), "", "", "", "", "", style="dim")
    console.print(summary)

    def breakdown(title: str, table: dict, first: str, order: list[str], extra=None) -> None:
        out = Table(title=title)
        columns = [first, "variants", "J >= 0.8"] + (["J median (min-max)"] if extra else [])
        columns += ["found, verify on", "found, verify off", "in different true clusters",
                    "merged anyway, on", "merged anyway, off"]
        for column in columns:
            out.add_column(column, justify="left" if column == first else "right")
        for name in order:
            row = table[name]
            cells = [name, str(row["variants"]), str(row["true"])] + ([extra(name)] if extra else [])
            cells += [f"{row['v_found_true']}/{row['true']} ({rate(row['v_found_true'], row['true'])})",
                      f"{row['nv_found_true']}/{row['true']} ({rate(row['nv_found_true'], row['true'])})",
                      str(row["apart"]), str(row["v_merged_apart"]), str(row["nv_merged_apart"])]
            out.add_row(*cells)
        console.print(out)

    def spread(edit: str) -> str:
        values = sorted(edit_similarity[edit])
        return f"{values[len(values) // 2]:.3f} ({values[0]:.3f}-{values[-1]:.3f})"

    edit_order = [e for e in EDIT_WEIGHTS if e in by_edit] + [e for e in by_edit if e not in EDIT_WEIGHTS]
    breakdown("variant with the document it was made from, by edit type", by_edit, "edit", edit_order, spread)
    band_order = sorted(by_band)
    breakdown("variant with the document it was made from, by exact Jaccard", by_band, "Jaccard", band_order)
    mismatches = runs[True]["text_mismatches"]
    console.print(f"corpus: {corpus} (built in {built:.0f} s); all-pairs truth in {truth_seconds:.1f} s; "
                  f"{len(true_pairs):,} pairs with J >= {THRESHOLD} in {true_clusters} "
                  f"true clusters; documents reaching dedup: {runs[True]['dedup_in']:,} of {len(docs):,}; curated "
                  f"texts whose normalised form differs from the corpus's: {mismatches}")
    for run in runs.values():
        del run["found"]
    print(json.dumps({
        "benchmark": "dedup_quality", "documents": len(docs), "sources": kinds[Edit.SOURCE],
        "edit_types": dict(kinds), "threshold": THRESHOLD, "true_pairs": len(true_pairs),
        "true_clusters": true_clusters, "true_clusters_as_prediction": reference,
        "verify_on": runs[True], "verify_off": runs[False],
        "by_edit": {k: dict(v) for k, v in by_edit.items()}, "by_band": {k: dict(v) for k, v in by_band.items()},
    }))


if __name__ == "__main__":
    main()
