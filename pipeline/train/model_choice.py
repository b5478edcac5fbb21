"""Which checkpoint of a run is its model: Ray keeps the best by ``train.select_metric`` on the
validation split (and always the latest, for a restart); the driver logs the last one as the
run's ``checkpoint`` artifact (``--resume`` elsewhere) and the chosen one as its MLflow model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray.train

from pipeline import config as config_mod
from pipeline import locations, tracking


def selection_metric(cfg: config_mod.Config, eval_splits: list[str]) -> str:
    """``train.select_metric`` when the run scores the validation split, else "" (the last)."""
    return cfg.train.select_metric if "val" in eval_splits else ""


def checkpoint_config(cfg: config_mod.Config, eval_splits: list[str]):
    """Ray keeps the 2 best checkpoints by the selection metric (else the 2 latest), and always
    the latest, which a restart resumes."""
    return ray.train.CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute=selection_metric(cfg, eval_splits) or None,
        checkpoint_score_order="max")


def selected_checkpoint(cfg: config_mod.Config, result: Any, eval_splits: list[str]
                        ) -> tuple[Any, dict[str, Any], str]:
    """(checkpoint, its reported metrics, the metric that chose it) of the run's model: the
    best kept checkpoint by the selection metric, else the last (metric "")."""
    select = selection_metric(cfg, eval_splits)
    scored = [(c, m) for c, m in (result.best_checkpoints or []) if select in m]
    if not select or not scored:
        return result.checkpoint, dict(result.metrics or {}), ""
    # ties go to the later epoch, as Ray keeps them (its ranking is stable, so of equal scores
    # it deletes the earlier checkpoints first): the choice is the same whichever Ray kept
    checkpoint, metrics = max(scored, key=lambda cm: (cm[1][select], cm[1]["epoch"]))
    return checkpoint, dict(metrics), select


def log_checkpoints(logger, cfg: config_mod.Config, result: Any, eval_splits: list[str],
                    run_path: Path) -> tuple[Path | None, int, dict[str, Any], str]:
    """The last checkpoint as the ``checkpoint`` artifact and the selected one as the run's
    MLflow model (runs:/<id>/model: the Models tab, the registry, pyfunc), with its epoch and
    scores. Returns the model's (checkpoint folder, epoch, metrics, selection metric)."""
    with result.checkpoint.as_directory() as local:  # downloaded when in object storage
        logger.log_artifact(Path(local) / "state.pt", "checkpoint")
    checkpoint, metrics, select = selected_checkpoint(cfg, result, eval_splits)
    with checkpoint.as_directory() as local:
        tracking.log_model(logger, Path(local) / "state.pt", cfg)
    epoch = int(metrics["epoch"])
    logger.set_tags({"model.epoch": epoch, "model.selected_by": select or "last epoch"})
    logger.log_metrics({"model/epoch": epoch, **{
        f"model/{k}": v for k, v in metrics.items()
        if k.startswith(("val/", "test/")) and isinstance(v, (int, float))}}, step=epoch)
    return checkpoint_location(checkpoint, run_path), epoch, metrics, select


def checkpoint_location(checkpoint: Any, run_path: locations.Location):
    """Where Ray Train left a checkpoint: its local folder, or in object storage the
    checkpoint's folder under the run folder (whose URI keeps the endpoint options)."""
    if checkpoint is None:
        return None
    if locations.is_remote(run_path):
        return run_path / checkpoint.path.rstrip("/").rsplit("/", 1)[-1]
    return Path(checkpoint.path)
