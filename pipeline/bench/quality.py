"""`dmt bench quality`: run the benchmark's rows as Ray tasks, track them, write the report.

The clips are decoded once and shared through the object store; each row is one Ray task
(``bench.threads`` CPUs) that trains in-process (``runner.train_row``), so rows spread over the
cluster's nodes and a 2-CPU machine trains two at once. The driver is the only MLflow writer (one
child run per row under a parent run, logged when the row returns), so SQLite stores are safe.
``DIR/results.json`` is rewritten after every row and read back on the next invocation: an
interrupted benchmark resumes where it stopped (``fresh=True`` starts over).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from pipeline import config as config_mod
from pipeline import metrics as metrics_mod
from pipeline import tracking
from pipeline.bench import budget as budget_mod
from pipeline.bench import report
from pipeline.bench.memory import ClipArrays, hold_out_validation, load_clips
from pipeline.bench.plan import BenchRow, build_plan, row_config
from pipeline.bench.runner import train_row
from pipeline.engine import checkpoint as ckpt_io
from pipeline.locks import FolderLock
from pipeline.prepare import prepare_dataset
from pipeline.ray_env import ensure_ray

RESULTS = "results.json"
BENCH_LOCK = ".dmt.lock"  # held in --out while a process runs the benchmark there
SUMMARY_KEYS = ("ciou", "auc", "mean_ciou", "ciou_fixed", "auc_fixed", "mean_ciou_fixed", "mse")


@dataclass
class BenchOutcome:
    rows: list[dict[str, Any]]
    out_dir: Path
    parent_run_id: str
    failed: list[str]


def trivial_rows(clips: ClipArrays, split: str = "test") -> list[dict[str, Any]]:
    """Whole image, centre box and oracle on the scored split (no training, no seed)."""
    gts = clips.map[clips.test].astype(np.float32)
    rows = []
    for name, maps in metrics_mod.trivial_maps(gts).items():
        scores = metrics_mod.evaluate_maps(maps, gts)
        rows.append({"key": name, "method": name, "tables": ["A"], "fraction": None,
                     "split": split, "labeled": 0, "seed": None, "checkpoint": None,
                     **{k: float(scores[k]) for k in SUMMARY_KEYS}, "n_test": len(gts)})
    return rows


class ProgressBoard:
    """Ray actor (no CPU): the CPU time of the rows that compute-matched rows follow, so a
    matched row trains beside its reference instead of after it (``budget.FollowedBudget``)."""

    def __init__(self) -> None:
        self._progress: dict[str, budget_mod.Progress] = {}

    def publish(self, key: str, cpu_s: float, state: str) -> None:
        self._progress[key] = (cpu_s, state)

    def read(self, key: str) -> budget_mod.Progress:
        return self._progress.get(key, (0.0, budget_mod.RUNNING))


def _train_task(cfg_dict, row, clips, threads, finished_cpu_s, data_seed, board, followers):
    """One row in a Ray worker. ``finished_cpu_s``: the budget of a compute-matched row whose
    reference has finished (else it follows the reference on ``board``); ``followers``: whether
    matched rows follow this row's progress (then it publishes it on ``board``)."""
    budget = None
    if row.budget_of:
        budget = budget_mod.budget_for(
            row.budget_of, finished_cpu_s,
            lambda: ray.get(board.read.remote(row.budget_of)))
    publish = (lambda cpu_s, state: board.publish.remote(row.key, cpu_s, state)) \
        if followers else None
    return train_row(cfg_dict, row, clips, threads, budget, data_seed, publish)


def _load_results(out: Path) -> dict[str, dict[str, Any]]:
    path = out / RESULTS
    if not path.is_file():
        return {}
    return {r["key"]: r for r in json.loads(path.read_text()) if not r.get("error")}


def _write_results(out: Path, results: dict[str, dict[str, Any]]) -> None:
    tmp = out / (RESULTS + ".tmp")
    tmp.write_text(json.dumps(list(results.values()), indent=1))
    tmp.replace(out / RESULTS)


