"""The paper's configs (jobs/configs/paper/) run as written, on CPU, for a few steps: a tiny
frames + audio set made from `dmt synth` clips, Flickr XML or VGG-SS JSON boxes, lists drawn by
`dmt lists`, locally made weights in the released layouts. Only sizes, paths and
train.use_gpu are overridden, so ResNet-18 at 224 px with VGGish + SoundNet, bf16 autocast
and channels_last are what runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from pipeline import config as C
from pipeline import tracking
from pipeline.cli import main

try:
    from tests.media import export_pair
    from tests.test_pretrained import soundnet8_state, vggish_port_state
except ImportError:  # pytest run without the repo root on sys.path
    from media import export_pair
    from test_pretrained import soundnet8_state, vggish_port_state

REPO = Path(__file__).resolve().parents[1]
PAPER = sorted(p.stem for p in (REPO / "jobs" / "configs" / "paper").glob("[!_]*.yaml"))
LABELED = {"256": 2, "2k": 3, "4k": 4}  # |D_l| -> labeled clips of the tiny set
pytestmark = pytest.mark.slow


def flickr_xml(boxes: list[list[float]]) -> str:
    root = ET.Element("annotation")
    for box in boxes:
        obj = ET.SubElement(root, "object")
        bbox = ET.SubElement(obj, "bbox")
        ET.SubElement(bbox, "annotator").text = "1"
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bbox, tag).text = str(round(v * 256))
    return ET.tostring(root, encoding="unicode")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """12 clips of 2 s in the frames+audio layout, both box formats, weights files."""
    from torchvision.models import resnet18

    from pipeline.config import SynthConfig
    from pipeline.synth import generate

    root = tmp_path_factory.mktemp("paper")
    synth = root / "synth"
    generate(SynthConfig(clips=12, labeled=4, test=3, seed=3, duration=2.0, workers=1), synth,
             progress=False)
    for video in sorted((synth / "videos").glob("*.mp4")):
        export_pair(video, root / "frames", root / "audio")
    ann = json.loads((synth / "annotations.json").read_text())
    (root / "vggss.json").write_text(json.dumps(ann))
    (root / "Annotations").mkdir()
    for entry in ann:
        (root / "Annotations" / f"{entry['file']}.xml").write_text(flickr_xml(entry["bbox"]))
    weights = root / "weights"
    weights.mkdir()
    torch.save(resnet18(weights=None).state_dict(), weights / "resnet18.pth")
    torch.save(vggish_port_state(), weights / "vggish.pth")
    torch.save(soundnet8_state(), weights / "soundnet8.pth")
    return root


def _overrides(tiny: Path, name: str, tmp: Path) -> list[str]:
    dataset, _, size = name.split("_")
    lists = tmp / "lists"
    assert main(["lists", "--annotated", str(tiny / "synth" / "labeled.txt"), "--test",
                 str(tiny / "synth" / "test.txt"), "--pool", str(tiny / "synth" / "unlabeled.txt"),
                 "-n", str(LABELED[size]), "--out", str(lists)]) == 0
    ann = tiny / ("Annotations" if dataset == "flickr" else "vggss.json")
    return [  # paths
        f"data.root={tmp}", f"data.frames={tiny / 'frames'}", f"data.audio={tiny / 'audio'}",
        f"data.annotations={ann}", f"data.lists={lists}", f"data.shards={tmp / 'shards'}",
        f"model.visual_weights={tiny / 'weights' / 'resnet18.pth'}",
        f"model.audio_a_weights={tiny / 'weights' / 'vggish.pth'}",
        f"model.audio_b_weights={tiny / 'weights' / 'soundnet8.pth'}",
        f"train.storage={tmp / 'ray_results'}", f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        # sizes, and the CPU
        "optim.batch_size=2", "train.steps_per_epoch=1", "train.stage1_epochs=1",
        "train.stage2_epochs=1", "tracking.heatmaps=1", "data.rows_per_file=4",
        "data.decode_concurrency=1", "train.use_gpu=false"]


def _steps(cfg):
    """Stage 1 and stage 2 of the config through the engine (what a Ray Train worker runs):
    its networks with the weights files, precision and memory format, batches from its
    shards."""
    import itertools

    from pipeline.dmt import make_state
    from pipeline.engine import evaluation
    from pipeline.engine.batches import to_torch
    from pipeline.engine.loop import run_epoch, unlabeled_batch_size
    from pipeline.engine.offline import split_batches
    from pipeline.models.pretrained import read_initial_weights

    shards = C.data_paths(cfg.data).shards
    state = make_state(cfg.model, cfg.dmt, cfg.optim, "cpu", seed=0,
                       init=read_initial_weights(cfg.model), precision=cfg.train.precision,
                       channels_last=cfg.train.channels_last)
    def endless(split, n):
        return itertools.cycle(list(split_batches(shards, split, cfg.model.image_size, n)))

    labeled = endless("labeled", cfg.optim.batch_size)
    unlabeled = endless("unlabeled", unlabeled_batch_size(cfg))
    device = lambda b: to_torch(b, "cpu")  # noqa: E731
    history = [run_epoch(state, cfg, stage, labeled, unlabeled, device) for stage in (1, 2)]
    scores = evaluation.score_batches(state, split_batches(shards, "test", 224, 4), device)
    return history, evaluation.summarize_scores(scores, "test", "teacher_mean")


@pytest.mark.parametrize("name", PAPER)
def test_a_paper_config_steps_on_cpu(name, tiny, tmp_path, ray_session):
    from pipeline.prepare import prepare_dataset

    cfg = C.load(f"paper/{name}", _overrides(tiny, name, tmp_path))
    assert (cfg.model.visual, cfg.model.image_size, cfg.model.dim) == ("resnet18", 224, 512)
    assert (cfg.model.audio_a, cfg.model.audio_b) == ("vggish", "soundnet")
    assert cfg.train.precision == "bf16" and cfg.train.channels_last
    summary = prepare_dataset(cfg, say=lambda *_: None)  # Ray Data, the frames+audio layout
    dataset, _, size = name.split("_")
    assert summary["splits"]["labeled"]["rows"] == LABELED[size]
    assert summary["annotations"]["format"] == ("flickr" if dataset == "flickr" else "vggss")
    history, metrics = _steps(cfg)
    assert all(h["train/loss_total"] == h["train/loss_total"] for h in history)  # not NaN
    assert history[1]["train/kept"] + history[1]["train/filtered"] == cfg.optim.batch_size
    assert 0.0 <= metrics["test/ciou"] <= 1.0 and metrics["test/n"] == 3


def test_the_paper_setting_trains_on_ray_train(tiny, tmp_path, ray_session):
    """One of them end to end through `fit` (Ray Train, MLflow, checkpoints)."""
    from pipeline.prepare import prepare_dataset
    from pipeline.train.driver import fit

    cfg = C.load("paper/flickr_144k_4k", _overrides(tiny, "flickr_144k_4k", tmp_path))
    prepare_dataset(cfg, say=lambda *_: None)
    outcome = fit(cfg, say=lambda *_: None)
    run = tracking.get_run(outcome.tracking_uri, outcome.run_id)
    assert run.info.status == "FINISHED" and run.data.params["train.precision"] == "bf16"
    assert 0.0 <= outcome.metrics["test/ciou"] <= 1.0
    assert outcome.metrics["epoch"] == 2 and outcome.metrics["stage"] == 2
