"""`dmt localize`: a checkpoint made without Ray (make_state + checkpoint.save from the smoke
config), real mp4 files written with PyAV, the JSON / PNG outputs, MLflow URIs and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from tests.media import write_clip

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(untrained_checkpoint) -> Path:
    return untrained_checkpoint


@pytest.fixture(scope="module")
def video(clip_video) -> Path:
    return clip_video


def _check_json(data: dict, video: Path) -> None:
    assert data["id"] == video.stem
    assert data["model"] == "teacher_mean"  # DMT reports the teachers' mean map
    heat = np.asarray(data["map"], dtype=np.float64)
    assert heat.shape == (224, 224)
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert np.allclose(heat, np.round(heat, 4))
    x0, y0, x1, y1 = data["box"]
    assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    cx, cy = (col + 0.5) / 224, (row + 0.5) / 224
    assert x0 <= cx <= x1 and y0 <= cy <= y1, (data["box"], (cx, cy))


def test_localize_writes_json_and_png(checkpoint, video, tmp_path, capsys):
    out, js = tmp_path / "o" / "clip.png", tmp_path / "clip.json"
    code = main(["localize", "--checkpoint", str(checkpoint), str(video),
                 "--out", str(out), "--json", str(js)])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    _check_json(data, video)
    assert data["checkpoint"] == str(checkpoint)
    assert "box (xmin, ymin, xmax, ymax)" in capsys.readouterr().out


def test_localize_state_file_and_mlflow_uri(checkpoint, video, tmp_path):
    from pipeline import tracking

    state_pt = checkpoint / "state.pt"
    js = tmp_path / "a.json"
    assert main(["localize", "--checkpoint", str(state_pt), str(video), "--json", str(js)]) == 0
    first = json.loads(js.read_text())

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = tracking.start_run(uri, "localize-test", "ckpt", {})
    tracking.RunLogger(uri, run_id).log_artifact(state_pt, "model")
    js2 = tmp_path / "b.json"
    assert main(["localize", "--checkpoint", f"runs:/{run_id}/model", "--tracking-uri", uri,
                 str(video), "--json", str(js2)]) == 0
    second = json.loads(js2.read_text())
    _check_json(second, video)
    assert second["checkpoint"] == f"runs:/{run_id}/model"
    assert second["map"] == first["map"] and second["box"] == first["box"]


def test_peak_box_is_the_component_holding_the_maximum():
    from pipeline.localize import peak_box

    heat = np.zeros((224, 224), np.float32)
    heat[10:20, 30:50] = 0.9  # a larger blob, but not the peak
    heat[100:120, 150:160] = 0.7
    heat[110, 155] = 1.0
    box, peak = peak_box(heat)
    assert peak == (110, 155)
    assert box == [150 / 224, 100 / 224, 160 / 224, 120 / 224]


@pytest.mark.parametrize("kind", ["missing", "not_a_video", "no_audio"])
def test_bad_video_exits_1_naming_the_file(checkpoint, tmp_path, capsys, kind):
    if kind == "missing":
        path = tmp_path / "nope.mp4"
    elif kind == "not_a_video":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n")
    else:
        path = write_clip(tmp_path / "silent_track.mp4", seconds=1.0, audio=None)
    code = main(["localize", "--checkpoint", str(checkpoint), str(path),
                 "--json", str(tmp_path / "x.json")])
    assert code == 1
    err = capsys.readouterr().err
    assert str(path) in err, err
    assert not (tmp_path / "x.json").exists()
    if kind == "no_audio":
        assert "no audio" in err


def test_bad_checkpoint_exits_1(video, tmp_path, capsys):
    code = main(["localize", "--checkpoint", str(tmp_path / "missing"), str(video)])
    assert code == 1
    assert str(tmp_path / "missing") in capsys.readouterr().err
