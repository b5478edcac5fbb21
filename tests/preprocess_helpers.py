"""Shared by the preprocessing tests: a folder of awkward clips with the expected outcome per
clip, the small data config and plan arguments they are preprocessed with, and row sorting for
comparing shards. The session fixtures built on them (``clips``, ``direct_rows``):
tests/conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from pipeline.config import DataConfig

try:
    from tests.media import silence, sine, truncate, write_clip, write_text
except ImportError:  # pytest run without the repo root on sys.path
    from media import silence, sine, truncate, write_clip, write_text

# id -> None (a correct row) or the start of the quarantine reason
EXPECTED = {
    "mono16k": None,
    "stereo44k": None,            # stereo 44.1 kHz AAC -> mono 16 kHz
    "aac48k": None,               # 48 kHz
    "portrait": None,             # 180x320 video
    "short_audio": None,          # 0.5 s of audio in a 2 s video -> tiled
    "mkv_clip": None,
    "webm_clip": None,
    "avi_clip": None,
    "mov_clip": None,
    "long6s": None,
    "bad_box": "bad annotation in annotations.json",
    "no_audio": "no audio stream",
    "silent": "silent audio",
    "cut_mp4": "unreadable container",    # mp4 cut in half: the moov atom is gone
    "cut_mkv": "truncated file",          # mkv cut in half: decodes, but only 0.9 of 2 s
    "empty": "empty file (0 bytes)",
    "text": "unreadable container",       # a text file named .mp4
}


def make_clips(root: Path) -> Path:
    """A folder of real, awkward media files + VGG-SS style annotations + id lists."""
    v = root / "videos"
    write_clip(v / "mono16k.mp4", seconds=3.0, audio=sine(440, 3.0, 16000))
    write_clip(v / "stereo44k.mp4", seconds=3.0, sample_rate=44100,
               audio=sine(1000, 3.0, 44100, channels=2))
    write_clip(v / "aac48k.mp4", seconds=3.0, sample_rate=48000, audio=sine(440, 3.0, 48000))
    write_clip(v / "portrait.mp4", seconds=2.0, width=180, height=320,
               audio=sine(440, 2.0, 16000))
    write_clip(v / "short_audio.mp4", seconds=2.0, audio=sine(300, 0.5, 16000))
    write_clip(v / "mkv_clip.mkv", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "webm_clip.webm", seconds=2.0, sample_rate=48000, audio=sine(440, 2.0, 48000))
    write_clip(v / "avi_clip.avi", seconds=2.0, sample_rate=44100, audio=sine(440, 2.0, 44100))
    write_clip(v / "mov_clip.mov", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "long6s.mp4", seconds=6.0, audio=sine(500, 6.0, 16000))
    write_clip(v / "bad_box.mp4", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "no_audio.mp4", seconds=2.0, audio=None)
    write_clip(v / "silent.mp4", seconds=2.0, audio=silence(2.0, 16000))
    truncate(write_clip(root / "full.mp4", seconds=3.0, audio=sine(440, 3.0, 16000)),
             v / "cut_mp4.mp4")
    truncate(write_clip(root / "full.mkv", seconds=2.0, audio=sine(440, 2.0, 16000)),
             v / "cut_mkv.mkv")
    (v / "empty.mp4").write_bytes(b"")
    write_text(v / "text.mp4")
    (v / "notes.txt").write_text("not a video extension: not an input")

    ann = [{"file": i, "class": "tone", "bbox": [[0.1, 0.2, 0.5, 0.6]]}
           for i in ("mono16k", "portrait", "mkv_clip", "long6s")]
    ann.append({"file": "stereo44k", "class": "beep", "bbox": [[0.2, -0.1, 1.3, 0.9],
                                                               [0.0, 0.0, 0.1, 0.1]]})
    ann.append({"file": "bad_box", "class": "tone", "bbox": [[0.1, float("nan"), 0.5, 0.6]]})
    ann.append({"file": "ghost_annotated", "class": "tone", "bbox": [[0.1, 0.1, 0.2, 0.2]]})
    (root / "annotations.json").write_text(json.dumps(ann))
    lists = root / "lists"
    lists.mkdir()
    (lists / "labeled.txt").write_text("mono16k\nstereo44k\nghost_labeled\n")
    (lists / "test.txt").write_text("portrait\nmkv_clip\nno_audio\nghost_test\n")
    (lists / "unlabeled.txt").write_text(
        "\n".join(i for i in EXPECTED if i not in ("mono16k", "stereo44k", "portrait",
                                                    "mkv_clip", "no_audio")) + "\n")
    return root


SMALL = DataConfig(rows_per_file=4, decode_batch_size=2, decode_concurrency=2)


def _plan_args(clips: Path) -> dict:
    """build_plan / run_preprocess arguments for a ``make_clips`` folder."""
    return {"annotations": clips / "annotations.json", "fmt": "synth", "lists": clips / "lists"}


def _sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])
