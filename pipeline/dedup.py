"""Global deduplication in Beam: URL, exact digest, then MinHash-LSH near duplicates.

Only small per-document sketches (id, URL, crawl date, digest, signature) travel through
the grouping steps; the documents themselves meet the decisions once, at the end, by id.
Every grouping is keyed (by URL, digest, LSH band, cluster or id), so no step gathers all
sketches, edges or documents on one worker, and goes through `pipeline.grouping`: the
runner's shuffle on Dataflow and Flink, spill files on the local runner, so no worker holds
a grouped collection in memory. The report's pieces are bounded by the job (top clusters,
sampled pairs, top domains) before they meet.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import AsList, TaggedOutput

from pipeline.components import ConnectedComponents
from pipeline.document import Document, Outcome, Stage
from pipeline.minhash import (
    MinHashConfig, MinHasher, band_keys, estimated_jaccard, normalize_for_dedup, shingle_hashes, word_shingles,
)
from pipeline import grouping
from pipeline.sinks import SumPairs, runs_locally
from pipeline.stages import KEPT, REJECTED, TALLY, AccountedFn, record_worker_memory, tally_key

CLUSTER_ROWS = "cluster_rows"
SNIPPETS = "snippets"
DOMAINS = "domains"
KEEP_ORDER = "earliest crawl date (unknown dates last), then smallest id"
URL_KEEP_ORDER = "newest crawl date (unknown dates last), then smallest id"
_SIMILARITY_BINS = 20


class DedupReason:
    URL_DUPLICATE = "url_duplicate"
    EXACT_DUPLICATE = "exact_duplicate"
    NEAR_DUPLICATE = "near_duplicate"


class DedupNote:
    CANDIDATE_EDGES = "dedup.candidate_edges"
    VERIFICATION_REMOVED = "dedup.edges_removed_by_verification"
    NEAR_CLUSTERS = "dedup.near_duplicate_clusters"
    EMPTY_SHINGLES = "dedup.no_shingles"


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    enabled: bool = True  # false: every document passes, nothing under dedup/ is written
    url: bool = False  # drop repeat URLs first, keeping the newest crawl
    exact: bool = True  # drop documents whose normalised text has the same digest
    near: bool = True  # MinHash-LSH near duplicates, clustered globally
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    max_rounds: int = 24  # connected-components rounds before the run fails as not converged (a chain of
    # 100,000 documents needs at most 17; each round is two shuffles)
    report_clusters: int = 20  # largest clusters shown in the report, with their members
    report_members: int = 8  # members shown per cluster
    report_pairs: int = 50  # candidate pairs sampled for estimated vs exact Jaccard
    report_domains: int = 50  # domains with the most duplicates
    report_text_chars: int = 3000  # text shown per member in the cluster browser

    def __post_init__(self):
        for name in ("max_rounds", "report_clusters", "report_members", "report_pairs", "report_domains",
                     "report_text_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class Sketch:
    """What dedup needs of a document: small enough to shuffle several times."""

    id: str
    url: str | None
    crawl_date: datetime | None
    digest: bytes  # of the normalised text
    signature: bytes  # MinHash values, uint64 little-endian

    def values(self) -> np.ndarray:
        return np.frombuffer(self.signature, dtype="<u8")


@dataclass(frozen=True, slots=True)
class Removal:
    reason: str
    kept_id: str
    similarity: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate pair from one LSH bucket: a member and the bucket's smallest id."""

    a: str
    b: str
    estimated: float
    passed: bool




def _timestamp(date: datetime | None) -> float:
    if date is None:
        return math.inf
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    return date.timestamp()


def keep_key(sketch: Sketch) -> tuple:
    """The total order within a duplicate group: the first is kept (see KEEP_ORDER)."""
    return (_timestamp(sketch.crawl_date), sketch.id)


def url_keep_key(sketch: Sketch) -> tuple:
    """URL groups keep the newest crawl (see URL_KEEP_ORDER)."""
    stamp = _timestamp(sketch.crawl_date)
    return (stamp == math.inf, -stamp if stamp != math.inf else 0.0, sketch.id)


