"""The multi-node training files: the PyTorchJob and its job file, the training image, and the torchrun lines
that the Slurm and SSH launchers start (run with stand-ins for srun, scontrol and ssh); nothing reaches a cluster."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model.config import PRESETS
from train.config import TrainJob, load_train_job

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "deploy" / "train"
SBATCH = TRAIN / "slurm" / "train.sbatch"
LAUNCH = TRAIN / "ssh" / "launch.sh"


def objects() -> dict[str, dict]:
    docs = [doc for doc in yaml.safe_load_all((TRAIN / "k8s" / "pytorchjob.yaml").read_text()) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs) and set(by_kind) == {"ConfigMap", "PersistentVolumeClaim", "PyTorchJob"}
    return by_kind


def worker() -> dict:
    return objects()["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Worker"]


def pytorch_container() -> dict:
    [container] = [c for c in worker()["template"]["spec"]["containers"] if c["name"] == "pytorch"]
    return container


def flag(args: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) <= 1, f"--{name} given twice"
    return values[0] if values else None


@pytest.fixture
def configmap_job(tmp_path) -> TrainJob:
    """The ConfigMap's job file, loaded by winnow's own loader: a misspelt key or a bad value fails here."""
    [(key, text)] = objects()["ConfigMap"]["data"].items()
    path = tmp_path / key
    path.write_text(text)
    return load_train_job(path)


def test_the_configmap_holds_a_valid_job_on_bucket_data_and_a_mounted_run_directory(configmap_job):
    job = configmap_job
    assert job.data.path.startswith("gs://")
    # The trainer refuses a URL as output_dir: checkpoints go through DCP's file writer.
    assert "://" not in job.run_dir
    assert job.data.seq_len <= PRESETS[job.model.preset]["max_seq_len"], "the trainer would refuse this seq_len"
    assert job.parallel.device == "cuda"
    container = pytorch_container()
    volumes = {v["name"]: v for v in worker()["template"]["spec"]["volumes"]}
    [run_mount] = [m for m in container["volumeMounts"] if job.run_dir.startswith(m["mountPath"].rstrip("/") + "/")]
    claim = volumes[run_mount["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = objects()["PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == claim
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every node writes checkpoints to the run directory"


def test_the_container_runs_the_mounted_job_file_through_torchrun(configmap_job):
    container = pytorch_container()
    command = container["command"] + container.get("args", [])
    assert command[0] == "torchrun"
    assert command[-3:-1] == ["-m", "train"]
    job_file = Path(command[-1])
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == job_file.parent]
    volume = next(v for v in worker()["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = objects()["ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert job_file.name in configmap["data"]
    # Node count and rendezvous come from the operator (PET_* variables), not from the command.
    assert not {"--standalone", "--nnodes", "--rdzv_endpoint"} & {a.split("=")[0] for a in command}


def test_the_pytorchjob_is_an_elastic_c10d_job_with_one_rank_per_gpu(configmap_job):
    pytorchjob = objects()["PyTorchJob"]
    assert pytorchjob["apiVersion"] == "kubeflow.org/v1" and pytorchjob["kind"] == "PyTorchJob"
    spec = pytorchjob["spec"]
    assert set(spec["pytorchReplicaSpecs"]) == {"Worker"}
    elastic = spec["elasticPolicy"]
    assert elastic["rdzvBackend"] == "c10d"
    # The loader refuses a resume with another world size, so the node count must not change.
    assert elastic["minReplicas"] == elastic["maxReplicas"] == worker()["replicas"]
    # The operator rejects the deprecated elasticPolicy.nProcPerNode next to spec.nprocPerNode.
    assert "nProcPerNode" not in elastic
    container = pytorch_container()
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    nproc = flag(container["command"] + container.get("args", []), "nproc_per_node")
    assert int(spec["nprocPerNode"]) == int(nproc) == gpus == configmap_job.parallel.processes
    # The operator builds the rendezvous endpoint from this port of the `pytorch` container.
    assert "pytorchjob-port" in [p["name"] for p in container["ports"]]
    assert worker()["restartPolicy"] in {"Always", "OnFailure", "Never", "ExitCode"}
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_dev_shm_is_memory_backed():
    container = pytorch_container()
    [shm] = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    volume = next(v for v in worker()["template"]["spec"]["volumes"] if v["name"] == shm["name"])
    assert volume["emptyDir"]["medium"] == "Memory"


def test_the_training_image_pins_the_locked_torch_and_python():
    dockerfile = (TRAIN / "Dockerfile").read_text()
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line)
    assert f"torch=={lock['torch']}" in dockerfile and "-r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    assert re.fullmatch(rf"python:{sys.version_info.major}\.{sys.version_info.minor}\.\d+-slim-\w+", base)


@pytest.mark.parametrize("script", [SBATCH, LAUNCH], ids=["sbatch", "ssh"])
def test_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK)


def test_sbatch_asks_for_one_task_per_node_with_gpus():
    directives = dict(re.findall(r"^#SBATCH\s+--([\w-]+)(?:=(\S+))?", SBATCH.read_text(), re.MULTILINE))
    assert int(directives["nodes"]) >= 2
    assert directives["ntasks-per-node"] == "1"
    assert int(directives["gpus-per-node"]) >= 1


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_sbatch_starts_one_torchrun_per_node_with_c10d_on_the_first(tmp_path):
    stub(tmp_path, "scontrol", '[ "$1 $2 $3" = "show hostnames gpu-[07-08]" ] && printf "gpu-07\\ngpu-08\\n"\n')
    stub(tmp_path, "srun", 'printf "%s\\n" "$PWD" "$@" > "$STUB_OUT"\n')
    out = tmp_path / "srun.out"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB_OUT": str(out),
           "SLURM_SUBMIT_DIR": str(ROOT), "SLURM_JOB_NODELIST": "gpu-[07-08]", "SLURM_NNODES": "2",
           "SLURM_JOB_ID": "4242", "SLURM_GPUS_PER_NODE": "h100:8"}
    result = subprocess.run(["bash", str(SBATCH), "jobs/train-tiny.toml"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    cwd, *argv = out.read_text().splitlines()
    assert cwd == str(ROOT)
    torchrun = argv.index(str(ROOT / ".venv" / "bin" / "torchrun"))
    assert argv[torchrun + 1:] == ["--nnodes=2", "--nproc_per_node=8", "--rdzv_backend=c10d",
                                   "--rdzv_endpoint=gpu-07:29500", "--rdzv_id=4242", "-m", "train",
                                   "jobs/train-tiny.toml"]


def test_ssh_launcher_runs_the_same_torchrun_line_on_every_host(tmp_path):
    stub(tmp_path, "ssh", 'printf "%s\\n" "$@" > "$STUB_OUT/$4"\n[ "$4" = fails ] && exit 3\nexit 0\n')
    (tmp_path / "out").mkdir()
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB_OUT": str(tmp_path / "out"),
           "WINNOW_HOME": "/srv/win now", "GPUS_PER_NODE": "4", "RDZV_ID": "run-1"}
    hosts = ["node-a", "node-b", "node-c"]
    result = subprocess.run([str(LAUNCH), "jobs/my train.toml", *hosts], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for host in hosts:
        *options, remote = (tmp_path / "out" / host).read_text().splitlines()
        assert options[-1] == host
        assert shlex.split(remote) == [
            "cd", "/srv/win now", "&&", ".venv/bin/torchrun", "--nnodes=3", "--nproc_per_node=4",
            "--rdzv_backend=c10d", "--rdzv_endpoint=node-a:29500", "--rdzv_id=run-1", "-m", "train",
            "jobs/my train.toml"]
    failed = subprocess.run([str(LAUNCH), "job.toml", "node-a", "fails"], env=env, capture_output=True)
    assert failed.returncode == 3
    usage = subprocess.run([str(LAUNCH), "job.toml"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
