"""One trial of a sweep (a DMT run on Ray Train inside a Tune function), and reading the
trials back: their rows (status, epochs, objective history) and their MLflow runs' status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray.train
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from pipeline import config as config_mod
from pipeline import tracking
from pipeline.engine.loop import total_epochs
from pipeline.train.driver import RUN_INFO, fit
from pipeline.tune import space as space_mod


def run_trial(params: dict[str, Any], base: dict[str, Any]) -> None:
    """The Tune trainable: one DMT run with the sampled values, selected on the val split.

    ``base`` (the config, tracking URI and parent run id) comes through ``tune.with_parameters``
    so that it stays out of the trial's sampled config (and Tune's trial tables)."""
    cfg = config_mod.from_dict(base["config"])
    for key, value in space_mod.decode_sample(params).items():
        config_mod.set_key(cfg, key, value)
    cfg.tracking.uri = base["tracking_uri"]
    trial_id = tune.get_context().get_trial_id()
    name = f"trial-{trial_id}"
    run_path = config_mod.storage_dir(cfg) / name
    resume = str(run_path) if (run_path / RUN_INFO).is_file() else None
    epochs_before = epochs_checkpointed(run_path) if resume else 0
    outcome = fit(cfg, resume=resume, parent_run_id=base["parent_run_id"], run_name=name,
                  callbacks=[TuneReportCallback()], eval_split="val",
                  resume_uri=base["tracking_uri"], say=lambda *_: None, epoch_lines=False,
                  warm_start=base.get("warm_start"))
    if epochs_before >= total_epochs(cfg):
        # The Train run had finished all its epochs while Tune was shutting down after Ctrl-C,
        # before Tune recorded the last reports: this resume ran no epoch and reported nothing.
        tune.report({**outcome.metrics, "checkpoint_path": str(outcome.checkpoint_path)})


def epochs_checkpointed(run_path: Path) -> int:
    """Epochs a Train run folder holds a checkpoint for (0 before its first checkpoint)."""
    try:
        return int(ray.train.Result.from_path(str(run_path)).metrics.get("epoch", 0))
    except RuntimeError:  # no checkpoint written yet
        return 0


def trial_rows(results, cfg: config_mod.Config, max_t: int) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        params = dict(result.config or {})
        history = []
        if result.metrics_dataframe is not None and cfg.tune.objective in \
                result.metrics_dataframe:
            frame = result.metrics_dataframe
            history = [(int(i), float(v)) for i, v in
                       zip(frame["epoch"], frame[cfg.tune.objective], strict=True)]
        metrics = result.metrics or {}
        epochs = int(metrics.get("epoch", len(history)))  # see _scheduler
        # Tune marks a result done when the scheduler stops the trial (kept when a sweep is
        # restored); a trial cut short by Ctrl-C is not done, and --resume continues it
        if result.error:
            status = "error"
        elif epochs >= max_t:
            status = "completed"
        else:
            status = "stopped_early" if metrics.get("done") else "unfinished"
        rows.append({"trial_id": metrics.get("trial_id", Path(result.path).name),
                     "values": space_mod.decode_sample(params), "epochs": epochs,
                     "status": status, "history": history,
                     "objective": max((v for _, v in history), default=float("nan"))
                     if cfg.tune.mode == "max" else min((v for _, v in history),
                                                        default=float("nan")),
                     "checkpoint": metrics.get("checkpoint_path")})
    return rows


def close_children(uri: str, experiment: str, parent_id: str, rows: list[dict]) -> None:
    """Give each child run its sweep status (ASHA kills a stopped trial mid-run)."""
    children = {r.info.run_name: r for r in tracking.search_runs(
        uri, experiment, f"tags.`{tracking.PARENT_TAG}` = '{parent_id}'", max_results=1000)}
    for row in rows:
        run = children.get(f"trial-{row['trial_id']}")
        if run is None:
            continue
        log = tracking.RunLogger(uri, run.info.run_id)
        log.set_tags({"tune.status": row["status"], "tune.trial_id": row["trial_id"],
                      "tune.epochs": row["epochs"]})
        final = {"completed": "FINISHED", "stopped_early": "KILLED", "error": "FAILED"}
        # a trial stopped while it was closing its run may have marked it FAILED
        if row["status"] in final and run.info.status != final[row["status"]]:
            log.end(final[row["status"]])  # "unfinished" runs stay open for --resume


def register_best(uri: str, experiment: str, parent: str, rows: list[dict], best_row: dict,
                   mode: str, register: tuple[str, str]) -> str:
    """Register the best trial's model (``register``: name, alias). A trial ASHA stopped
    logged no model; then the best trial that ran to its end is registered, and the note
    says which."""
    runs = {r.info.run_name: r.info.run_id for r in tracking.search_runs(
        uri, experiment, f"tags.`{tracking.PARENT_TAG}` = '{parent}'", max_results=1000)}
    done = [r for r in rows if r["status"] == "completed" and r["history"]]
    if not done:
        raise RuntimeError("--register: no trial ran to its end, so none has a final model")
    pick = max if mode == "max" else min
    row = best_row if best_row in done else pick(done, key=lambda r: r["objective"])
    name, alias = register
    version = tracking.register_model(uri, runs[f"trial-{row['trial_id']}"], name, alias)
    note = "" if row is best_row else (f"; the best trial {best_row['trial_id']} was stopped "
                                       f"early and has no final model")
    return f"models:/{name}@{alias} (version {version}, trial {row['trial_id']}{note})"