def normalize_url(url: str | None) -> str | None:
    """The URL that repeat crawls share: scheme and host lower case, no fragment, no default port."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def domain_of(url: str | None) -> str:
    if not url:
        return "(no url)"
    try:
        return (urlsplit(url).hostname or "(no host)").lower()
    except ValueError:
        return "(bad url)"


def _pair_rank(a: str, b: str) -> bytes:
    """A stable pseudo-random rank for sampling pairs the same way on every runner."""
    return hashlib.blake2b(f"{a}\x00{b}".encode(), digest_size=8).digest()


class _SketchFn(beam.DoFn):
    """Document -> Sketch, with the MinHash permutations built once per worker."""

    def __init__(self, minhash: MinHashConfig):
        self._config = minhash

    def setup(self):
        self._hasher = MinHasher.from_config(self._config)

    def process(self, doc: Document) -> Iterator[Sketch]:
        normalized = normalize_for_dedup(doc.text or "")
        shingles = word_shingles(normalized, self._config.ngram)
        digest = hashlib.blake2b(normalized.encode(), digest_size=16).digest()
        # A text with no words has no shingles: it takes part in exact dedup only, because
        # every empty signature is the same and would make all such texts one cluster.
        signature = b""
        if shingles:
            values = self._hasher.signature_from_hashes(shingle_hashes(shingles))
            signature = np.asarray(values, dtype="<u8").tobytes()
        yield Sketch(id=doc.id, url=doc.url, crawl_date=doc.crawl_date, digest=digest, signature=signature)


def _cluster_row(doc_id: str, cluster: str, kind: str, kept: bool, kept_id: str, similarity: float) -> dict:
    return {"id": doc_id, "cluster": cluster, "kind": kind, "kept": kept, "kept_id": kept_id,
            "similarity": float(similarity)}


class _KeepOnePerGroupFn(beam.DoFn):
    """A group of sketches with the same key: the first in order survives, the rest are removed."""

    def __init__(self, reason: str, kind: str, order):
        self._reason = reason
        self._kind = kind
        self._order = order

    def process(self, keyed: tuple[object, Iterable[Sketch]]) -> Iterator:
        _, group = keyed
        members = sorted(group, key=self._order)
        kept = members[0]
        yield kept
        if len(members) == 1:
            return
        cluster = min(s.id for s in members)
        yield TaggedOutput(CLUSTER_ROWS, _cluster_row(kept.id, cluster, self._kind, True, kept.id, 1.0))
        for other in members[1:]:
            yield TaggedOutput(REJECTED, (other.id, Removal(self._reason, kept.id, 1.0)))
            yield TaggedOutput(CLUSTER_ROWS, _cluster_row(other.id, cluster, self._kind, False, kept.id, 1.0))


def _own_key(key, doc_id: str):
    """The grouping key, or for a sketch without one a key no other sketch has (keys are str or bytes)."""
    return key if key is not None else ("unkeyed", doc_id)


class _KeepOnePerKey(beam.PTransform):
    """Sketches grouped by `key` (None: a group of its own); returns survivors, removals, cluster rows."""

    def __init__(self, key, order, reason: str, kind: str, temp_dir: str):
        super().__init__()
        self._temp_dir = temp_dir
        self._key = key
        self._order = order
        self._reason = reason
        self._kind = kind

    def expand(self, sketches):
        key = self._key
        # A sketch with no key (no URL, say) gets one of its own, a group of one, so that every
        # survivor leaves the grouping's step: merging survivors from two steps would make the
        # local runner hold them all and hand each worker its whole share at once.
        grouped = (
            sketches
            | "Key" >> beam.Map(lambda s: (_own_key(key(s), s.id), s))
            | "Group" >> grouping.GroupByKey(self._temp_dir)
            | "KeepFirst" >> beam.ParDo(_KeepOnePerGroupFn(self._reason, self._kind, self._order)).with_outputs(
                REJECTED, CLUSTER_ROWS, main=KEPT)
        )
        return grouped[KEPT], grouped[REJECTED], grouped[CLUSTER_ROWS]


def _bucket_pairs(keyed: tuple[bytes, Iterable[str]]) -> Iterator[tuple[tuple[str, str], None]]:
    """One LSH bucket: each member paired with the bucket's smallest id (ids only; signatures join later)."""
    _, members = keyed
    members = sorted(set(members))
    head = members[0]
    for other in members[1:]:
        yield (other, head), None


def _attach_first(keyed: tuple[str, dict]) -> Iterator[tuple[str, tuple[str, bytes]]]:
    """Join by a pair's first id: each pair (a, b) leaves keyed by b, carrying a's signature."""
    _, joined = keyed
    for signature in joined["signature"]:
        for b in joined["pair"]:
            yield b, (keyed[0], signature)


