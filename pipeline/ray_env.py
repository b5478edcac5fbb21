"""The one way the package starts or joins Ray.

``ensure_ray()`` joins ``RAY_ADDRESS`` (also what Ray sets for a job's driver) when set, else
starts a local instance. Every command that needs Ray calls it: preprocessing, training, tuning,
the benchmark; nothing else calls ``ray.init``.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.ports import free_port


def ensure_ray(num_cpus: float | None = None, **init_kwargs: Any) -> None:
    """Join ``RAY_ADDRESS`` (or the cluster a Ray job runs in), else start a local instance of
    ``num_cpus`` CPUs (default: the machine's); ``init_kwargs`` go to ``ray.init`` (tests size
    the instance). A no-op when Ray is already initialised in this process."""
    import ray

    if ray.is_initialized():
        return
    init_kwargs.setdefault("log_to_driver", True)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**init_kwargs)
        return
    # The dashboard serves the state API, which Train's placement-group cleaner needs (an
    # ASHA-stopped trial would leak its placement group without it); loopback only. The cleaner
    # runs in a Ray worker and finds the API by auto-detection, which fails when another Ray
    # instance runs on this machine ("Found multiple active Ray instances"): name this
    # instance's dashboard in the environment, which the raylet started here passes on to
    # every worker.
    port = init_kwargs.pop("dashboard_port", None) or free_port()
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=port, **init_kwargs)
