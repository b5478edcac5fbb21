"""A checkpoint named by where it is: a ``state.pt``, a folder holding one (a Ray checkpoint or
run folder), an object-storage URI (``s3://...``, ``train.storage``) or an MLflow URI (a run's
artifact, a logged or registered model). `dmt localize`, `dmt evaluate` and a sweep's best trial
take any of them; the engine and :mod:`pipeline.localize` below take local files only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline import locations, tracking
from pipeline.engine import checkpoint as ckpt_io
from pipeline.engine.offline import evaluate_file
from pipeline.localize import LocalizeError, Localizer

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")


def resolve_checkpoint(spec: str, tracking_uri: str = "",
                       download_dir: str | os.PathLike | None = None) -> Path:
    """A local ``state.pt`` for a file, a folder holding one, or an MLflow URI: a run's
    artifact (``runs:/<id>/checkpoint``), a logged or registered model (``runs:/<id>/model``,
    ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``models:/<model id>``: the
    model's folder holds the checkpoint), downloaded from ``tracking_uri`` (default
    ``$MLFLOW_TRACKING_URI`` or ./mlflow.db), or an object-storage URI (a Ray checkpoint or run
    folder in ``s3://...``: its newest state.pt). LocalizeError naming ``spec`` if none."""
    if spec.startswith(MLFLOW_SCHEMES):
        uri = tracking.resolve_tracking_uri(tracking_uri)
        dst = Path(download_dir or tempfile.mkdtemp(prefix="dmt-localize-"))
        try:
            local = tracking.download_artifacts(uri, spec, dst)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
            raise LocalizeError(f"{spec}: cannot download from {uri}: "
                                f"{type(exc).__name__}: {exc}") from None
        spec_path = Path(local)
    elif locations.is_uri(spec):  # a checkpoint in object storage (train.storage=s3://...)
        spec_path = _download_state(spec, Path(download_dir or tempfile.mkdtemp(
            prefix="dmt-localize-")))
    else:
        spec_path = Path(spec)
    try:
        return ckpt_io.find(spec_path)
    except FileNotFoundError as exc:
        raise LocalizeError(f"{spec}: {exc}") from None


def _download_state(spec: str, dst: Path) -> Path:
    """The newest ``state.pt`` at or under an object-storage URI (``checkpoint.find``), copied
    into ``dst``."""
    try:
        found = ckpt_io.find(locations.location(spec, "checkpoint"))
        (dst / ckpt_io.FILENAME).write_bytes(found.read_bytes())
    except (OSError, ValueError) as exc:
        raise LocalizeError(f"{spec}: {exc}") from None
    return dst / ckpt_io.FILENAME


def load_localizer(spec: str, *, device: str = "cpu", tracking_uri: str = "") -> Localizer:
    """A :class:`Localizer` for a checkpoint anywhere (see :func:`resolve_checkpoint`); its
    results name ``spec``. LocalizeError naming the checkpoint if it cannot load."""
    with tempfile.TemporaryDirectory(prefix="dmt-localize-") as tmp:  # MLflow downloads
        return Localizer.load(resolve_checkpoint(spec, tracking_uri, tmp), device=device,
                              name=spec)


def evaluate_checkpoint(spec: str | os.PathLike, shards: str | os.PathLike,
                        split: str = "test", batch_size: int = 32,
                        device: str = "cpu", tracking_uri: str = "") -> dict[str, Any]:
    """The metrics table of a checkpoint anywhere (see :func:`resolve_checkpoint`) on one
    split of the shards, with the trivial predictors beside it (``offline.evaluate_file``)."""
    spec = str(spec)
    with tempfile.TemporaryDirectory(prefix="dmt-evaluate-") as tmp:
        file = resolve_checkpoint(spec, tracking_uri, tmp)
        name = spec if spec.startswith(MLFLOW_SCHEMES) or locations.is_uri(spec) else str(file)
        return evaluate_file(file, shards, split, batch_size, device, name)
