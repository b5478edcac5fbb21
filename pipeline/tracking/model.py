"""The trained model as an MLflow model: a pyfunc whose ``predict`` localizes the sounding object
in each row of a DataFrame (a video, or a frame image + audio file) through the same
:class:`pipeline.localize.Localizer` as `dmt localize`; logged by every training run
(:func:`log_model`), registered with an alias (:func:`register_model`).

The logged model's folder holds the checkpoint (``artifacts/state.pt``, so every checkpoint
reader takes a model URI too) and a short example clip, ``artifacts/example.mp4``, which its
input example names: MLflow predicts on the input example when it logs the model (the model is
checked end to end before the run is closed), and ``mlflow models predict`` on the example
works anywhere. For that, a relative path that is no file in the working directory is looked up
among the model's own artifacts. The python model is pickled by reference
(``pipeline.tracking.model.LocalizerModel``): loading it needs this package installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import Array, Object, Property

from pipeline import console
from pipeline.synth.generate import encode_clip
from pipeline.synth.scene import sample_scene
from pipeline.tracking.runs import retrying
from pipeline.tracking.store import tracking_uri

MODEL_NAME = "model"  # the logged model's name: the run's Models tab, runs:/<run id>/model
EXAMPLE = "example.mp4"
INPUTS = ("path", "frame", "audio", "id")
OUTPUTS = ("id", "box", "peak", "map")
# pinned at the versions this process runs; dmt-avsl itself is not on PyPI (install its wheel)
REQUIREMENTS = ("dmt-avsl", "mlflow", "torch", "torchaudio", "torchvision", "av",
                "numpy", "pandas", "pillow", "pyarrow")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "path", required=False),
                   ColSpec("string", "frame", required=False),
                   ColSpec("string", "audio", required=False),
                   ColSpec("string", "id", required=False)]),
    outputs=Schema([ColSpec("string", "id"), ColSpec(Array("double"), "box"),
                    ColSpec(Object([Property("x", "double"), Property("y", "double")]), "peak"),
                    ColSpec(Array(Array("float")), "map")]))
_ALIAS = re.compile(r"^[\w\-]+$")  # MLflow's alias characters; 'latest' and v<n> are its own


class LocalizerModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame) -> DataFrame``: per input row, a video ``path`` or a ``frame``
    image + ``audio`` file (optional ``id``, default the file stem), one output row with
    ``id``, ``box`` (normalised xmin, ymin, xmax, ymax), ``peak`` ({x, y}, normalised) and
    ``map`` ((224, 224) float32 in [0, 1]), the numbers `dmt localize` gives."""

    def load_context(self, context) -> None:
        # heavy (torch): only a loaded model needs it; `import pipeline.tracking` stays
        # torch-free for `dmt submit` and `dmt jobs`
        from pipeline.localize import Localizer

        self.own = Path(context.artifacts["example"]).parent
        self.localizer = Localizer.load(context.artifacts["checkpoint"])

    def _file(self, value: str) -> str:
        path = Path(value)
        if not path.is_absolute() and not path.exists() and (self.own / path).is_file():
            return str(self.own / path)  # the bundled example clip
        return value

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from pipeline.localize import LocalizeError  # heavy (torch): as in load_context

        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        rows = []
        for i, row in enumerate(model_input.to_dict("records")):
            path, frame, audio, clip_id = (_text(row.get(k)) for k in INPUTS)
            try:
                if path:
                    result = self.localizer.video(self._file(path), clip_id or None)
                elif frame and audio:
                    result = self.localizer.pair(self._file(frame), self._file(audio),
                                                 clip_id or None)
                else:
                    given = sorted(k for k in row if _text(row[k]))
                    raise LocalizeError("give a video 'path', or a 'frame' image and an "
                                        f"'audio' file (got {given})")
            except LocalizeError as exc:
                raise LocalizeError(f"input row {i}: {exc}") from None
            rows.append({"id": result.id, "box": [float(v) for v in result.box],
                         "peak": result.peak_xy, "map": result.map})
        return pd.DataFrame(rows, columns=list(OUTPUTS))


def _text(value: Any) -> str:
    """A cell as text: '' for a missing one (None, NaN: a row that uses the other layout)."""
    return "" if value is None or value != value else str(value)


