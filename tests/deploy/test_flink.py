"""The Flink deployment files agree with each other, with Beam and with winnow; checked offline, nothing is started."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from pathlib import Path

import apache_beam
import pytest
import yaml
from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    JobServerOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

from pipeline.curate import runner_flags
from pipeline.job import apply_profile, load_job

ROOT = Path(__file__).resolve().parents[2]
FLINK = ROOT / "deploy" / "flink"
BEAM = apache_beam.__version__
WORKER_POOL_PORT = 50000
JOB_SERVER_PORTS = {8099, 8098, 8097}  # job service, artifact staging, Java expansion service


def compose() -> dict:
    return yaml.safe_load((FLINK / "docker-compose.yml").read_text())


def profile() -> dict:
    return tomllib.loads((FLINK / "profile.toml").read_text())


def manifests(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((FLINK / "k8s" / name).read_text()) if doc]


def assert_pinned(image: str) -> None:
    name, colon, tag = image.rpartition(":")
    assert colon and name and "/" not in tag, f"{image}: no tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{image}: tag {tag!r} is not a version"


def flink_minor(image: str) -> str:
    """`flink:1.19.1-scala_2.12-java11` -> `1.19`."""
    match = re.fullmatch(r"flink:(\d+\.\d+)\.\d+-.+", image)
    assert match, f"{image}: not an official flink image with a full version"
    return match.group(1)


def job_server_versions(image: str) -> tuple[str, str]:
    """`apache/beam_flink1.19_job_server:2.77.0` -> (`1.19`, `2.77.0`)."""
    match = re.fullmatch(r"apache/beam_flink(\d+\.\d+)_job_server:(.+)", image)
    assert match, f"{image}: not Beam's Flink job server image"
    return match.group(1), match.group(2)


def flag(args: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) <= 1, f"--{name} given twice: {values}"
    return values[0] if values else None


def published_ports(service: dict) -> set[int]:
    """Container ports of `host_ip:host:container` / `host:container` entries."""
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def mounts(service: dict) -> dict[str, str]:
    """Mount target -> source of a service's short-syntax volumes."""
    pairs = [str(v).split(":")[:2] for v in service.get("volumes", [])]
    return {target: source for source, target in pairs}


def flink_properties(service: dict) -> dict[str, str]:
    lines = service["environment"]["FLINK_PROPERTIES"].strip().splitlines()
    return dict((part.strip() for part in line.split(":", 1)) for line in lines)


def is_under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def same_path_dirs(service: dict) -> list[str]:
    """Host directories mounted at their own path: what the launcher and the workers both see."""
    return [target for target, source in mounts(service).items() if source == target and source.startswith("/")]


def test_compose_runs_a_pinned_flink_cluster_the_job_server_supports():
    services = compose()["services"]
    assert set(services) == {"jobmanager", "taskmanager", "beam-worker-pool", "job-server"}
    for name, service in services.items():
        assert_pinned(service["image"])
    assert services["jobmanager"]["image"] == services["taskmanager"]["image"]
    assert services["jobmanager"]["command"] == "jobmanager" and services["taskmanager"]["command"] == "taskmanager"
    minor = flink_minor(services["jobmanager"]["image"])
    server_flink, server_beam = job_server_versions(services["job-server"]["image"])
    assert server_flink == minor, "the job server must be built for the cluster's Flink version"
    assert server_beam == BEAM, "the job server must run the Beam version winnow launches with"
    assert minor in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS, f"Beam {BEAM} has no Flink {minor} runner"
    for name in ("jobmanager", "taskmanager"):
        assert flink_properties(services[name])["jobmanager.rpc.address"] == "jobmanager"
    assert 8081 in published_ports(services["jobmanager"])  # web UI, and FlinkRunner's --flink_master


