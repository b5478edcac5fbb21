"""Paths of a config: the dataset's folders, Ray Train's storage, and making them absolute on the
driver (Tune trials and Train workers change directory).

``data.root``, ``data.shards`` and ``train.storage`` may be object-storage URIs (``s3://bucket/
prefix``, :mod:`pipeline.locations`): they pass through untouched and come back as
``ObjectPath``s; every other path is local."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import locations
from pipeline.config.schema import Config, ConfigError, DataConfig
from pipeline.config.tree import from_dict, to_dict


@dataclass(frozen=True)
class DataPaths:
    """Absolute paths derived from ``DataConfig`` (workers change directory: resolve early)."""

    root: locations.Location
    synth: locations.Location
    videos: locations.Location
    annotations: Path
    lists: Path
    shards: locations.Location


PATH_KEYS = ("data.root", "data.videos", "data.frames", "data.audio", "data.annotations",
             "data.lists", "data.shards",
             "data.val_list", "model.visual_weights", "model.audio_a_weights",
             "model.audio_b_weights", "train.storage")
URI_KEYS = ("data.root", "data.shards", "train.storage")  # may name object storage (s3://...)


def resolve_paths(cfg: Config, base: str | os.PathLike | None = None) -> Config:
    """A copy of ``cfg`` whose relative paths are absolute against ``base`` (default: the
    current directory). Done on the driver: Tune trials and Train workers change directory."""
    out = from_dict(to_dict(cfg))
    base_dir = Path(base or os.getcwd())
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(out, section), name)
        if locations.is_uri(value):
            if key not in URI_KEYS:
                raise ConfigError(f"{key}: {value!r}: a local path is needed here (object "
                                  f"storage URIs: {', '.join(URI_KEYS)})")
            _location(value, key)  # a URI pyarrow cannot open is refused here, by key
        elif value and not Path(value).is_absolute():
            setattr(getattr(out, section), name, str((base_dir / value).resolve()))
    if not out.train.storage:
        out.train.storage = str((base_dir / "ray_results").resolve())
    return out


def _location(value: str, key: str) -> locations.ObjectPath:
    try:
        return locations.location(value, key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def storage_dir(cfg: Config) -> locations.Location:
    """Ray Train's storage folder (``train.storage``, default ./ray_results), absolute, or its
    object-storage location."""
    if locations.is_uri(cfg.train.storage):
        return _location(cfg.train.storage, "train.storage")
    return Path(cfg.train.storage or "ray_results").resolve()


def data_paths(data: DataConfig, base: str | os.PathLike | None = None) -> DataPaths:
    base_dir = Path(base or os.getcwd())
    if locations.is_uri(data.root):
        root = _location(data.root, "data.root")
    else:
        root = (base_dir / data.root).resolve()
    synth = root / "synth"

    def pick(value: str, default: locations.Location, key: str) -> locations.Location:
        if locations.is_uri(value):
            if key != "data.shards":
                raise ConfigError(f"{key}: {value!r}: the inputs are read from local paths; "
                                  f"object storage holds the shards (data.shards)")
            return _location(value, key)
        return (base_dir / value).resolve() if value else default

    return DataPaths(
        root=root,
        synth=synth,
        videos=pick(data.videos, synth / "videos", "data.videos"),
        annotations=pick(data.annotations, synth / "annotations.json", "data.annotations"),
        lists=pick(data.lists, synth, "data.lists"),
        shards=pick(data.shards, root / "shards", "data.shards"),
    )
