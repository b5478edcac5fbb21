"""Paths of a config: the dataset's folders, Ray Train's storage, and making them absolute on the
driver (Tune trials and Train workers change directory)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.schema import Config, DataConfig


@dataclass(frozen=True)
class DataPaths:
    """Absolute paths derived from ``DataConfig`` (workers change directory: resolve early)."""

    root: Path
    synth: Path
    videos: Path
    annotations: Path
    lists: Path
    shards: Path


PATH_KEYS = ("data.root", "data.videos", "data.frames", "data.audio", "data.annotations",
             "data.lists", "data.shards",
             "data.val_list", "model.visual_weights", "model.audio_a_weights",
             "model.audio_b_weights", "train.storage")


def resolve_paths(cfg: Config, base: str | os.PathLike | None = None) -> Config:
    """A copy of ``cfg`` whose relative paths are absolute against ``base`` (default: the
    current directory). Done on the driver: Tune trials and Train workers change directory."""
    from pipeline.config import from_dict, to_dict

    out = from_dict(to_dict(cfg))
    base_dir = Path(base or os.getcwd())
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(out, section), name)
        if value and not Path(value).is_absolute():
            setattr(getattr(out, section), name, str((base_dir / value).resolve()))
    if not out.train.storage:
        out.train.storage = str((base_dir / "ray_results").resolve())
    return out


def storage_dir(cfg: Config) -> Path:
    """Ray Train's storage folder (``train.storage``, default ./ray_results), absolute."""
    return Path(cfg.train.storage or "ray_results").resolve()


def data_paths(data: DataConfig, base: str | os.PathLike | None = None) -> DataPaths:
    base_dir = Path(base or os.getcwd())
    root = (base_dir / data.root).resolve()
    synth = root / "synth"

    def pick(value: str, default: Path) -> Path:
        return (base_dir / value).resolve() if value else default

    return DataPaths(
        root=root,
        synth=synth,
        videos=pick(data.videos, synth / "videos"),
        annotations=pick(data.annotations, synth / "annotations.json"),
        lists=pick(data.lists, synth),
        shards=pick(data.shards, root / "shards"),
    )