class _VerifyFn(beam.DoFn):
    """Join by a pair's second id: the pair's Jaccard similarity, estimated from both signatures."""

    def __init__(self, threshold: float, verify: bool):
        self._threshold = threshold
        self._verify = verify

    def process(self, keyed: tuple[str, dict]) -> Iterator[Candidate]:
        b, joined = keyed
        for signature_b in joined["signature"]:
            values_b = np.frombuffer(signature_b, dtype="<u8")
            for a, signature_a in joined["pair"]:
                similarity = estimated_jaccard(np.frombuffer(signature_a, dtype="<u8"), values_b)
                yield Candidate(a=a, b=b, estimated=similarity,
                                passed=similarity >= self._threshold or not self._verify)

    def finish_bundle(self):
        record_worker_memory("verify")


class _ResolveClusterFn(beam.DoFn):
    """A connected component of verified edges: keep one member by KEEP_ORDER, remove the rest."""

    def __init__(self, report_members: int):
        self._report_members = report_members

    def process(self, keyed: tuple[str, Iterable[Sketch]]) -> Iterator:
        label, group = keyed
        members = sorted(group, key=keep_key)
        kept = members[0]
        kept_values = kept.values()
        shown = []
        for position, member in enumerate(members):
            similarity = 1.0 if position == 0 else estimated_jaccard(kept_values, member.values())
            yield TaggedOutput(CLUSTER_ROWS, _cluster_row(member.id, label, "near", position == 0, kept.id, similarity))
            if position:
                yield (member.id, Removal(DedupReason.NEAR_DUPLICATE, kept.id, similarity))
            if position < self._report_members:
                shown.append({"id": member.id, "url": member.url, "kept": position == 0,
                              "similarity": round(similarity, 4)})
        yield TaggedOutput("summary", {"cluster": label, "size": len(members), "members": shown})


class _HistogramFn(beam.CombineFn):
    """Counts of values in [0, 1] over equal bins."""

    def create_accumulator(self):
        return [0] * _SIMILARITY_BINS

    def add_input(self, acc, value):
        acc[min(int(value * _SIMILARITY_BINS), _SIMILARITY_BINS - 1)] += 1
        return acc

    def merge_accumulators(self, accs):
        return [sum(column) for column in zip(*accs)]

    def extract_output(self, acc):
        return {"edges": [round(i / _SIMILARITY_BINS, 4) for i in range(_SIMILARITY_BINS + 1)], "counts": acc}


class _ApplyRemovalsFn(AccountedFn):
    """The join of documents and dedup decisions by id: kept, or dropped with the kept doc's id."""

    stage = Stage.DEDUP

    def __init__(self, text_chars: int):
        self._text_chars = text_chars

    def _id_sets(self, shown_ids: list, pair_ids: list) -> tuple[set, set]:
        # The side inputs are the same lists for every document of a bundle: build the sets once.
        sources = getattr(self, "_sources", (None, None))
        if sources[0] is not shown_ids or sources[1] is not pair_ids:
            self._sources = (shown_ids, pair_ids)
            self._sets = (set(shown_ids), set(pair_ids))
        return self._sets

    def process(self, keyed, shown_ids, pair_ids) -> Iterator:
        doc_id, joined = keyed
        removals = list(joined["removed"])
        shown, paired = self._id_sets(shown_ids, pair_ids)
        removed = bool(removals)
        for doc in joined["doc"]:
            self._tally[self._in_key] += 1
            yield TaggedOutput(DOMAINS, (domain_of(doc.url), (1, int(removed))))
            if doc_id in shown or doc_id in paired:
                # The sampled pairs need whole texts for their exact Jaccard; members shown only a part.
                text = doc.text if doc_id in paired else (doc.text or "")[: self._text_chars]
                yield TaggedOutput(SNIPPETS, {"id": doc_id, "url": doc.url, "text": text})
            if removed:
                removal = min(removals, key=lambda r: (r.reason, r.kept_id))
                yield self.rejected(doc, Outcome.DROPPED, removal.reason,
                                    f"duplicate of {removal.kept_id} (similarity {removal.similarity:.3f})")
            else:
                yield self.kept(doc)


