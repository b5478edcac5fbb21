"""Where a run's workers land, node by node, and whether Ray Data's stream still finds a CPU.

Total CPUs are not enough: two nodes of one CPU each hold two workers of 0.5 CPU, but placed
``SPREAD`` they leave 0.5 CPU on each node, and Ray Data's stage-2 stream, which needs about
one whole CPU free on one node (``resources.DATA_HEADROOM_CPUS``), then waits forever (17
minutes seen, no message). This module places the worker bundles as Ray's placement
strategies do -- ``PACK``: onto as few nodes as possible, the node with the most free CPUs
first; ``SPREAD``: one per node in turn; ``STRICT_*``: the same, or not at all -- and says what
is left on each node. Plain Python: the driver passes the nodes in (:func:`nodes_from_ray`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EPS = 1e-9


@dataclass(frozen=True)
class Node:
    name: str
    cpus: float
    labels: dict[str, str] = field(default_factory=dict)

    def matches(self, selector: dict[str, str] | None) -> bool:
        return not selector or all(self.labels.get(k) == v for k, v in selector.items())


def nodes_from_ray(entries: list[dict]) -> list[Node]:
    """``ray.nodes()`` -> the alive nodes with their logical CPUs and labels."""
    out = []
    for entry in entries:
        if not entry.get("Alive"):
            continue
        name = entry.get("NodeManagerAddress", "?")
        if entry.get("Resources", {}).get("node:__internal_head__"):
            name += " (head)"
        out.append(Node(name, float(entry.get("Resources", {}).get("CPU", 0.0)),
                        dict(entry.get("Labels") or {})))
    return out


def place(free: list[float], eligible: list[bool], bundles: int, cpus: float,
          strategy: str) -> list[float] | None:
    """Free CPUs per node after placing ``bundles`` of ``cpus`` each on eligible nodes, as
    ``strategy`` does; None when they do not fit."""
    free = list(free)
    order = [i for i in sorted(range(len(free)), key=lambda i: -free[i]) if eligible[i]]
    if not order:
        return None if bundles else free
    if strategy == "STRICT_PACK":
        home = next((i for i in order if free[i] + EPS >= bundles * cpus), None)
        if home is None:
            return None
        free[home] -= bundles * cpus
        return free
    used: set[int] = set()
    turn = 0
    for _ in range(bundles):
        if strategy in ("SPREAD", "STRICT_SPREAD"):
            tries = [order[(turn + k) % len(order)] for k in range(len(order))]
        else:  # PACK: keep filling the node with the most free CPUs
            tries = order
        home = next((i for i in tries if free[i] + EPS >= cpus and
                     not (strategy == "STRICT_SPREAD" and i in used)), None)
        if home is None:
            return None
        free[home] -= cpus
        used.add(home)
        turn = (order.index(home) + 1) % len(order)
    return free


@dataclass
class Layout:
    """What a run's placement leaves: CPUs free per node, and whether the data stream fits."""

    nodes: list[Node]
    free: list[float] | None  # None: the workers themselves do not fit
    data_fits: bool

    def describe(self) -> str:
        if self.free is None:
            return "the workers do not fit there"
        return "leaves " + ", ".join(f"{f:g}" for f in self.free) + " CPU free"


def layout(nodes: list[Node], workers: int, cpus: float, strategy: str, headroom: float,
           trial_cpus: float = 0.0, worker_nodes: dict[str, str] | None = None,
           data_nodes: dict[str, str] | None = None) -> Layout:
    """Place a sweep trial's driver (``trial_cpus``, if any) and then the worker bundles; the
    data stream fits when some node it may use keeps ``headroom`` CPUs."""
    free = [n.cpus for n in nodes]
    if trial_cpus:
        free = place(free, [True] * len(nodes), 1, trial_cpus, "PACK")
    if free is not None and workers:
        free = place(free, [n.matches(worker_nodes) for n in nodes], workers, cpus, strategy)
    fits = free is not None and any(f + EPS >= headroom for f, n in zip(free, nodes, strict=True)
                                    if n.matches(data_nodes))
    return Layout(nodes, free, fits)
