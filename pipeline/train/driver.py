"""The driver side of `dmt train`: data ready, MLflow run opened, TorchTrainer fitted, run closed.

Also used by `dmt tune` (one trial = one call of :func:`fit`) and `dmt demo`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline.train import data as train_data

log = logging.getLogger("dmt.train")
RUN_INFO = "dmt_run.json"  # written into the Ray run folder: how to resume it


@dataclass
class TrainOutcome:
    run_id: str | None
    tracking_uri: str
    ray_run_path: Path
    checkpoint_path: Path | None
    metrics: dict[str, float]
    return_value: Any


def ensure_ray(num_cpus: int | None = None, **init_kwargs: Any) -> None:
    """Join ``RAY_ADDRESS`` (or the cluster a Ray job runs in), else start a local instance
    (``init_kwargs`` go to ``ray.init``: tests size it)."""
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
    port = init_kwargs.pop("dashboard_port", None) or _free_port()
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=port, **init_kwargs)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_dataset(cfg: config_mod.Config, say=print) -> dict[str, Any]:
    """Shards ready for training: synthesise and preprocess first when the folder is missing
    (synthetic configs only; a real dataset must be preprocessed by the user)."""
    paths = config_mod.data_paths(cfg.data)
    if train_data.shard_path_ok(paths.shards):
        return json.loads((paths.shards / "summary.json").read_text())
    if not paths.videos.exists():
        if cfg.data.format != "synth":
            raise FileNotFoundError(f"data.videos: {paths.videos} does not exist")
        from pipeline.synth import generate

        say(f"[data] {paths.videos} missing: synthesising {cfg.data.synth.clips} clips "
            f"into {paths.synth}")
        generate(cfg.data.synth, paths.synth, progress=True)
    from pipeline.data.preprocess import run_preprocess

    say(f"[data] {paths.shards} missing: preprocessing {paths.videos} with Ray Data")
    ensure_ray()
    return run_preprocess(paths.videos, paths.shards, annotations=paths.annotations,
                          fmt=cfg.data.format, lists=paths.lists, data=cfg.data,
                          progress=True, config=config_mod.to_dict(cfg))


def validation_ids(cfg: config_mod.Config) -> list[str]:
    """Labeled ids held out for model selection: ``data.val_list`` or a seeded
    ``data.val_fraction`` of the labeled ids."""
    shards = config_mod.data_paths(cfg.data).shards
    if cfg.data.val_list:
        from pipeline.data.formats import load_id_list

        return sorted(load_id_list(cfg.data.val_list))
    return train_data.carve_validation(train_data.labeled_ids(shards), cfg.data.val_fraction,
                                       cfg.train.seed)


def build_datasets(cfg: config_mod.Config, eval_split: str = "test") -> dict[str, Any]:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    # Progress bars of the feeding datasets would interleave with the per-epoch progress lines.
    ctx.enable_progress_bars = False
    # Blocks in file order, not in the order read tasks finish: with the seeded local shuffle,
    # the same seed then gives the same batches (without it two runs of one config differed
    # from the first epoch on, and Tune trials compared noise from the data order).
    ctx.execution_options.preserve_order = True
    shards = config_mod.data_paths(cfg.data).shards
    counts = train_data.split_counts(shards)
    if counts["labeled"] == 0 and cfg.dmt.method != "ezvsl":
        raise ValueError(f"{shards}: no labeled clips (split 'labeled'); check data.lists")
    names = ["labeled"]
    if cfg.dmt.method != "supervised":
        names.append("unlabeled")
    names.append(eval_split)
    val_ids = validation_ids(cfg) if eval_split == "val" else None
    if eval_split == "val" and not val_ids:
        raise ValueError("validation split is empty: set data.val_fraction > 0 or data.val_list")
    frac = cfg.train.data_cpus
    datasets = {name: train_data.split_dataset(shards, name, cfg.model.image_size, frac,
                                               cfg.data.decode_batch_size, val_ids)
                for name in names}
    # The labeled and evaluation splits are small (a few % of the clips) and read every epoch:
    # decode them once, here. Only the unlabeled stream is decoded on the fly, so at most one
    # dataset at a time needs Ray Data CPUs (Ray Data splits the CPUs left beside the Train
    # workers between running datasets in whole CPUs: on a 2-CPU machine two would starve).
    for name in names:
        if name != "unlabeled":
            datasets[name] = datasets[name].materialize()
    return datasets


def build_trainer(cfg: config_mod.Config, datasets: dict[str, Any], loop_config: dict[str, Any],
                  name: str, storage: Path, callbacks: list | None = None):
    import ray.train
    from ray.train.torch import TorchTrainer

    from pipeline.train.loop import train_loop_per_worker

    resources = {"CPU": cfg.train.cpus_per_worker}
    if cfg.train.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.train.num_workers,
                                               use_gpu=cfg.train.use_gpu,
                                               resources_per_worker=resources,
                                               placement_strategy=cfg.train.placement_strategy),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(storage), callbacks=callbacks or None,
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(execution_options=_ordered_ingest()),
    )


def _ordered_ingest():
    """Train's default ingest options for the worker shards, plus ``preserve_order`` (set here
    on the driver: Train resolves its defaults in its controller, whose Ray Data context is not
    this one)."""
    import ray.train

    options = ray.train.DataConfig.default_ingest_options()
    options.preserve_order = True
    return options


def storage_dir(cfg: config_mod.Config) -> Path:
    return Path(cfg.train.storage or "ray_results").resolve()


def _resume_info(target: str, uri: str) -> dict[str, Any]:
    """``dmt train --resume`` accepts a Ray run folder or an MLflow run id."""
    folder = Path(target)
    if not folder.exists():
        from pipeline import tracking

        try:
            run = tracking.get_run(uri, target)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a bad id
            raise FileNotFoundError(f"--resume {target!r}: neither a Ray run folder nor an "
                                    f"MLflow run id in {uri} ({exc})") from None
        folder = Path(run.data.tags.get("ray.run_path", ""))
    info_file = folder / RUN_INFO
    if not info_file.is_file():
        raise FileNotFoundError(f"--resume {target!r}: {info_file} not found (not a dmt run)")
    return json.loads(info_file.read_text())


def _dataset_tags(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("inputs", "rows", "quarantined", "schema_version", "splits", "missing")
    return {"dataset": {k: summary.get(k) for k in keep if k in summary}}


def fit(cfg: config_mod.Config, *, resume: str | None = None, parent_run_id: str | None = None,
        run_name: str | None = None, callbacks: list | None = None, eval_split: str = "test",
        resume_uri: str | None = None, say=print) -> TrainOutcome:
    """Train one run end to end and return where everything went. ``resume_uri``: where the
    resumed run's MLflow store is served now, if not where it was (a sweep's private server
    gets a new port each time the sweep runs)."""
    from pipeline import tracking

    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    cfg = config_mod.resolve_paths(cfg)
    if resume:  # the run's own config and MLflow store, whatever this command was given
        info = _resume_info(resume, uri)
        cfg, uri = config_mod.from_dict(info["config"]), resume_uri or info["uri"]
        cfg.tracking.uri = uri
    summary = ensure_dataset(cfg, say)
    ensure_ray()
    storage = storage_dir(cfg)
    if resume:
        run_id, name, storage = info["run_id"], info["name"], Path(info["storage"])
        say(f"[train] resuming {name} (MLflow run {run_id})")
    else:
        tags = tracking.reproducibility_tags(_dataset_tags(summary))
        run_id = tracking.start_run(uri, cfg.tracking.experiment or cfg.name,
                                    run_name or cfg.name, config_mod.flatten(cfg), tags,
                                    parent_run_id=parent_run_id)
        name = run_name or f"{cfg.name}-{run_id[:12]}"
    logger = tracking.RunLogger(uri, run_id)
    run_path = storage / name
    run_path.mkdir(parents=True, exist_ok=True)
    (run_path / RUN_INFO).write_text(json.dumps({"run_id": run_id, "name": name,
                                                 "storage": str(storage), "uri": uri,
                                                 "config": config_mod.to_dict(cfg)}, indent=1))
    logger.set_tags({"ray.run_path": str(run_path), "ray.run_name": name,
                     "method": cfg.dmt.method})
    if not resume:
        logger.log_text(config_mod.dump_yaml(cfg), "config.yaml")
    shards = config_mod.data_paths(cfg.data).shards
    clips = train_data.read_clips(shards, train_data.test_ids(shards, cfg.tracking.heatmaps))
    loop_config = {"config": config_mod.to_dict(cfg), "logger": logger, "heatmap_clips": clips,
                   "eval_split": eval_split}
    trainer = build_trainer(cfg, build_datasets(cfg, eval_split), loop_config, name, storage,
                            callbacks)
    say(f"[train] {cfg.dmt.method}: {cfg.train.num_workers} worker(s); run folder {run_path}")
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        logger.end("KILLED")
        raise
    except Exception:
        logger.end("FAILED")
        raise
    checkpoint_path = Path(result.checkpoint.path) if result.checkpoint else None
    if checkpoint_path is not None:
        logger.log_artifact(checkpoint_path / "state.pt", "model")
    logger.end("FINISHED")
    return TrainOutcome(run_id, uri, run_path, checkpoint_path, dict(result.metrics or {}),
                        result.return_value)

