"""System metrics (CPU, memory, disk, network and, where present, GPU utilisation and memory)
with MLflow's own monitor, logged into a run as ``system/...`` over time (the run page's
System metrics tab).

The monitor runs in the rank-0 training worker of each node (``local_rank == 0``), where the
training happens and the GPUs are, not on the driver, which may sit on a CPU-only head node.
Nodes after the first log under ``system/node_<rank>/...`` (MLflow's ``node_id``).
"""

from __future__ import annotations

import contextlib
import logging

from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str, interval_s: float, *, node_rank: int = 0,
                   resumed: bool = False):
    """Log system metrics into ``run_id`` every ``interval_s`` seconds while the block runs.
    ``resumed``: continue the steps of an earlier attempt instead of starting at 0."""
    # one INFO line per monitor start ("Skip logging GPU metrics", "Started monitoring")
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s,
                                   samples_before_logging=1, resume_logging=resumed,
                                   node_id=f"node_{node_rank}" if node_rank else None,
                                   tracking_uri=uri)
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.finish()
