"""TrainTokenizer and Tokenize on the in-process DirectRunner, and the commands that share their code."""

import argparse
import json
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.sinks import MergeCounts
from pipeline.token_manifest import build_manifest, read_manifest
from pipeline.tokenize_stage import DocumentEncoder, Tokenize, TrainTokenizer
from pipeline.tokenizer import END_OF_TEXT_ID, TokenizerConfig, load_tokenizer, tokenizer_hash
from pipeline.tokenizer_commands import EXIT_BAD_INPUT, add_commands
from tests.fixtures.tokenizer_corpus import make_documents

CONFIG = TokenizerConfig(vocab_size=500, sample_bytes=60_000, max_document_chars=3000, seed=3)
SHARDS = dict(target_shard_bytes=40_000, row_group_bytes=8_000, compression="zstd", compression_level=3)


@dataclass(frozen=True)
class Doc:
    id: str
    text: str


def corpus() -> list[Doc]:
    docs = [Doc(doc_id, text) for doc_id, text in make_documents(150)]
    docs.append(Doc("f" * 32, "word " * 1000))  # 5000 characters: over max_document_chars
    return docs


COUNTED = ("tokenize.in", "tokenize.kept", "tokenize.dropped.too_long", "write.tokens_rows")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Both transforms once; returns the run directory, with the merged tally in tally.json."""
    root = tmp_path_factory.mktemp("tokenize")
    with test_pipeline.TestPipeline() as p:
        docs = p | "Docs" >> beam.Create(corpus())
        path = docs | "Train" >> TrainTokenizer(CONFIG, str(root / "tokenizer"))
        out = docs | "Tokenize" >> Tokenize(CONFIG, str(root / "tokens"), path, **SHARDS)
        tally = out.tally | "Merge" >> beam.CombineGlobally(MergeCounts())
        counted = tally | "Counted" >> beam.Map(lambda t: {k: t.get(k) for k in COUNTED})
        assert_that(counted, equal_to([dict(zip(COUNTED, (151, 150, 1, 150)))]))
        tally | "KeepTally" >> beam.Map(lambda t: (root / "tally.json").write_text(json.dumps(t)))
    return root


def test_tokenizer_is_written_with_its_hugging_face_settings(run):
    files = sorted(p.name for p in (run / "tokenizer").iterdir())
    assert files == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    tokenizer = load_tokenizer((run / "tokenizer" / "tokenizer.json").read_bytes())
    assert tokenizer.get_vocab_size() == CONFIG.vocab_size
    config = json.loads((run / "tokenizer" / "tokenizer_config.json").read_text())
    assert (config["eos_token"], config["pad_token"]) == ("<|endoftext|>", "<|pad|>")


def test_token_shards_hold_every_kept_document_sorted_and_decodable(run):
    tokenizer = load_tokenizer((run / "tokenizer" / "tokenizer.json").read_bytes())
    texts = {doc.id: doc.text for doc in corpus()}
    shards = sorted((run / "tokens").glob("*.parquet"))
    assert len(shards) > 1 and all(p.name.endswith(f"-of-{len(shards):05d}.parquet") for p in shards)
    seen = []
    for shard in shards:
        table = pq.read_table(shard)
        assert table.schema.field("tokens").type == pa.list_(pa.field("item", pa.uint16(), nullable=False))
        assert pq.ParquetFile(shard).metadata.num_row_groups > 1 or table.num_rows < 3
        ids = table.column("id").to_pylist()
        assert ids == sorted(ids)
        for row in table.to_pylist():
            assert row["tokens"][-1] == END_OF_TEXT_ID and row["num_tokens"] == len(row["tokens"])
            assert tokenizer.decode(row["tokens"][:-1]) == texts[row["id"]]
        seen += ids
    assert sorted(seen) == sorted(doc_id for doc_id in texts if doc_id != "f" * 32)


def test_manifest_matches_the_shards_on_disk(run):
    manifest = read_manifest(str(run / "tokens" / "manifest.json"))
    tokenizer_path = run / "tokenizer" / "tokenizer.json"
    assert manifest["tokenizer"] == {"path": str(tokenizer_path), "sha256": tokenizer_hash(str(tokenizer_path)),
                                     "vocab_size": CONFIG.vocab_size, "end_of_text_id": 0, "pad_id": 1}
    assert manifest["dtype"] == "uint16"
    assert (manifest["dropped"], manifest["failed"]) == ({"too_long": 1}, {})
    for shard in manifest["shards"]:
        table = pq.read_table(run / "tokens" / shard["path"])
        assert (shard["documents"], shard["tokens"]) == (table.num_rows, sum(table.column("num_tokens").to_pylist()))
    assert manifest["documents"] == 150
    tally = json.loads((run / "tally.json").read_text())
    assert tally["tokenize.tokens"] == manifest["tokens"]
    assert tally["write.tokens_shards"] == len(manifest["shards"])


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="winnow")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def command(argv: list[str]) -> int:
    args = parse(argv)
    return args.handler(args)


def write_curated(path, docs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs],
                      "language": ["en"] * len(docs)})
    pq.write_table(table, path)


def test_commands_give_the_same_tokenizer_and_shards_as_the_pipeline(run, tmp_path, capsys):
    docs = corpus()
    for i in range(3):  # curated shards split another way than the pipeline saw them
        write_curated(tmp_path / "curated" / f"part-{i}.parquet", docs[i::3])
    tokenizer = tmp_path / "tokenizer" / "tokenizer.json"
    assert command(["tokenizer", "train", "--input", str(tmp_path / "curated" / "*.parquet"), "--out", str(tokenizer),
                    "--vocab-size", "500", "--sample-bytes", "60000", "--seed", "3",
                    "--max-document-chars", "3000"]) == 0
    assert tokenizer.read_bytes() == (run / "tokenizer" / "tokenizer.json").read_bytes()
    assert command(["tokenize", "--tokenizer", str(tokenizer), "--input", str(tmp_path / "curated" / "*.parquet"),
                    "--out", str(tmp_path / "tokens"), "--target-shard-bytes", "40000", "--row-group-bytes", "8000",
                    "--max-document-chars", "3000"]) == 0
    ours = sorted(p.name for p in (tmp_path / "tokens").iterdir())
    assert ours == sorted(p.name for p in (run / "tokens").iterdir())
    for name in ours:
        if name.endswith(".parquet"):  # byte for byte
            assert (tmp_path / "tokens" / name).read_bytes() == (run / "tokens" / name).read_bytes(), name
    manifest = read_manifest(str(tmp_path / "tokens" / "manifest.json"))
    pipeline_manifest = read_manifest(str(run / "tokens" / "manifest.json"))
    assert {**manifest, "tokenizer": None} == {**pipeline_manifest, "tokenizer": None}
    assert manifest["tokenizer"]["sha256"] == pipeline_manifest["tokenizer"]["sha256"]
    out = capsys.readouterr().out
    assert "encoded 150 documents" in out and "too_long 1" in out

    # A second run into the same directory must be asked to overwrite.
    again = ["tokenize", "--tokenizer", str(tokenizer), "--input", str(tmp_path / "curated" / "*.parquet"),
             "--out", str(tmp_path / "tokens")]
    assert command(again) == EXIT_BAD_INPUT
    assert "already holds token shards; pass --overwrite" in capsys.readouterr().err
    assert command(again + ["--overwrite"]) == 0


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err


def test_bad_inputs_are_one_line_errors_with_exit_code_2(tmp_path, capsys):
    write_curated(tmp_path / "curated" / "part-0.parquet", corpus()[:20])
    write_curated(tmp_path / "empty" / "part-0.parquet", [Doc("a" * 32, ""), Doc("b" * 32, "")])
    curated = str(tmp_path / "curated" / "*.parquet")
    train = ["tokenizer", "train", "--out", str(tmp_path / "t.json")]
    assert command(train + ["--input", str(tmp_path / "nothing-*.parquet")]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "matches no files")
    assert command(train + ["--input", str(tmp_path / "empty" / "*.parquet")]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "winnow tokenizer train: error:", "empty")
    assert command(train + ["--input", curated, "--vocab-size", "100"]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "vocab_size 100 is too small: the minimum is 268")
    assert not (tmp_path / "t.json").exists()
    tokenize = ["tokenize", "--input", curated, "--out", str(tmp_path / "tokens")]
    assert command(tokenize + ["--tokenizer", str(tmp_path / "missing.json")]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "missing.json: tokenizer file not found")
    (tmp_path / "broken.json").write_text("{}")
    assert command(tokenize + ["--tokenizer", str(tmp_path / "broken.json")]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "broken.json: not a tokenizers file")
    assert command(["plan", str(tmp_path)]) == EXIT_BAD_INPUT
    _one_line_error(capsys, "tokens/manifest.json: not found")


def test_tokenize_with_no_documents_leaves_one_empty_shard(run, tmp_path):
    with test_pipeline.TestPipeline() as p:
        docs = p | "NoDocs" >> beam.Create([], reshuffle=False).with_output_types(Doc)
        path = p | "Path" >> beam.Create([str(run / "tokenizer" / "tokenizer.json")])
        docs | Tokenize(CONFIG, str(tmp_path / "tokens"), path, **SHARDS)
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == ["manifest.json", "part-00000-of-00001.parquet"]
    assert pq.read_table(tmp_path / "tokens" / "part-00000-of-00001.parquet").num_rows == 0
    manifest = read_manifest(str(tmp_path / "tokens" / "manifest.json"))
    assert (manifest["documents"], manifest["tokens"], len(manifest["shards"])) == (0, 0, 1)


def test_a_text_the_tokenizer_refuses_is_counted_and_its_batch_still_encoded(run):
    tokenizer = load_tokenizer((run / "tokenizer" / "tokenizer.json").read_bytes())
    encoder = DocumentEncoder(tokenizer, CONFIG, batch_size=3)
    rows = encoder.add("a", "fine") + encoder.add("b", "lone \ud800 surrogate") + encoder.add("c", "also fine")
    assert [row[0] for row in rows] == ["a", "c"]
    assert np.frombuffer(rows[1][1], dtype=np.uint16)[-1] == END_OF_TEXT_ID
    assert encoder.tally == {"tokenize.in": 3, "tokenize.kept": 2, "tokenize.failed.TypeError": 1,
                             "tokenize.tokens": sum(len(row[1]) // 2 for row in rows)}


def test_batches_are_bounded_by_documents_and_by_characters(run):
    tokenizer = load_tokenizer((run / "tokenizer" / "tokenizer.json").read_bytes())
    encoder = DocumentEncoder(tokenizer, CONFIG, batch_size=3, batch_chars=100)
    assert encoder.add("a", "x" * 60) == []
    assert [row[0] for row in encoder.add("b", "y" * 40)] == ["a", "b"]  # 100 characters
    assert encoder.add("c", "z") == [] and encoder.add("d", "z") == []
    assert [row[0] for row in encoder.add("e", "z")] == ["c", "d", "e"]  # 3 documents
    assert encoder.flush() == []


def test_overlapped_encoding_returns_the_same_rows_and_counts(run):
    tokenizer = load_tokenizer((run / "tokenizer" / "tokenizer.json").read_bytes())
    docs = [(f"d{i:03d}", f"document {i} " * (i % 7 + 1)) for i in range(50)] + [("bad", "lone \ud800")]
    plain = DocumentEncoder(tokenizer, CONFIG, batch_size=4)
    overlapped = DocumentEncoder(tokenizer, CONFIG, batch_size=4, overlap=True)
    plain_rows = [row for doc in docs for row in plain.add(*doc)] + plain.finish()
    first = overlapped.add(*docs[0]) + overlapped.add(*docs[1]) + overlapped.add(*docs[2]) + overlapped.add(*docs[3])
    assert first == []  # the first full batch is still encoding
    overlapped_rows = first + [row for doc in docs[4:] for row in overlapped.add(*doc)] + overlapped.finish()
    overlapped.close()
    assert overlapped_rows == plain_rows and len(plain_rows) == 50
    assert overlapped.tally == plain.tally and overlapped.tally["tokenize.failed.TypeError"] == 1


def test_training_on_no_text_fails_the_pipeline_with_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no text to train the tokenizer on"):
        with test_pipeline.TestPipeline() as p:
            docs = p | "Docs" >> beam.Create([Doc("a" * 32, ""), Doc("b" * 32, "x" * 4000)])  # empty, too long
            docs | TrainTokenizer(CONFIG, str(tmp_path / "tokenizer"))
    assert not (tmp_path / "tokenizer").exists()


def test_plan_sizes_a_model_for_the_tokens(tmp_path, capsys):
    (tmp_path / "tokens").mkdir()
    manifest = build_manifest(tokenizer_path="t.json", tokenizer_sha256="0" * 64, vocab_size=32000,
                              end_of_text_id=0, pad_id=1, dtype="uint16",
                              shards=[{"path": "part-00000-of-00001.parquet", "documents": 10**8,
                                       "tokens": 140 * 10**9}])
    (tmp_path / "tokens" / "manifest.json").write_text(json.dumps(manifest))
    assert command(["plan", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "140,000,000,000" in out
    assert "compute-optimal parameters at 20 tokens per parameter: 7B" in out
    assert "nearest preset: 7b" in out


def test_registering_the_commands_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = ("import argparse, sys; from pipeline.tokenizer_commands import add_commands; "
            "add_commands(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('torch', 'apache_beam', 'tokenizers', 'model.config') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_token_dtype_survives_the_shard_writer(run):
    table = pq.read_table(sorted((run / "tokens").glob("*.parquet"))[0])
    assert np.asarray(table.column("tokens").combine_chunks().values).dtype == np.uint16
