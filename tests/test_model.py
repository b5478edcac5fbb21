"""The MLflow model: logged into a run of a real SQLite store (an untrained smoke checkpoint,
no Ray), registered with an alias, loaded by ``mlflow.pyfunc.load_model`` in a fresh process
and compared with `dmt localize --json` and the in-process Localizer; `dmt train --register`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline import tracking
from pipeline.cli import main
from tests.media import sine

REPO = Path(__file__).resolve().parents[1]
NAME = "dmt-test"


@pytest.fixture(scope="module")
def logged(tmp_path_factory, untrained_checkpoint):
    """(uri, run id, model id) of a run with its checkpoint logged as the MLflow model and
    registered as NAME@champion."""
    from pipeline import config as C

    root = tmp_path_factory.mktemp("model_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    run_id = tracking.start_run(uri, "model-test", "r", {"dmt.tau": 0.5})
    logger = tracking.RunLogger(uri, run_id)
    cfg = C.load(REPO / "jobs/configs/smoke.yaml")
    model_id = tracking.log_model(logger, untrained_checkpoint / "state.pt", cfg)
    logger.end()
    assert tracking.register_model(uri, run_id, NAME, "champion") == "1"
    return uri, run_id, model_id


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """The frames+audio layout: a PNG frame and a 16-bit WAV tone."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pair")
    frame = np.full((120, 160, 3), (40, 60, 90), np.uint8)
    frame[40:80, 100:140] = 255
    Image.fromarray(frame).save(folder / "pair_b.png")
    pcm = (sine(660, 3.5, 16000)[0] * 32767).astype("<i2")
    with wave.open(str(folder / "pair_b.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return folder / "pair_b.png", folder / "pair_b.wav"


def test_the_run_logs_a_model_with_signature_example_and_pinned_requirements(logged):
    from importlib import metadata

    from mlflow import MlflowClient
    from mlflow.models import Model

    uri, run_id, model_id = logged
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]  # the Models tab
    assert tracking.run_model_id(uri, run_id) == model_id
    model = client.get_logged_model(model_id)
    assert model.name == "model" and model.experiment_id == run.info.experiment_id
    assert str(model.status).endswith("READY") and model.params["dmt.tau"] == "0.5"
    folder = Path(tracking.download_artifacts(uri, f"models:/{model_id}"))
    meta = Model.load(folder)
    assert meta.signature.inputs.input_names() == ["path", "frame", "audio", "id"]
    assert meta.signature.outputs.input_names() == ["id", "box", "peak", "map"]
    assert meta.load_input_example(folder)["path"].tolist() == ["example.mp4"]
    assert {p.name for p in (folder / "artifacts").iterdir()} == {"state.pt", "example.mp4"}
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"torch=={metadata.version('torch')}" in requirements
    assert any(r.startswith("dmt-avsl") for r in requirements)
    version = client.get_model_version_by_alias(NAME, "champion")
    assert version.run_id == run_id and version.source == f"models:/{model_id}"


SCRIPT = """
import json, sys
import mlflow, numpy as np, pandas as pd
uri, model, video, frame, audio, out = sys.argv[1:]
mlflow.set_tracking_uri(uri)
m = mlflow.pyfunc.load_model(model)
rows = m.predict(pd.DataFrame({"path": [video, None, "example.mp4"],
                               "frame": [None, frame, None], "audio": [None, audio, None]}))
np.save(out + ".npy", np.stack(rows["map"].tolist()))
rows[["id", "box", "peak"]].to_json(out + ".json", orient="records")
import pipeline; print(pipeline.__file__)
"""


def test_pyfunc_in_a_fresh_process_gives_the_numbers_of_dmt_localize(
        logged, untrained_checkpoint, clip_video, pair, tmp_path):
    from pipeline.localize import Localizer

    uri, _, _ = logged
    model = f"models:/{NAME}@champion"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)  # this checkout's package, as an installed one would be
    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, uri, model, str(clip_video),
                           str(pair[0]), str(pair[1]), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(str(REPO))
    maps, rows = np.load(str(out) + ".npy"), json.loads(Path(str(out) + ".json").read_text())
    assert maps.shape == (3, 224, 224) and [r["id"] for r in rows] == [
        "clip_a", "pair_b", "example"]

    js = tmp_path / "loc.json"
    assert main(["localize", "--model", model, "--tracking-uri", uri, str(clip_video),
                 "--json", str(js)]) == 0
    cli = json.loads(js.read_text())  # rounded to 4 decimals: equal up to that rounding
    assert np.abs(maps[0].astype(np.float64) - np.asarray(cli["map"])).max() <= 5e-5 + 1e-6
    assert np.abs(np.asarray(rows[0]["box"]) - cli["box"]).max() <= 5e-5 + 1e-6
    assert rows[0]["peak"] == pytest.approx(cli["peak"], abs=1e-9)

    here = Localizer.load(str(untrained_checkpoint))  # full precision, video and pair
    for i, result in enumerate((here.video(clip_video), here.pair(*pair))):
        assert np.abs(maps[i] - result.map).max() <= 1e-5
        assert rows[i]["box"] == pytest.approx(result.box, abs=1e-5)
        assert rows[i]["peak"] == pytest.approx(result.peak_xy, abs=1e-9)
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def test_predict_names_the_input_it_cannot_use(logged, tmp_path):
    import mlflow
    import pandas as pd

    from pipeline.localize import LocalizeError
    from pipeline.tracking.store import tracking_uri

    uri, run_id, _ = logged
    with tracking_uri(uri):
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    with pytest.raises(LocalizeError, match=rf"input row 1: {bad}: cannot use this video: "
                                            r"unreadable container"):
        model.predict(pd.DataFrame({"path": ["example.mp4", str(bad)]}))
    with pytest.raises(LocalizeError, match=r"input row 0: give a video 'path', or a 'frame' "
                                            r"image and an 'audio' file \(got \['frame'\]\)"):
        model.predict(pd.DataFrame({"frame": [str(bad)]}))
    assert "MLFLOW_TRACKING_URI" not in os.environ or os.environ["MLFLOW_TRACKING_URI"] != uri


def test_train_register_sets_the_alias_on_the_runs_model(logged, monkeypatch, capsys):
    """`dmt train --register` wiring, with the training itself replaced by the logged run."""
    from pipeline.train import driver

    uri, run_id, model_id = logged
    outcome = driver.TrainOutcome(run_id, uri, Path("."), None, {}, None)
    monkeypatch.setattr("pipeline.prepare.prepare_dataset", lambda cfg: None)
    monkeypatch.setattr(driver, "fit", lambda cfg, resume=None: outcome)
    args = ["train", "--config", "smoke", "--set", f"tracking.uri={uri}"]
    assert main([*args, "--register", "dmt-cli"]) == 0
    assert "models:/dmt-cli@candidate" in capsys.readouterr().out
    from mlflow import MlflowClient

    version = MlflowClient(uri).get_model_version_by_alias("dmt-cli", "candidate")
    assert version.source == f"models:/{model_id}"
    monkeypatch.setattr(driver, "fit", lambda *a, **k: pytest.fail("trained"))
    assert main([*args, "--register", "x", "--alias", "latest"]) == 2  # before any training
    assert "'latest'" in capsys.readouterr().err