def pip_requirements() -> list[str]:
    """What the model imports, pinned to this environment (explicit: MLflow's inference of
    requirements loads the model in a subprocess)."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:  # dmt-avsl run from a checkout
            pins.append(name)
    return pins


def write_example(cfg: Any, path: Path) -> Path:
    """A synthetic clip of the run's synth settings, long enough for its decode options."""
    seconds = max(cfg.data.synth.duration, cfg.data.audio_seconds + 0.5,
                  cfg.data.frame_time + 0.5)
    synth = dataclasses.replace(cfg.data.synth, duration=seconds, fps=min(cfg.data.synth.fps, 10))
    scene = sample_scene(synth, 0)
    encode_clip(synth, scene, str(path.parent), threads=1)
    (path.parent / f"{scene.id}.mp4").rename(path)
    return path


def log_model(logger: Any, checkpoint: str | os.PathLike, cfg: Any) -> str:
    """Log ``checkpoint`` (a ``state.pt``) as the run's MLflow model (``logger``: the run's
    :class:`RunLogger`); returns the model id. The logged model is created in the run's
    experiment here: left to MLflow, it would go to the active (default) experiment."""
    def log() -> str:
        client = MlflowClient(logger.uri)
        run = client.get_run(logger.run_id)
        model = client.create_logged_model(run.info.experiment_id, name=MODEL_NAME,
                                           source_run_id=logger.run_id,
                                           params=dict(run.data.params), model_type="dmt-avsl")
        with tempfile.TemporaryDirectory(prefix="dmt-model-") as tmp, tracking_uri(logger.uri), \
                _pyfunc_pickle_warning_off():
            example = write_example(cfg, Path(tmp) / EXAMPLE)
            Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc,
                      run_id=logger.run_id, model_id=model.model_id,
                      python_model=LocalizerModel(),
                      artifacts={"checkpoint": str(checkpoint), "example": str(example)},
                      signature=SIGNATURE, input_example=pd.DataFrame({"path": [EXAMPLE]}),
                      pip_requirements=pip_requirements())
        return model.model_id

    return retrying(log, logger.uri, "log the model", logger.retry_s)


def check_alias(alias: str) -> str:
    """ValueError for an alias MLflow would refuse (checked before a run trains for hours)."""
    if not _ALIAS.match(alias) or alias.lower() == "latest" or re.match(r"^[vV]\d+$", alias):
        raise ValueError(f"--alias {alias!r}: letters, digits, '_' and '-' only, and not "
                         f"'latest' or v<number> (MLflow's own names for versions)")
    return alias


def run_model_id(uri: str, run_id: str) -> str:
    """The id of the model a training run logged; ValueError naming the run if it has none."""
    client = MlflowClient(uri)
    outputs = client.get_run(run_id).outputs
    for out in reversed(outputs.model_outputs if outputs else []):
        if client.get_logged_model(out.model_id).name == MODEL_NAME:
            return out.model_id
    raise ValueError(f"MLflow run {run_id} in {uri} has no logged model (a run that did not "
                     f"finish, e.g. a trial stopped early, or one from before models were "
                     f"logged)")


@contextmanager
def _pyfunc_pickle_warning_off():
    """MLflow warns on every log that a ``python_model`` object is saved with CloudPickle. Ours
    is a small class of this package, loaded back with this package installed (its
    requirements pin it); the warning is console noise on every run, kept with --verbose."""
    log = logging.getLogger("mlflow.pyfunc")
    level = log.level
    if not console.verbose():
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def register_model(uri: str, run_id: str, name: str, alias: str) -> str:
    """Register the run's model under ``name`` (a new version) and point ``alias`` at it;
    returns the version."""
    model_id = run_model_id(uri, run_id)
    # mlflow.register_model prints "Successfully registered ..." and "Created version ..." on
    # stderr; the command prints its own line with the URI
    quiet = contextlib.nullcontext() if console.verbose() else contextlib.redirect_stderr(
        io.StringIO())
    with tracking_uri(uri), quiet:
        version = mlflow.register_model(f"models:/{model_id}", name).version
    MlflowClient(uri).set_registered_model_alias(name, check_alias(alias), version)
    return str(version)
