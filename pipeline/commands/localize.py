"""Localize the sounding object in a new video with a trained model: the map of the model's
reported network (teacher mean for DMT) over the clip's middle frame, its most confident region
as a box, a heatmap overlay PNG and/or a JSON file.

The video is decoded like preprocessing does (same frame, same audio window, the checkpoint's
data settings). --model (alias --checkpoint) takes a state.pt, a folder holding one (a Ray
checkpoint or run folder), or an MLflow URI: a registered model (models:/<name>@<alias>,
models:/<name>/<version>), a run's logged model (runs:/<run id>/model) or its checkpoint
artifact (runs:/<run id>/checkpoint).

Examples:
  dmt localize --model models:/dmt@champion clip.mp4 --json clip.json
  dmt localize --model ray_results/demo-0123456789ab clip.mp4 --out clip.png
  dmt localize --model runs:/0123456789abcdef0123456789abcdef/model clip.mp4 --json clip.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("video", help="an mp4 (or anything ffmpeg reads) with audio")
    parser.add_argument("--model", "--checkpoint", dest="model", required=True,
                        help="models:/<name>@<alias>, models:/<name>/<version>, "
                             "runs:/<id>/model, a state.pt or a folder holding one")
    parser.add_argument("--out", metavar="PNG", help="heatmap overlay with the box drawn")
    parser.add_argument("--json", metavar="FILE",
                        help="id, map (224x224, 4 decimals), box, model, checkpoint")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store for runs:/ and models:/ URIs (default: "
                             "$MLFLOW_TRACKING_URI or ./mlflow.db)")


def run(args: argparse.Namespace) -> int:
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline.checkpoint_uri import load_localizer
    from pipeline.localize import LocalizeError, overlay_png

    try:
        result = load_localizer(args.model, device=args.device,
                                tracking_uri=args.tracking_uri).video(args.video)
    except LocalizeError as exc:
        print(f"dmt localize: {exc}", file=sys.stderr)
        return 1
    x0, y0, x1, y1 = result.box
    peak = result.peak_xy
    print(f"{result.id}: {result.model} map peaks at x={peak['x']:.3f}, "
          f"y={peak['y']:.3f}; box (xmin, ymin, xmax, ymax) = "
          f"({x0:.3f}, {y0:.3f}, {x1:.3f}, {y1:.3f}); frame at {result.frame_time:.2f} s")
    for target, write in ((args.out, lambda p: p.write_bytes(overlay_png(result))),
                          (args.json, lambda p: p.write_text(json.dumps(result.to_json())))):
        if target:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
            print(f"wrote {path}")
    if not args.out and not args.json:
        print("(pass --out PNG and/or --json FILE to save the overlay and the map)")
    return 0
