"""The one way the package starts or joins Ray.

``ensure_ray()`` joins ``RAY_ADDRESS`` (also what Ray sets for a job's driver) when set, else
starts a local instance. Every command that needs Ray calls it: preprocessing, training, tuning,
the benchmark; nothing else calls ``ray.init``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from pipeline import console, locations
from pipeline.config import ConfigError
from pipeline.ports import free_port


def ensure_ray(num_cpus: float | None = None, *, dashboard: bool = True,
               **init_kwargs: Any) -> None:
    """Join ``RAY_ADDRESS`` (or the cluster a Ray job runs in), else start a local instance of
    ``num_cpus`` CPUs (default: the machine's), with its dashboard unless ``dashboard=False``
    (a batch job that trains nothing: one process and about a second less); ``init_kwargs``
    go to ``ray.init`` (tests size the instance). A no-op when Ray is already initialised in
    this process."""
    import ray  # heavy: on use (this module loads with `dmt --help`)

    if ray.is_initialized():
        return
    for key, value in console.ray_init_options().items():
        init_kwargs.setdefault(key, value)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**init_kwargs)
        console.quiet_ray_data()
        return
    # The dashboard serves the state API, which Train's placement-group cleaner needs (an
    # ASHA-stopped trial would leak its placement group without it); loopback only. The cleaner
    # runs in a Ray worker and finds the API by auto-detection, which fails when another Ray
    # instance runs on this machine ("Found multiple active Ray instances"): name this
    # instance's dashboard in the environment, which the raylet started here passes on to
    # every worker.
    if dashboard:
        port = init_kwargs.pop("dashboard_port", None) or free_port()
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
        init_kwargs.update(dashboard_host="127.0.0.1", dashboard_port=port)
    ray.init(num_cpus=num_cpus, include_dashboard=dashboard, **init_kwargs)
    console.quiet_ray_data()


def check_shared(paths: dict[str, Any]) -> None:
    """On a multi-node cluster, ConfigError unless every path in ``paths`` (config key ->
    folder, created here) is the same folder on every alive node: the shards are read and
    checkpoints written by tasks and workers on any node. Object-storage locations
    (``s3://...``) are one store for every node and are not checked. Two checks, before any
    work:

    - a path inside this job's copy of the working dir (a relative ``data.root`` in a job):
      every node unpacks its own copy, so the folder differs from node to node (on one machine
      the copies are siblings and a marker would be seen, which is why this comes first);
    - a marker file written here must be seen by a task on every node (a node-local disk
      fails; a shared volume passes).
    """
    import ray  # heavy: on use (this module loads with `dmt --help`)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = {k: p for k, p in paths.items() if not locations.is_uri(p)}
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2 or not paths:
        return
    cwd = Path.cwd().resolve()
    for key, path in paths.items():
        path = Path(path).resolve()
        if "working_dir_files" in cwd.parts and cwd in (path, *path.parents):
            raise ConfigError(
                f"{key}={path}: inside this job's copy of the working dir, a different folder on "
                f"each of the cluster's {len(nodes)} nodes; give an absolute path on a shared "
                f"volume (or object storage) that every node mounts")
    markers = {}
    for key, path in paths.items():
        Path(path).mkdir(parents=True, exist_ok=True)
        markers[key] = Path(path) / f".dmt-visible-{uuid.uuid4().hex}"
        markers[key].write_text("")
    probe = ray.remote(num_cpus=0)(lambda files: [os.path.exists(f) for f in files])
    try:
        seen = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote([str(m) for m in markers.values()])
            for n in nodes], timeout=120)
    finally:
        for marker in markers.values():
            marker.unlink(missing_ok=True)
    for node, flags in zip(nodes, seen, strict=True):
        for (key, path), ok in zip(paths.items(), flags, strict=True):
            if not ok:
                raise ConfigError(
                    f"{key}={path}: not visible on node {node.get('NodeManagerAddress')} of the "
                    f"cluster's {len(nodes)} nodes; it must be on a shared volume (or object "
                    f"storage) that every node mounts")