def test_compose_worker_pool_shares_the_taskmanagers_network_and_runs_winnows_image():
    services = compose()["services"]
    pool = services["beam-worker-pool"]
    assert "--worker_pool" in pool["command"]
    # The TaskManager reaches the pool at localhost:50000 only from inside its own network namespace.
    assert pool["network_mode"] == "service:taskmanager"
    assert profile()["runner"]["environment_config"] == f"localhost:{WORKER_POOL_PORT}"
    dockerfile = ROOT / "deploy" / "flink" / pool["build"]["context"] / pool["build"]["dockerfile"]
    base = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE).group(1)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert base == f"apache/beam_python{python}_sdk:{BEAM}", "workers must run the launcher's Beam and Python"
    assert not re.search(r"^ENTRYPOINT", dockerfile.read_text(), re.MULTILINE), "--worker_pool goes to Beam's boot"


def test_compose_job_server_points_at_the_jobmanager_and_publishes_its_ports():
    services = compose()["services"]
    server = services["job-server"]
    args = server["command"]
    host, port = flag(args, "flink-master").split(":")
    assert host in services and host == "jobmanager" and port == "8081"
    assert flag(args, "job-host") == "0.0.0.0", "the default (localhost) is unreachable through a published port"
    assert published_ports(server) == JOB_SERVER_PORTS
    runner = profile()["runner"]
    assert int(runner["job_endpoint"].rsplit(":", 1)[1]) == 8099
    assert int(runner["artifact_endpoint"].rsplit(":", 1)[1]) == 8098
    # Artifacts the job server stages are read back by the TaskManager: one volume, one path.
    artifacts = flag(args, "artifacts-dir")
    assert artifacts in mounts(server)
    assert mounts(services["taskmanager"]).get(artifacts) == mounts(server)[artifacts]


def test_compose_shares_one_directory_at_the_same_path_with_the_launcher():
    services = compose()["services"]
    shared = same_path_dirs(services["beam-worker-pool"])
    assert shared, "the worker pool needs a host directory mounted at the same path"
    assert set(shared) <= set(same_path_dirs(services["taskmanager"]))
    job = load_job(FLINK / "sample.toml")
    for path in (job.run_dir, *job.input.paths):
        assert any(is_under(path, d) for d in shared), f"{path} is not on a directory the workers share"


def test_compose_slots_cover_the_profiles_parallelism():
    slots = int(flink_properties(compose()["services"]["taskmanager"])["taskmanager.numberOfTaskSlots"])
    runner = profile()["runner"]
    assert runner["parallelism"] <= slots
    assert runner["sdk_worker_parallelism"] == runner["parallelism"]


def test_profile_is_a_runner_table_that_beam_parses():
    table = profile()
    assert set(table) == {"runner"}
    job = apply_profile(load_job(FLINK / "sample.toml"), FLINK / "profile.toml")
    assert load_job(FLINK / "sample.toml").runner == {}, "sample.toml leaves the runner to the profile"
    options = PipelineOptions(runner_flags(job))
    parsed = options.get_all_options(retain_unknown_options=False)
    assert set(table["runner"]) <= set(parsed), "every profile key must be a Beam option"
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    portable = options.view_as(PortableOptions)
    assert (portable.job_endpoint, portable.artifact_endpoint) == ("localhost:8099", "localhost:8098")
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", f"localhost:{WORKER_POOL_PORT}")
    assert int(portable.sdk_worker_parallelism) == 4
    assert options.view_as(FlinkRunnerOptions).parallelism == 4


