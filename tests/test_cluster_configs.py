"""The cluster definitions under cluster/: every YAML parses and carries what its tool needs
(KubeRay, the cluster launcher), the scripts are executable bash, and nothing under cluster/
imports the package. The job entry points under jobs/: tests/test_jobs.py."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
RAY_VERSION = "2.60.0"


def _files(pattern: str) -> list[Path]:
    """Tracked-looking files: not under hidden folders (cluster/local/.state is runtime state)."""
    return sorted(p for p in CLUSTER.rglob(pattern)
                  if not any(part.startswith(".") for part in p.relative_to(CLUSTER).parts))


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _kind(kind: str, file: str = "*.yaml") -> tuple[Path, dict]:
    for path in _files(file):
        for doc in _docs(path):
            if isinstance(doc, dict) and doc.get("kind") == kind:
                return path, doc
    raise AssertionError(f"no {kind} under {CLUSTER}")


def test_every_yaml_parses():
    files = _files("*.yaml") + _files("*.yml")
    assert len(files) >= 4, files
    for path in files:
        docs = _docs(path)
        assert docs and all(isinstance(d, dict) for d in docs), path


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_pod(template: dict, where: str, gpu: bool, shared_volume: bool = True) -> None:
    spec = template["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    containers = _containers(template)
    assert containers, where
    main = containers[0]
    assert main["image"].split(":")[-1].startswith(RAY_VERSION), (where, main["image"])
    mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
    assert "/dev/shm" in mounts, f"{where}: /dev/shm not mounted"
    shm = volumes[mounts["/dev/shm"]]
    assert shm["emptyDir"]["medium"] == "Memory", where
    if shared_volume:
        assert "/data" in mounts, f"{where}: no shared /data volume"
        assert "persistentVolumeClaim" in volumes[mounts["/data"]], where
    else:  # object storage: no volume but /dev/shm, the bucket's credentials from a Secret
        assert not [v for v in volumes.values() if "persistentVolumeClaim" in v], where
        assert {"name": "dmt-s3"} in [e.get("secretRef") for e in main.get("envFrom", [])], where
    env_from = main.get("envFrom", [])
    assert any("configMapRef" in e or "secretRef" in e for e in env_from), \
        f"{where}: MLFLOW_TRACKING_URI should come from a ConfigMap or Secret"
    limits = main["resources"]["limits"]
    if gpu:
        assert int(limits["nvidia.com/gpu"]) >= 1, where
    else:
        assert "nvidia.com/gpu" not in limits, where


def _check_cluster_spec(spec: dict, where: str, shared_volume: bool = True) -> None:
    assert spec["rayVersion"] == RAY_VERSION, where
    assert spec["authOptions"]["mode"] == "token", where
    assert spec["enableInTreeAutoscaling"] is True, where
    head = spec["headGroupSpec"]
    _check_pod(head["template"], f"{where} head", gpu=False, shared_volume=shared_volume)
    workers = spec["workerGroupSpecs"]
    assert workers, where
    gpu_groups = []
    for group in workers:
        assert group["groupName"], where
        assert 0 <= group["minReplicas"] <= group["maxReplicas"], (where, group["groupName"])
        limits = _containers(group["template"])[0]["resources"]["limits"]
        if "nvidia.com/gpu" in limits:
            gpu_groups.append(group)
            _check_pod(group["template"], f"{where} {group['groupName']}", gpu=True,
                       shared_volume=shared_volume)
    assert gpu_groups, f"{where}: no GPU worker group"
    assert any(g["maxReplicas"] > g["minReplicas"] for g in gpu_groups), \
        f"{where}: the GPU group cannot autoscale"
    labels = {g["groupName"]: C.label_selector(g["rayStartParams"].get("labels", ""))
              for g in workers}
    data = [g for g in workers if "nvidia.com/gpu" not in
            _containers(g["template"])[0]["resources"]["limits"]]
    assert data and all(labels[g["groupName"]] == DATA_NODES for g in data), where
    for g in data:
        _check_pod(g["template"], f"{where} {g['groupName']}", gpu=False,
                   shared_volume=shared_volume)
    assert all(labels[g["groupName"]] == GPU_NODES for g in gpu_groups), where


DATA_NODES, GPU_NODES = {"dmt-role": "data"}, {"dmt-role": "gpu"}


def _entry_config(entry: str) -> C.Config:
    """The config a job entry point runs with: its --config and --set arguments."""
    args = shlex.split(entry)
    config = args[args.index("--config") + 1]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    return C.load(REPO / config, sets)


def test_kuberay_raycluster():
    path, doc = _kind("RayCluster")
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["metadata"]["name"]
    _check_cluster_spec(doc["spec"], str(path))


def test_kuberay_rayjob():
    path, doc = _kind("RayJob", "rayjob.yaml")
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"]
    entry = spec["entrypoint"]
    assert entry.startswith("python jobs/train.py --config jobs/configs/")
    cfg = _entry_config(entry)  # what the job runs: shared paths, GPUs, the node split
    for key in ("data.root", "data.frames", "data.audio", "data.lists", "data.shards",
                "train.storage"):
        assert C.flatten(cfg)[key].startswith("/data/"), key
    assert cfg.train.use_gpu and cfg.train.num_workers == 2
    assert C.label_selector(cfg.data.nodes) == DATA_NODES
    assert C.label_selector(cfg.train.worker_nodes) == GPU_NODES
    assert spec["shutdownAfterJobFinishes"] is True
    for key in ("ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit"):
        assert isinstance(spec[key], int) and spec[key] >= 0, key
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"]
    _check_cluster_spec(spec["rayClusterSpec"], f"{path} rayClusterSpec")


def test_kuberay_rayjob_on_object_storage():
    """The S3 variant: the same run with shards and checkpoints in a bucket, no shared volume."""
    path, doc = _kind("RayJob", "rayjob-s3.yaml")
    _, shared = _kind("RayJob", "rayjob.yaml")
    entry, cfg = doc["spec"]["entrypoint"], _entry_config(doc["spec"]["entrypoint"])
    assert entry.startswith(shared["spec"]["entrypoint"])  # the same run, plus its locations
    assert cfg.data.shards.startswith("s3://") and cfg.train.storage.startswith("s3://")
    assert cfg.train.use_gpu and C.label_selector(cfg.train.worker_nodes) == GPU_NODES
    _check_cluster_spec(doc["spec"]["rayClusterSpec"], f"{path} rayClusterSpec",
                        shared_volume=False)


def test_kuberay_storage_and_image():
    _, pvc = _kind("PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    _, cm = _kind("ConfigMap")
    assert "MLFLOW_TRACKING_URI" in cm["data"]
    dockerfile = (CLUSTER / "kuberay" / "Dockerfile").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms and all(f.startswith(f"rayproject/ray:{RAY_VERSION}-py311") for f in froms)
    assert "pip install" in dockerfile


def test_cluster_launcher_config():
    doc = _docs(CLUSTER / "aws.yaml")[0]
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type",
                "setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert doc.get(key), key
    assert doc["provider"]["type"] == "aws" and doc["provider"]["region"]
    assert doc["auth"]["ssh_user"]
    types = doc["available_node_types"]
    assert doc["head_node_type"] in types
    head = types[doc["head_node_type"]]
    assert head["node_config"]["InstanceType"] == "m5.2xlarge"
    workers = [t for name, t in types.items() if name != doc["head_node_type"]]
    gpu = [t for t in workers if t["node_config"]["InstanceType"].startswith("g5.")]
    cpu = [t for t in workers if t["node_config"]["InstanceType"].startswith("c6i.")]
    assert gpu and cpu and all(t["min_workers"] <= t["max_workers"] for t in workers)
    assert all(t["labels"] == GPU_NODES for t in gpu) and all(t["labels"] == DATA_NODES
                                                              for t in cpu)
    assert doc["docker"]["image"] == f"rayproject/ray:{RAY_VERSION}-py311-gpu"
    assert any("pip install" in c for c in doc["setup_commands"])
    head_start = " ".join(doc["head_start_ray_commands"])
    assert "ray start --head" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert "RAY_AUTH_MODE=token" in head_start
    assert "RAY_AUTH_MODE=token" in " ".join(doc["worker_start_ray_commands"])


def test_scripts_are_executable_bash():
    scripts = _files("*.sh")
    assert {p.name for p in scripts} >= {"start.sh", "stop.sh"}
    for path in scripts:
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash"), path
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_local_cluster_never_runs_ray_stop_and_keeps_the_token_private():
    start = (CLUSTER / "local" / "start.sh").read_text()
    stop = (CLUSTER / "local" / "stop.sh").read_text()
    code = [line for text in (start, stop) for line in text.splitlines()
            if not line.lstrip().startswith("#")]
    assert not any("ray stop" in line or "pkill" in line or "killall" in line for line in code)
    for flag in ("--num-cpus", "--memory", "--object-store-memory", "--temp-dir",
                 "--dashboard-host 127.0.0.1", "--node-ip-address 127.0.0.1"):
        assert flag in start, flag
    assert "RAY_AUTH_MODE=token" in start and "chmod 600" in start
    ignored = subprocess.run(["git", "check-ignore", "-q", "cluster/local/.state/auth_token"],
                             cwd=REPO)
    assert ignored.returncode == 0, "cluster/local/.state must be git-ignored"


PACKAGE_USE = re.compile(r"\b(import pipeline|from pipeline\b|-m pipeline\b)")


def test_cluster_definitions_use_the_cli_not_the_package_internals():
    """cluster/ holds scripts, YAML and a Dockerfile; they run `dmt` / `jobs/*.py` and `ray`,
    and never reach into the package's modules (which may move)."""
    files = [p for p in _files("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".sh", ".yaml"} and len(files) >= 6
    for path in files:
        hits = PACKAGE_USE.findall(path.read_text(errors="replace"))
        assert not hits, (path, hits)
