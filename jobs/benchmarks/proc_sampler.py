"""Memory and CPU of a process tree, sampled from /proc (Linux only; benchmark tooling).

``Sampler(pid)`` is a thread that, every 0.2 s, walks the tree under ``pid`` (the measured
subprocess and everything it started: Ray's raylet, GCS, agents, workers) and keeps

- the peak PSS (proportional set size: shared pages such as Ray's object store or shared
  libraries counted once) and RSS summed over the tree, and the most processes at once;
- each process's last seen CPU time (user + system), by role, so a run's CPU can be split
  into the driver, the task workers and Ray's own daemons (a process that exits between two
  samples loses at most 0.2 s of its CPU).
"""

from __future__ import annotations

import os
import threading

TICKS = os.sysconf("SC_CLK_TCK")


def tree(root: int) -> list[int]:
    parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parent.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(parent.get(pid, []))
    return out


def pss_rss(pid: int) -> tuple[int, int]:
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


def role(pid: int, root: int) -> str:
    """What a process of the tree is: the measured driver, a Ray task worker, or a daemon,
    from its program and script (not its arguments, which name the others)."""
    if pid == root:
        return "driver"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return "other"
    program = os.path.basename(argv[0])
    if program in ("raylet", "gcs_server"):
        return program
    if argv[0].startswith("ray::"):  # a worker's title once it has run a task
        return "workers"
    script = " ".join(os.path.basename(a) for a in argv[1:3])
    for needle, name in (("default_worker.py", "workers"), ("dashboard", "dashboard+agents"),
                         ("agent.py", "dashboard+agents"), ("monitor.py", "log_monitor")):
        if needle in script:
            return name
    return "other"


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_pss = self.peak_rss = self.peak_procs = 0
        self.cpu: dict[int, tuple[str, float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = tree(self.pid)
            vals = [pss_rss(p) for p in pids]
            self.peak_pss = max(self.peak_pss, sum(v[0] for v in vals))
            self.peak_rss = max(self.peak_rss, sum(v[1] for v in vals))
            self.peak_procs = max(self.peak_procs, len(pids))
            for p in pids:
                seconds = cpu_seconds(p)
                if seconds:
                    name = self.cpu[p][0] if p in self.cpu else role(p, self.pid)
                    self.cpu[p] = (name, seconds)
            self.stop.wait(self.every)

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, seconds in self.cpu.values():
            out[name] = round(out.get(name, 0.0) + seconds, 1)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
