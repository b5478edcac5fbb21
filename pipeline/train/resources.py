"""CPUs of a training run (or a sweep's trial) fitted to the cluster it runs on, and refused
before any work when they cannot fit.

Ray Data streams the unlabeled clips of stage 2 beside the Train workers, and only schedules
its read and decode tasks when about one whole CPU is left free (measured on a 2-CPU machine
with Ray 2.60: workers holding all CPUs train stage 1, whose splits are decoded up front, then
wait forever at the start of stage 2 with "Cluster resources are not enough to run any task
from TaskPoolMapOperator[ReadFilesParquetV2]"). So a run needs its workers' CPUs plus
:data:`DATA_HEADROOM_CPUS`, and a sweep's trial its driver function's CPUs on top.

``train.cpus_per_worker = 0`` (the default) means: one CPU per worker when that fits, else an
equal share of what is left beside the headroom (fractional CPUs on small machines: 0.5 per
worker for two workers on 2 CPUs). A value the user set is kept and checked.
"""

from __future__ import annotations

import math

from pipeline import config as config_mod
from pipeline.train import placement

DATA_HEADROOM_CPUS = 1.0  # free beside the workers for Ray Data's stage-2 stream
AUTO_MAX_CPUS = 1.0  # auto never gives a worker more (decoding runs in Ray Data, not in it)
STEP = 0.05  # auto shares are rounded down to this


def _share(free: float, parts: int) -> float:
    """``free / parts`` rounded down to :data:`STEP` (0 or less when nothing is free)."""
    return round(math.floor(free / parts / STEP + 1e-9) * STEP, 4)


def worker_cpus(cfg: config_mod.Config, cluster_cpus: float, trial_cpus: float = 0.0) -> float:
    """CPUs per Train worker: ``train.cpus_per_worker`` when set, else the auto share (which
    may be <= 0 when nothing fits; :func:`check_fits` refuses that)."""
    if cfg.train.cpus_per_worker > 0 or cfg.train.num_workers == 0:
        return cfg.train.cpus_per_worker
    free = cluster_cpus - trial_cpus - DATA_HEADROOM_CPUS
    return min(AUTO_MAX_CPUS, _share(free, cfg.train.num_workers))


def run_cpus(cfg: config_mod.Config, cpus_per_worker: float, trial_cpus: float = 0.0) -> float:
    """CPUs one run holds for its whole length (stage 2 included)."""
    workers = cfg.train.num_workers * cpus_per_worker
    return trial_cpus + workers + (DATA_HEADROOM_CPUS if cfg.train.num_workers else 0.0)


def fitted(cfg: config_mod.Config, cluster_cpus: float, *, sweep: bool = False,
           nodes: list[placement.Node] | None = None) -> config_mod.Config:
    """A copy of ``cfg`` with a concrete ``train.cpus_per_worker``, after :func:`check_fits`
    (and, given the cluster's ``nodes``, :func:`fit_nodes`). ``sweep``: the run is a Tune
    trial, whose driver function holds ``tune.trial_cpus``."""
    trial = cfg.tune.trial_cpus if sweep else 0.0
    cpus = worker_cpus(cfg, cluster_cpus, trial)
    check_fits(cfg, cluster_cpus, cpus, trial)
    if nodes and cfg.train.num_workers:
        cpus = fit_nodes(cfg, nodes, cpus, trial)
    out = config_mod.from_dict(config_mod.to_dict(cfg))
    out.train.cpus_per_worker = cpus
    return out