def _parent_run(cfg: config_mod.Config, out: Path, uri: str, experiment: str, fresh: bool
                ) -> str:
    """The sweep-like parent run; reused when resuming the same folder and store."""
    marker = out / "mlflow_parent.json"
    if marker.is_file() and not fresh:
        info = json.loads(marker.read_text())
        if info.get("uri") == uri:
            return info["run_id"]
    run_id = tracking.start_run(uri, experiment, f"bench-quality {cfg.name}",
                                config_mod.flatten(cfg),
                                tracking.reproducibility_tags({"bench.out": str(out)}))
    marker.write_text(json.dumps({"uri": uri, "run_id": run_id}))
    return run_id


def _record(row: BenchRow, cfg_row: config_mod.Config, result: dict[str, Any], out: Path,
            uri: str, experiment: str, parent_id: str) -> dict[str, Any]:
    """Checkpoint on disk, one MLflow child run, and the results.json row of a finished row."""
    m, split = result["metrics"], cfg_row.bench.split
    folder = out / "checkpoints" / row.key.replace("@", "_").replace("#", "_")
    path = ckpt_io.save(folder, result["state"], epoch=result["epochs"] - 1,
                        config=config_mod.to_dict(cfg_row), metrics=m)
    run_id = tracking.start_run(
        uri, experiment, row.key,
        {**config_mod.flatten(cfg_row), "row.method": row.method, "row.fraction": row.fraction,
         "row.seed": row.seed, "row.labeled": result["labeled"],
         "row.unlabeled": row.unlabeled, "row.unlabeled_clips": result["unlabeled_clips"]},
        tracking.reproducibility_tags({"bench.tables": ",".join(row.tables),
                                       "bench.reported": result["reported"]}), parent_id)
    logger = tracking.RunLogger(uri, run_id)
    for entry in result["history"]:
        logger.log_metrics({f"train/{k}": v for k, v in entry.items() if k != "epoch"},
                           step=int(entry["epoch"]))
    logger.log_metrics({**m, "time/train_cpu_s": result["train_cpu_s"],
                        "time/train_wall_s": result["train_wall_s"]}, step=result["epochs"])
    logger.log_artifact(path, "model")
    logger.end()
    return {"key": row.key, "method": row.method, "tables": list(row.tables),
            "fraction": row.fraction, "labeled": result["labeled"], "seed": row.seed,
            "unlabeled": row.unlabeled, "unlabeled_clips": result["unlabeled_clips"],
            **{k: float(m[f"{split}/{k}"]) for k in SUMMARY_KEYS},
            "n_test": int(m[f"{split}/n"]), "split": split, "reported": result["reported"],
            "checkpoint": str(path),
            "train_cpu_s": result["train_cpu_s"], "train_wall_s": result["train_wall_s"],
            "steps": result["steps"], "epochs": result["epochs"],
            "history": result["history"], "mlflow_run_id": run_id}


def _next_ready(todo: list[BenchRow], results: dict[str, Any], running: set[str],
                follow: bool = True) -> BenchRow | None:
    """A compute-matched row as soon as its DMT row is training (``follow``: it trains beside
    it) or done (an interrupted benchmark has whole comparisons), else the next row of the plan.
    ``follow`` is off under an annealed schedule, which needs the budget when the row starts."""
    matched = [r for r in todo if r.budget_of in results or (follow and r.budget_of in running)]
    return matched[0] if matched else next((r for r in todo if r.budget_of is None), None)


def run_quality(cfg: config_mod.Config, out_dir: str | Path, *, fresh: bool = False,
                say=print) -> BenchOutcome:
    cfg = config_mod.resolve_paths(cfg)
    rows = build_plan(cfg)  # config errors before any work
    out = Path(out_dir).resolve()
    # one writer per --out: two benchmarks there would overwrite each other's results.json
    with FolderLock(out / BENCH_LOCK, f"benchmark folder {out}"):
        return _run_quality(cfg, rows, out, fresh, say)


