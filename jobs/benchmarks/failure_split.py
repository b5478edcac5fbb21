"""Where a quality-benchmark row loses CIoU (not a test): finding the object, or the map's shape.

For each checkpoint of a ``dmt bench quality`` output folder, the reported map of every test
clip is scored as the benchmark scores it (median rule), and the failures are split into
**missed** (the map's peak lies outside the sounder's box: the wrong object) and **pointed but
failed** (the peak is in the box, but the map's top half does not hold enough of it: the map's
shape, or a second object sharing the top half). The same scores are then split by whether the
clip's silent distractor wears the sounder's colour (``data.synth.look_share``), read from the
synthesis' ``meta.json``. Used to choose the calibration's knobs (docs/results.md#calibration).

    .venv/bin/python jobs/benchmarks/failure_split.py --out bench-out/calibration
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline import config as config_mod  # noqa: E402
from pipeline import metrics  # noqa: E402
from pipeline.bench.memory import load_clips, ordered_batches  # noqa: E402
from pipeline.dmt.step import predict_maps  # noqa: E402
from pipeline.engine.batches import to_torch  # noqa: E402
from pipeline.engine.evaluation import reported_role  # noqa: E402
from pipeline.engine.offline import load_state  # noqa: E402


def shares_colour(clip: dict) -> bool:
    """Whether a silent object of ``clip`` (a ``meta.json`` entry) wears the sounder's colour."""
    sounders = [o for o in clip["objects"] if o["sounding"]]
    return bool(sounders) and any(o["look"]["colour"] == sounders[0]["look"]["colour"]
                                  for o in clip["objects"] if not o["sounding"])


def score_checkpoint(path: Path, batches: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(passed (N,) bool under the median rule, peak in box (N,) bool) over ``batches``."""
    state, cfg, _ = load_state(path)
    state.precision = cfg.train.precision  # scored under the row's autocast, as the bench scored it
    role = reported_role(state.method, cfg.dmt.eval_model)
    passed, pointed = [], []
    with torch.no_grad():
        for raw in batches:
            maps = predict_maps(state, to_torch(raw, "cpu"), role).float().numpy()
            for pred, gt in zip(maps, raw["gt"], strict=True):
                gt = np.asarray(gt, dtype=np.float32)
                passed.append(metrics.ciou(pred, gt, "median") >= 0.5)
                pointed.append(gt.flat[int(np.argmax(pred))] > 0)
    return np.array(passed), np.array(pointed)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="a dmt bench quality output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    torch.set_num_threads(1)
    cfg = config_mod.load(out / "config.yaml")
    paths = config_mod.data_paths(cfg.data)
    clips = load_clips(paths.shards, cfg.model.image_size)
    batches = list(ordered_batches(clips, clips.test, 50))
    meta = {c["file"]: c for c in json.loads((paths.synth / "meta.json").read_text())["clips"]}
    share = np.array([shares_colour(meta[str(clips.ids[i])]) for i in clips.test])
    print(f"{out}: {len(share)} test clips, {share.mean():.1%} with a distractor of the "
          f"sounder's colour")
    print("| checkpoint | CIoU | peak in box | pointed, failed | missed | CIoU, shared colour "
          "| CIoU, other |")
    print("| --- | --: | --: | --: | --: | --: | --: |")
    for ckpt in sorted((out / "checkpoints").glob("*/state.pt")):
        ok, pt = score_checkpoint(ckpt, batches)
        print(f"| {ckpt.parent.name} | {ok.mean():.3f} | {pt.mean():.3f} | {(pt & ~ok).mean():.3f}"
              f" | {(~pt).mean():.3f} | {ok[share].mean():.3f} | {ok[~share].mean():.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
