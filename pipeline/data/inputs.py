"""Which clips to preprocess: a folder of videos, a manifest (CSV / JSONL / Parquet), or the
field's pre-extracted layout (a folder of frames and a folder of audio).

A folder is searched recursively for files with a video extension (:data:`VIDEO_EXTENSIONS`;
hidden files and folders are skipped). A manifest has a ``path`` column (relative paths are
relative to the manifest's folder) and optionally an ``id`` column; without it a clip's id is
its file stem. The frames+audio layout (:class:`FramesAudio`, what EZ-VSL, SLAVC and SSL-TIE
read) is ``frames/<id>.jpg`` or a per-id folder ``frames/<id>/*.jpg`` (the middle one in name
order is taken) and ``audio/<id>.wav``; an id with only one side is an input whose ``error``
says which side is missing. Inputs are returned sorted by (id, path) so every run plans the
same work.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg",
                              ".flv", ".wmv", ".3gp", ".ts", ".ogv"})
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".json", ".parquet"})
FRAME_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac"})


class InputError(ValueError):
    """The --videos argument cannot be used (names the folder/file and what is wrong)."""


@dataclass(frozen=True)
class ClipInput:
    id: str
    path: str  # absolute: the video, or the frame image of the frames+audio layout
    audio_path: str = ""  # frames+audio layout: the audio file
    frame_index: int = 0  # frames+audio layout: index of the frame in its per-id folder
    frame_count: int = 1  # frames+audio layout: images in that folder (1 for frames/<id>.jpg)
    error: str = ""  # an input that cannot become a row (a side of a pair is missing)


@dataclass(frozen=True)
class FramesAudio:
    """The pre-extracted layout: a folder of frames and a folder of audio, matched by id."""

    frames: Path
    audio: Path


def _visible(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".")


def _frames_by_id(folder: Path) -> dict[str, tuple[Path, int, int]]:
    """id -> (frame image, its index, images of the id): ``<id>.jpg`` or ``<id>/*.jpg``."""
    out = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            images = sorted(p for p in entry.iterdir()
                            if _visible(p) and p.suffix.lower() in FRAME_EXTENSIONS)
            if images:
                out[entry.name] = (images[len(images) // 2], len(images) // 2, len(images))
        elif _visible(entry) and entry.suffix.lower() in FRAME_EXTENSIONS:
            out.setdefault(entry.stem, (entry, 0, 1))
    return out


def _from_pairs(layout: FramesAudio) -> list[ClipInput]:
    for name, folder in (("--frames", layout.frames), ("--audio", layout.audio)):
        if not Path(folder).is_dir():
            raise InputError(f"{name} {folder}: no such folder")
    frames = _frames_by_id(Path(layout.frames))
    audio = {p.stem: p for p in sorted(Path(layout.audio).iterdir())
             if _visible(p) and p.suffix.lower() in AUDIO_EXTENSIONS}
    out = []
    for clip_id in sorted(set(frames) | set(audio)):
        frame, index, count = frames.get(clip_id, (None, 0, 0))
        sound = audio.get(clip_id)
        error = (f"no frame (neither frames/{clip_id}.jpg nor frames/{clip_id}/*.jpg)"
                 if frame is None else f"no audio file (audio/{clip_id}.wav)"
                 if sound is None else "")
        path = frame or sound
        out.append(ClipInput(clip_id, str(Path(path).resolve()),
                             str(sound.resolve()) if sound else "", index, max(count, 1), error))
    return out


def _from_folder(folder: Path) -> list[ClipInput]:
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            out.append(ClipInput(p.stem, str(p.resolve())))
    return out


def _manifest_records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    if suffix in (".jsonl", ".json"):
        text = path.read_text()
        if suffix == ".json" and text.lstrip().startswith("["):
            data = json.loads(text)
            if not isinstance(data, list):
                raise InputError(f"{path}: expected a JSON list of objects")
            return data
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {n} is not JSON: {exc}") from None
        return records
    if suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    raise InputError(f"{path}: not a manifest (expected {', '.join(sorted(MANIFEST_EXTENSIONS))})")


def _from_manifest(path: Path) -> list[ClipInput]:
    records = _manifest_records(path)
    out = []
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not str(rec.get("path") or "").strip():
            raise InputError(f"{path}: record {n} has no 'path': {rec!r:.100}")
        p = Path(str(rec["path"]).strip())
        if not p.is_absolute():
            p = path.parent / p
        clip_id = str(rec.get("id") or "").strip() or p.stem
        out.append(ClipInput(clip_id, str(p.resolve())))
    return out


def list_inputs(videos: str | Path | FramesAudio) -> list[ClipInput]:
    """All clips named by a folder of videos, a manifest, or a frames+audio layout, sorted by
    (id, path)."""
    if isinstance(videos, FramesAudio):
        return _from_pairs(videos)
    videos = Path(videos)
    if videos.is_dir():
        clips = _from_folder(videos)
    elif videos.is_file():
        if videos.suffix.lower() not in MANIFEST_EXTENSIONS:
            raise InputError(f"{videos}: --videos must be a folder of videos or a manifest "
                             f"({', '.join(sorted(MANIFEST_EXTENSIONS))}) with a 'path' column")
        clips = _from_manifest(videos)
    else:
        raise InputError(f"{videos}: no such folder or manifest")
    return sorted(clips, key=lambda c: (c.id, c.path))
