import subprocess
import sys
import textwrap

import pytest

from pipeline.configfile import ConfigError
from pipeline.job import job_toml, load_job

MINIMAL = """
[job]
name = "t"
output_dir = "{out}"
[input]
paths = ["{inp}"]
"""


def write(tmp_path, body: str, name="job.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\n')
    return str(tmp_path / "*.jsonl")


def test_minimal_job_gets_documented_defaults(tmp_path, inputs):
    job = load_job(write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs)))
    assert job.extract.max_bytes == 2_000_000
    assert job.extract.favor_precision is True
    assert job.language.min_score == 0.65
    assert job.output.compression == "zstd"
    assert job.quality.gopher_quality.min_words == 50
    with pytest.raises(Exception):
        job.extract.max_bytes = 1  # frozen


@pytest.mark.parametrize(
    "extra, message",
    [
        ("[extract]\nmax_byte = 5\n", "[extract]|extract: unknown key 'max_byte'; allowed:"),
        ("[extract]\nmax_bytes = \"big\"\n", "extract.max_bytes: expected int, got 'big'"),
        ("[output]\ncompression = \"lz4\"\n", "output.compression: got 'lz4', allowed: 'zstd' | 'snappy' | 'gzip' | 'none'"),
        ("[languag]\nmin_score = 0.5\n", "unknown section 'languag'; allowed:"),
        ("[language]\nmin_score = 1.5\n", "language: min_score must lie between 0 and 1"),
        ("[quality.c4]\nenabled = 1\n", "quality.c4.enabled: expected bool, got 1"),
    ],
)
def test_bad_keys_and_types_name_file_key_and_allowed(tmp_path, inputs, extra, message):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs) + extra)
    with pytest.raises(ConfigError) as error:
        load_job(path)
    text = str(error.value)
    assert text.startswith(str(path) + ": ")
    assert any(m in text for m in message.split("|")), text
    assert "\n" not in text


def test_unknown_key_lists_allowed_keys(tmp_path, inputs):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs) + "[extract]\ntimeout = 3\n")
    with pytest.raises(ConfigError, match="allowed: .*timeout_s"):
        load_job(path)


def test_missing_section_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required section \[input\]"):
        load_job(write(tmp_path, '[job]\nname = "x"\noutput_dir = "o"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_job(write(tmp_path, "[job\n"))
    with pytest.raises(ConfigError, match="cannot read the job file"):
        load_job(tmp_path / "nope.toml")


def test_resolved_job_round_trips_through_toml(tmp_path, inputs):
    path = write(tmp_path, MINIMAL.format(out="rel/run", inp=inputs) + '[runner]\nrunner = "DirectRunner"\n')
    job = load_job(path)
    assert job.run_dir.startswith("/")
    again = write(tmp_path, job_toml(job), "resolved.toml")
    assert load_job(again) == job


def _winnow(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_bad_job_exits_2_with_one_line(tmp_path, inputs):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs) + "[extract]\nmax_bytes = -1\n")
    result = _winnow("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "extract: max_bytes must be positive" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing started


def test_cli_missing_input_exits_2_before_any_work(tmp_path):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=tmp_path / "none" / "*.warc.gz"))
    result = _winnow("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "matches no files" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_refuses_to_overwrite_a_run_without_flag(tmp_path, inputs):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stats.json").write_text("{}")
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs))
    result = _winnow("run", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "--overwrite" in result.stderr


def test_runner_table_becomes_flags_and_command_line_flags_win(tmp_path, inputs):
    from pipeline.curate import runner_flags

    body = MINIMAL.format(out=tmp_path / "run", inp=inputs) + (
        '[runner]\nrunner = "DirectRunner"\ndirect_num_workers = 2\nsave_main_session = false\n'
        'experiments = ["a", "b"]\n')
    job = load_job(write(tmp_path, body))
    flags = runner_flags(job, ["--runner=PortableRunner"])
    assert flags == ["--runner=DirectRunner", "--direct_num_workers=2", "--experiments=a", "--experiments=b",
                     "--runner=PortableRunner"]
    with pytest.raises(ConfigError, match="runner.direct_num_workers: expected"):
        load_job(write(tmp_path, MINIMAL.format(out=tmp_path / "run", inp=inputs)
                       + "[runner]\ndirect_num_workers = {a = 1}\n", "bad.toml"))