def check_fits(cfg: config_mod.Config, cluster_cpus: float, cpus_per_worker: float,
               trial_cpus: float = 0.0) -> None:
    """ConfigError with the numbers and a setting that fits, unless one run fits the cluster."""
    nw = cfg.train.num_workers
    if nw == 0:
        return
    need = run_cpus(cfg, cpus_per_worker, trial_cpus)
    if cpus_per_worker > 0 and need <= cluster_cpus + 1e-9:
        return
    trial = f"trial {trial_cpus:g} + " if trial_cpus else ""
    room = cluster_cpus - trial_cpus - DATA_HEADROOM_CPUS
    if room >= STEP * nw:
        hint = f"--set train.cpus_per_worker={_share(room, nw):g} (or leave it at 0: auto)"
    else:
        most = max(0, _share(room, 1))
        hint = (f"the cluster holds no Train worker beside Ray Data here (at most {most:g} "
                f"CPUs free); use train.num_workers=0 (in-process) or a larger cluster")
        if trial_cpus and cluster_cpus - DATA_HEADROOM_CPUS - STEP * nw >= STEP:
            hint = "lower tune.trial_cpus, or " + hint
    shown = f"{cpus_per_worker:g}" if cpus_per_worker > 0 else "auto"
    raise config_mod.ConfigError(
        f"train.num_workers / train.cpus_per_worker{' / tune.trial_cpus' if trial_cpus else ''}"
        f": one {'trial' if trial_cpus else 'run'} needs {need:g} CPUs for all of stage 2 "
        f"({trial}{nw} worker(s) x {shown} + {DATA_HEADROOM_CPUS:g} free for Ray Data's "
        f"unlabeled stream) but the cluster has {cluster_cpus:g}; {hint}")


def fit_nodes(cfg: config_mod.Config, nodes: list[placement.Node], cpus: float,
              trial_cpus: float = 0.0) -> float:
    """CPUs per worker that leave Ray Data's stream a CPU on one node once the workers are
    placed (``train.placement_strategy``) on the cluster's ``nodes``: ``cpus`` when it does,
    a smaller auto share when ``train.cpus_per_worker`` is auto, else a ConfigError with the
    per-node numbers and a setting that fits."""
    strategy, workers = cfg.train.placement_strategy, cfg.train.num_workers
    selectors = {"worker_nodes": config_mod.label_selector(cfg.train.worker_nodes),
                 "data_nodes": config_mod.label_selector(cfg.data.nodes)}

    def lay(share: float, how: str = strategy, count: int = workers) -> placement.Layout:
        return placement.layout(nodes, count, share, how, DATA_HEADROOM_CPUS, trial_cpus,
                                **selectors)

    if lay(cpus).data_fits:
        return cpus
    if cfg.train.cpus_per_worker == 0:  # auto: the largest share that leaves the stream room
        share = cpus
        while share - STEP >= STEP - 1e-9:
            share = round(share - STEP, 4)
            if lay(share).data_fits:
                return share
    raise config_mod.ConfigError(_nodes_message(cfg, nodes, cpus, lay(cpus), lay, trial_cpus))


def _nodes_message(cfg, nodes, cpus, found: placement.Layout, lay, trial_cpus: float) -> str:
    strategy, workers = cfg.train.placement_strategy, cfg.train.num_workers
    if strategy not in ("PACK", "STRICT_PACK") and lay(cpus, "PACK").data_fits:
        hint = (f"--set train.placement_strategy=PACK (it {lay(cpus, 'PACK').describe()} on "
                f"those nodes)")
    elif (fewer := next((k for k in range(workers - 1, 0, -1) if lay(cpus, count=k).data_fits),
                        0)):
        hint = f"--set train.num_workers={fewer} (or nodes with more CPUs)"
    else:
        hint = "train.num_workers=0 (in-process) or nodes with more CPUs"
    where = " of the data.nodes labels" if cfg.data.nodes else ""
    trial = f" beside a trial's driver ({trial_cpus:g} CPU)" if trial_cpus else ""
    sizes = ", ".join(f"{n.name} {n.cpus:g} CPU" for n in nodes)
    return (f"train.num_workers / train.placement_strategy: {workers} worker(s) x {cpus:g} CPU "
            f"placed {strategy}{trial} on {len(nodes)} node(s) ({sizes}): {found.describe()}; Ray "
            f"Data's stage-2 stream needs {DATA_HEADROOM_CPUS:g} CPU free on one node{where} "
            f"(without it the run trains stage 1, then waits forever); {hint}")