def _run_quality(cfg: config_mod.Config, rows: list[BenchRow], out: Path, fresh: bool,
                 say) -> BenchOutcome:
    (out / "config.yaml").write_text(config_mod.dump_yaml(cfg))
    t_start = time.perf_counter()
    ensure_ray()
    prepare_dataset(cfg, say)
    clips = load_clips(config_mod.data_paths(cfg.data).shards, cfg.model.image_size)
    if cfg.bench.split == "val":
        clips = hold_out_validation(clips, cfg.bench.val_clips, cfg.data.synth.seed)
    say(f"[bench] {len(clips.ids)} clips in memory ({len(clips.pool)} training pool, "
        f"{len(clips.test)} {cfg.bench.split}) after {time.perf_counter() - t_start:.0f} s")
    results = {} if fresh else _load_results(out)
    results.update({r["key"]: r for r in trivial_rows(clips, cfg.bench.split)})
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    experiment = cfg.tracking.experiment or cfg.name
    parent_id = _parent_run(cfg, out, uri, experiment, fresh)
    todo = [r for r in rows if r.key not in results]
    say(f"[bench] {len(rows)} learned rows, {len(rows) - len(todo)} already in {out / RESULTS}")
    threads = cfg.bench.threads
    parallel = cfg.bench.parallel or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    clips_ref, task = ray.put(clips), ray.remote(_train_task)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    followed = {r.budget_of for r in todo if r.budget_of}
    running: dict[Any, tuple[BenchRow, config_mod.Config, float]] = {}
    failed: list[str] = []
    while todo or running:
        while len(running) < parallel and (row := _next_ready(
                todo, results, {r.key for r, _, _ in running.values()},
                follow=cfg.optim.schedule == "constant")) is not None:
            todo.remove(row)
            cfg_row = row_config(cfg, row)
            budget = results[row.budget_of]["train_cpu_s"] if row.budget_of in results else None
            ref = task.options(num_cpus=threads).remote(
                config_mod.to_dict(cfg_row), row, clips_ref, threads, budget,
                cfg.data.synth.seed, board, row.key in followed)
            running[ref] = (row, cfg_row, time.time())
        if not running:  # what is left waits on rows that failed
            failed.extend(r.key for r in todo)
            break
        (done,), _ = ray.wait(list(running), num_returns=1)
        row, cfg_row, t0 = running.pop(done)
        try:
            r = _record(row, cfg_row, ray.get(done), out, uri, experiment, parent_id)
            results[row.key] = {**r, "started_at": t0, "finished_at": time.time()}
            say(f"[bench] {row.key}: CIoU {r['ciou']:.3f} (fixed {r['ciou_fixed']:.3f}) in "
                f"{time.time() - t0:.0f} s, {r['train_cpu_s']:.0f} CPU-s training")
        except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
            failed.append(row.key)
            board.publish.remote(row.key, 0.0, budget_mod.FAILED)  # its followers stop
            say(f"[bench] {row.key} FAILED: {type(exc).__name__}: {exc}")
        _write_results(out, results)
        report.write_report(out, list(results.values()), cfg, time.perf_counter() - t_start)
    _finish_parent(uri, parent_id, out, failed)
    return BenchOutcome(list(results.values()), out, parent_id, failed)


def _finish_parent(uri: str, parent_id: str, out: Path, failed: list[str]) -> None:
    logger = tracking.RunLogger(uri, parent_id)
    for name in (RESULTS, "report.md", *sorted(p.name for p in out.glob("*.png"))):
        if (out / name).is_file():
            logger.log_artifact(out / name, "report")
    logger.set_tags({"bench.failed_rows": ",".join(failed) or "none"})
    logger.end("FAILED" if failed else "FINISHED")