def test_the_readmes_flinkrunner_command_parses_and_matches_the_cluster():
    readme = (FLINK / "README.md").read_text()
    block = next(b for b in readme.split("```") if "--runner=FlinkRunner" in b)
    words = shlex.split(block.replace("\\\n", " ").removeprefix("sh\n"))
    assert words[:3] == [".venv/bin/winnow", "run", "deploy/flink/sample.toml"] and "--profile" not in words
    options = PipelineOptions(words[words.index("--") + 1:])
    flink = options.view_as(FlinkRunnerOptions)
    services = compose()["services"]
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.flink_version == flink_minor(services["jobmanager"]["image"]), "Beam's default Flink is not 1.19"
    assert flink.flink_master == "localhost:8081"
    assert options.view_as(PortableOptions).environment_config == f"localhost:{WORKER_POOL_PORT}"
    # FlinkRunner's own job server stages files that the TaskManager must read.
    artifacts = options.view_as(JobServerOptions).artifacts_dir
    assert any(is_under(artifacts, d) for d in same_path_dirs(services["taskmanager"]))


def test_flink_deployment_is_a_session_cluster_with_a_worker_pool_sidecar():
    [deployment] = manifests("flink-deployment.yaml")
    assert deployment["apiVersion"] == "flink.apache.org/v1beta1" and deployment["kind"] == "FlinkDeployment"
    spec = deployment["spec"]
    assert "job" not in spec, "a session cluster has no job section"
    assert_pinned(spec["image"])
    minor = flink_minor(spec["image"])
    assert spec["flinkVersion"] == "v" + minor.replace(".", "_")
    assert spec["serviceAccount"] == "flink"
    config = spec["flinkConfiguration"]
    assert all(isinstance(v, str) for v in config.values()), "the operator takes string configuration values"
    assert int(config["taskmanager.numberOfTaskSlots"]) >= profile()["runner"]["parallelism"]
    for role in ("jobManager", "taskManager"):
        resource = spec[role]["resource"]
        assert re.fullmatch(r"\d+(m|g|Mi|Gi)", resource["memory"]), f"{role}.resource.memory"
        assert isinstance(resource["cpu"], (int, float)) and resource["cpu"] > 0, f"{role}.resource.cpu"
    containers = spec["taskManager"]["podTemplate"]["spec"]["containers"]
    [pool] = [c for c in containers if "--worker_pool" in c.get("args", []) + c.get("command", [])]
    assert_pinned(pool["image"])
    assert WORKER_POOL_PORT in [p["containerPort"] for p in pool["ports"]]
    assert pool["resources"]["requests"]["cpu"] and pool["resources"]["limits"]["memory"]


def test_k8s_job_server_submits_to_the_session_clusters_rest_service():
    [deployment] = manifests("flink-deployment.yaml")
    objects = {doc["kind"]: doc for doc in manifests("beam-job-server.yaml")}
    assert set(objects) == {"Deployment", "Service"}
    server, service = objects["Deployment"], objects["Service"]
    assert server["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    pod = server["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert_pinned(container["image"])
    server_flink, server_beam = job_server_versions(container["image"])
    assert server_flink == flink_minor(deployment["spec"]["image"]) and server_beam == BEAM
    args = container["args"]
    assert flag(args, "flink-master") == f"{deployment['metadata']['name']}-rest:8081"
    assert flag(args, "job-host") == "0.0.0.0"
    # TaskManagers run in other pods: staged artifacts must be on storage they all read.
    assert flag(args, "artifacts-dir").startswith("gs://")
    assert pod["spec"]["serviceAccountName"] == deployment["spec"]["serviceAccount"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(named.values()) == JOB_SERVER_PORTS
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # `kubectl port-forward` keeps the port numbers, so the profile's endpoints work unchanged.
    assert {p["port"] for p in service["spec"]["ports"]} == JOB_SERVER_PORTS
    for port in service["spec"]["ports"]:
        assert named[port["targetPort"]] == port["port"]
    assert container["resources"]["requests"]["memory"]


@pytest.mark.parametrize("name", ["docker-compose.yml", "k8s/flink-deployment.yaml", "k8s/beam-job-server.yaml"])
def test_no_image_floats(name):
    text = (FLINK / name).read_text()
    for image in re.findall(r"^\s*image:\s*(\S+)", text, re.MULTILINE):
        assert_pinned(image)
