"""A sweep's shared stage-1 warm-up: run once, every trial's stage 2 starts from it.

When every swept key acts only in stage 2 (:data:`STAGE2_ONLY_KEYS`) and the method has a
warm-up, stage 1 is the same computation in every trial (same seed, same config, same batches).
The sweep then runs it once, as its own MLflow run under the sweep's parent (run name
``<sweep>-warmup``, its epochs logged there), and each trial starts from that run's last
checkpoint at the first stage-2 epoch (tag ``tune.warmup_run_id``). The checkpoint also records
how many batches each training stream had drawn, which the trial skips, so its stage 2 is the
one it would have had after warming up itself: the same numbers (``tests/test_tune_warmup.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline import tracking
from pipeline.methods import method_of
from pipeline.train.driver import RUN_INFO, fit

# Keys stage 1 never reads (pipeline/dmt/step.py: stage1_step uses lambda_sup, lambda_c and the
# augmentation keys; the thresholds, the unlabeled weight and the teachers' EMA act in dmt_step
# only). Pinned by tests/test_tune_warmup.py on a real stage-1 step.
STAGE2_ONLY_KEYS = frozenset({"dmt.delta", "dmt.tau", "dmt.ema_decay", "dmt.lambda_u",
                              "dmt.noise_filtering", "dmt.ipl", "dmt.ema"})


def stage1_is_common(cfg: config_mod.Config, space: dict[str, Any]) -> bool:
    """Whether every trial of a sweep over ``space`` runs the same stage 1 (a method with a
    warm-up, only stage-2 keys swept)."""
    return (bool(space) and set(space) <= STAGE2_ONLY_KEYS
            and method_of(cfg.dmt.method).warmup and cfg.train.stage1_epochs > 0)


def shares_warmup(cfg: config_mod.Config, space: dict[str, Any]) -> bool:
    """Stage 1 is common and may run once: not under an annealed learning rate, planned over
    both stages, which the warm-up run (cut to stage 1) would anneal over stage 1 alone."""
    return (cfg.tune.share_warmup and cfg.optim.schedule == "constant"
            and stage1_is_common(cfg, space))


def warmup_config(cfg: config_mod.Config) -> config_mod.Config:
    """The sweep's config cut to stage 1 (no stage-2 epochs)."""
    out = config_mod.from_dict(config_mod.to_dict(cfg))
    config_mod.set_key(out, "train.stage2_epochs", 0)
    return out


def run_warmup(cfg: config_mod.Config, sweep_name: str, uri: str, parent: str,
               saved: dict[str, str] | None, say) -> dict[str, str]:
    """The warm-up's ``{"run_id", "checkpoint"}``: ``saved`` (a resumed sweep that has one),
    else its run trained now (or continued, if a previous invocation was cut short in it)."""
    if saved and saved.get("checkpoint"):
        return saved
    name = f"{sweep_name}-warmup"
    run_path = config_mod.storage_dir(cfg) / name
    resume = str(run_path) if (run_path / RUN_INFO).is_file() else None
    say(f"[tune] stage 1 ({cfg.train.stage1_epochs} epochs) runs once for every trial: "
        f"run {name}")
    stage1 = warmup_config(cfg)
    stage1.tracking.uri = uri  # the sweep's server, which its trials log to as well
    outcome = fit(stage1, resume=resume, parent_run_id=parent, run_name=name,
                  eval_split="val", resume_uri=uri if resume else None, say=say,
                  epoch_lines=True)
    if outcome.checkpoint_path is None:
        raise RuntimeError(f"the sweep's warm-up {name} left no checkpoint ({run_path})")
    return {"run_id": outcome.run_id, "checkpoint": str(outcome.checkpoint_path)}


def shared(cfg: config_mod.Config, space: dict[str, Any], info_file: Path,
           saved: dict[str, str] | None, uri: str, parent: str, say) -> dict[str, str] | None:
    """The warm-up every trial of the sweep starts from, recorded in the sweep's ``info_file``
    (``--resume`` does not run it again) and tagged on its ``parent`` run; None when the trials'
    stage 1 differ (or ``tune.share_warmup`` is off)."""
    if not shares_warmup(cfg, space):
        return None
    warm = run_warmup(cfg, info_file.parent.name, uri, parent, saved, say)
    info = json.loads(info_file.read_text())
    info["warmup"] = warm
    info_file.write_text(json.dumps(info, indent=1))
    tracking.RunLogger(uri, parent).set_tags({"tune.warmup_run_id": warm["run_id"]})
    return warm
