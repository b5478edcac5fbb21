"""Render one frame of a video to PNG with its annotated boxes drawn, to look at a scene.

The frame is decoded as preprocessing decodes it (``pipeline.data.decode.displayed_frame``: the
picture a player shows, turned as the display matrix says): by default the middle frame, which
is the frame the annotations describe. Boxes come from a VGG-SS
style JSON (``annotations.json`` of ``dmt synth``); by default the one next to the video's folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from pipeline.data.decode import ClipError, displayed_frame

HELP = "render a video's annotated frame to PNG (boxes drawn)"
BOX_COLOUR = (0, 255, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="a video file (any container ffmpeg reads)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--annotations", help="VGG-SS JSON with this clip's boxes "
                        "(default: ../annotations.json next to the video's folder, if present)")
    parser.add_argument("--time", type=float, default=None,
                        help="seconds into the clip (default: the middle frame, the annotated one)")


def _boxes(annotations: Path, clip: str) -> tuple[str, list[list[float]]] | None:
    """(class, boxes) of ``clip`` in a VGG-SS JSON, or None when the clip is not in it."""
    for entry in json.loads(annotations.read_text()):
        if entry.get("file") == clip:
            return entry.get("class", ""), entry.get("bbox", [])
    return None


def run(args: argparse.Namespace) -> int:
    video = Path(args.video)
    if not video.is_file():
        print(f"dmt frame: no such video: {video}", file=sys.stderr)
        return 2
    try:
        frame = displayed_frame(video, -1.0 if args.time is None else args.time)
    except ClipError as exc:
        print(f"dmt frame: {video}: {exc.reason}", file=sys.stderr)
        return 2
    image = Image.fromarray(frame.image)
    index, count = frame.index, frame.num_frames

    annotations = Path(args.annotations) if args.annotations else \
        video.resolve().parent.parent / "annotations.json"
    found = _boxes(annotations, video.stem) if annotations.is_file() else None
    if found is not None:
        label, boxes = found
        draw = ImageDraw.Draw(image)
        w, h = image.size
        for x0, y0, x1, y1 in boxes:
            # Pixel (x1, y1) is the first one outside the box: draw the last one inside.
            draw.rectangle((x0 * w, y0 * h, x1 * w - 1, y1 * h - 1), outline=BOX_COLOUR, width=2)
        draw.text((4, 2), label, fill=BOX_COLOUR)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)
    where = "middle frame" if args.time is None else f"t={args.time:g}s"
    note = (f"{len(found[1])} box(es) of {found[0]!r} from {annotations}" if found is not None
            else "no annotation found")
    print(f"{args.out}: frame {index}/{count} ({where}) of {video.name}; {note}")
    if found is not None and index != count // 2:
        print("note: the boxes describe the middle frame; objects may have drifted since")
    return 0
