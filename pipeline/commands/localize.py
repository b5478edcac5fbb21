"""Localize the sounding object in a new video with a trained checkpoint: the map of the
checkpoint's reported model (teacher mean for DMT) over the clip's middle frame, its most
confident region as a box, a heatmap overlay PNG and/or a JSON file.

The video is decoded like preprocessing does (same frame, same audio window, the checkpoint's
data settings). --checkpoint takes a state.pt, a folder holding one (a Ray checkpoint or run
folder), or an MLflow artifact URI: runs:/<run id>/model or models:/<name>/<version>.

Examples:
  dmt localize --checkpoint ray_results/demo-0123456789ab clip.mp4 --out clip.png
  dmt localize --checkpoint runs:/0123456789abcdef0123456789abcdef/model clip.mp4 --json clip.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("video", help="an mp4 (or anything ffmpeg reads) with audio")
    parser.add_argument("--checkpoint", required=True,
                        help="state.pt, a folder holding one, or runs:/<id>/model, models:/...")
    parser.add_argument("--out", metavar="PNG", help="heatmap overlay with the box drawn")
    parser.add_argument("--json", metavar="FILE",
                        help="id, map (224x224, 4 decimals), box, model, checkpoint")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store for runs:/ and models:/ URIs (default: "
                             "$MLFLOW_TRACKING_URI or ./mlflow.db)")


def run(args: argparse.Namespace) -> int:
    from pipeline.localize import LocalizeError, localize, overlay_png

    try:
        result = localize(args.video, args.checkpoint, device=args.device,
                          tracking_uri=args.tracking_uri)
    except LocalizeError as exc:
        print(f"dmt localize: {exc}", file=sys.stderr)
        return 1
    x0, y0, x1, y1 = result.box
    print(f"{result.id}: {result.model} map peaks at x={(result.peak[1] + 0.5) / 224:.3f}, "
          f"y={(result.peak[0] + 0.5) / 224:.3f}; box (xmin, ymin, xmax, ymax) = "
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