class _CountFn(AccountedFn):
    """Pass documents through, counted as a stage that kept them all (dedup switched off)."""

    stage = Stage.DEDUP

    def process(self, doc: Document) -> Iterator:
        self._tally[self._in_key] += 1
        yield self.kept(doc)


def _note_tally(name: str):
    key = tally_key("note", name)
    return lambda _: {key: 1}


@dataclass
class DedupOutputs:
    kept: beam.PCollection
    rejected: beam.PCollection
    tally: beam.PCollection
    cluster_rows: beam.PCollection | None = None
    report: dict | None = None  # name -> PCollection holding one value each, for the report


class Deduplicate(beam.PTransform):
    """Kept documents in; kept documents, rejections, tallies and the report's pieces out."""

    def __init__(self, config: DedupConfig, temp_dir: str | None = None):
        super().__init__()
        self._config = config
        # Spill files of the groupings on the local runner (each removed when done); elsewhere unused.
        self._temp_dir = temp_dir

    def expand(self, docs) -> DedupOutputs:
        config = self._config
        if not config.enabled:
            out = docs | "CountOnly" >> beam.ParDo(_CountFn()).with_outputs(REJECTED, TALLY, main=KEPT)
            return DedupOutputs(kept=out[KEPT], rejected=out[REJECTED], tally=out[TALLY])
        minhash = config.minhash
        temp = self._temp_dir or (tempfile.mkdtemp(prefix="winnow-dedup-") if runs_locally(docs.pipeline) else "")
        sketches = docs | "Sketch" >> beam.ParDo(_SketchFn(minhash))
        removals, cluster_rows, notes = [], [], []
        live = sketches
        if config.url:
            live, removed, rows = live | "ByUrl" >> _KeepOnePerKey(
                lambda s: normalize_url(s.url), url_keep_key, DedupReason.URL_DUPLICATE, "url", f"{temp}/url")
            removals.append(removed)
            cluster_rows.append(rows)
        if config.exact:
            live, removed, rows = live | "ByDigest" >> _KeepOnePerKey(
                lambda s: s.digest, keep_key, DedupReason.EXACT_DUPLICATE, "exact", f"{temp}/exact")
            removals.append(removed)
            cluster_rows.append(rows)
        p = docs.pipeline
        summaries = None
        candidates = None
        similarity = None
        if config.near:
            rows_per_band = minhash.rows
            bands = minhash.bands
            # Buckets hold ids only; each candidate pair then meets both signatures in two joins
            # by id, so the largest shuffle carries a few bytes per band instead of a signature.
            pairs = (
                live
                | "BandKeys" >> beam.FlatMap(
                    lambda s: [(key, s.id)
                               for key in (band_keys(s.values(), bands=bands, rows=rows_per_band) if s.signature else ())])
                | "GroupBands" >> grouping.GroupByKey(f"{temp}/bands")
                | "PairInBucket" >> beam.FlatMap(_bucket_pairs)
                # A pair met in several bands is one candidate.
                | "GroupPairs" >> grouping.GroupByKey(f"{temp}/pairs")
                | "ByFirst" >> beam.Map(lambda kv: kv[0])
            )
            signatures = live | "SignatureById" >> beam.FlatMap(lambda s: [(s.id, s.signature)] if s.signature else [])
            candidates = (
                {"pair": pairs, "signature": signatures}
                | "JoinFirst" >> grouping.CoGroupByKey(f"{temp}/first")
                | "AttachFirst" >> beam.FlatMap(_attach_first)
            )
            candidates = (
                {"pair": candidates, "signature": signatures}
                | "JoinSecond" >> grouping.CoGroupByKey(f"{temp}/second")
                | "Verify" >> beam.ParDo(_VerifyFn(minhash.similarity_threshold, minhash.verify))
            )
            notes.append(candidates | "CountCandidates" >> beam.Map(_note_tally(DedupNote.CANDIDATE_EDGES)))
            notes.append(candidates | "FailedVerification" >> beam.Filter(lambda c: not c.passed)
                         | "CountFailed" >> beam.Map(_note_tally(DedupNote.VERIFICATION_REMOVED)))
            edges = candidates | "Verified" >> beam.Filter(lambda c: c.passed) | "Edge" >> beam.Map(lambda c: (c.a, c.b))
            labels = edges | "Components" >> ConnectedComponents(max_rounds=config.max_rounds)
            resolved = (
                {"label": labels, "sketch": live | "SketchById" >> beam.Map(lambda s: (s.id, s))}
                | "JoinLabels" >> grouping.CoGroupByKey(f"{temp}/labels")
                | "ByCluster" >> beam.FlatMap(
                    lambda kv: [(label, sketch) for label in kv[1]["label"] for sketch in kv[1]["sketch"]])
                | "GroupCluster" >> grouping.GroupByKey(f"{temp}/clusters")
                | "Resolve" >> beam.ParDo(_ResolveClusterFn(config.report_members)).with_outputs(
                    CLUSTER_ROWS, "summary", main="removed")
            )
            removals.append(resolved["removed"])
            cluster_rows.append(resolved[CLUSTER_ROWS])
            summaries = resolved["summary"]
            notes.append(summaries | "CountClusters" >> beam.Map(_note_tally(DedupNote.NEAR_CLUSTERS)))
            similarity = (
                resolved["removed"]
                | "Similarity" >> beam.Map(lambda kv: kv[1].similarity)
                | "SimilarityHistogram" >> beam.CombineGlobally(_HistogramFn())
            )
        # The report's bounded pieces.
        if summaries is not None:
            largest = summaries | "LargestClusters" >> beam.combiners.Top.Of(
                config.report_clusters, key=lambda c: (c["size"], c["cluster"]))
            sizes = (
                summaries
                | "ClusterSize" >> beam.Map(lambda c: c["size"])
                | "CountSizes" >> beam.combiners.Count.PerElement()
                | "SizesToList" >> beam.combiners.ToList()  # one entry per distinct size: small
            )
            sampled = candidates | "SamplePairs" >> beam.combiners.Top.Of(
                config.report_pairs, key=lambda c: _pair_rank(c.a, c.b), reverse=True)
        else:
            largest = p | "NoLargest" >> beam.Create([[]])
            sizes = p | "NoSizes" >> beam.Create([[]])
            sampled = p | "NoPairs" >> beam.Create([[]])
            similarity = p | "NoSimilarity" >> beam.Create([_HistogramFn().extract_output([0] * _SIMILARITY_BINS)])
        shown_ids = largest | "ShownIds" >> beam.FlatMap(lambda top: [m["id"] for c in top for m in c["members"]])
        pair_ids = sampled | "PairIds" >> beam.FlatMap(lambda top: [i for c in top for i in (c.a, c.b)])

        all_removed = (tuple(removals) or (p | "NoRemovals" >> beam.Create([]),)) | "MergeRemovals" >> beam.Flatten()
        joined = (
            {"doc": docs | "DocById" >> beam.Map(lambda d: (d.id, d)), "removed": all_removed}
            | "JoinDecisions" >> grouping.CoGroupByKey(f"{temp}/decisions")
            | "ApplyDecisions" >> beam.ParDo(
                _ApplyRemovalsFn(config.report_text_chars), AsList(shown_ids), AsList(pair_ids)).with_outputs(
                REJECTED, TALLY, SNIPPETS, DOMAINS, main=KEPT)
        )
        domains = (
            joined[DOMAINS]
            | "SumDomains" >> beam.CombinePerKey(SumPairs())
            | "WithDuplicates" >> beam.Filter(lambda kv: kv[1][1] > 0)
            | "TopDomains" >> beam.combiners.Top.Of(config.report_domains, key=lambda kv: (kv[1][1], kv[1][0], kv[0]))
        )
        tallies = [joined[TALLY]] + notes
        tally = tuple(tallies) | "MergeDedupTallies" >> beam.Flatten()
        rows = (tuple(cluster_rows) or (p | "NoClusterRows" >> beam.Create([]),)) | "MergeClusterRows" >> beam.Flatten()
        report = {
            "largest": largest,
            "sizes": sizes,
            "pairs": sampled,
            "similarity": similarity,
            "domains": domains,
            "snippets": joined[SNIPPETS],
        }
        return DedupOutputs(kept=joined[KEPT], rejected=joined[REJECTED], tally=tally, cluster_rows=rows,
                            report=report)


__all__ = ["DedupConfig", "DedupReason", "DedupNote", "Deduplicate", "DedupOutputs", "Sketch", "keep_key",
           "url_keep_key", "normalize_url", "domain_of", "KEEP_ORDER", "URL_KEEP_ORDER"]
