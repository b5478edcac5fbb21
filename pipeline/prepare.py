"""Preparing a config's dataset: the explicit step before training, tuning or benchmarking.

``prepare_dataset(cfg)`` returns the shards' summary. When the shards folder is missing it
writes the synthetic benchmark (synthetic configs only, when its videos are missing too) and
preprocesses the videos with Ray Data; a real dataset whose videos are missing is an error that
says so. ``dmt demo``, ``dmt train``, ``dmt tune`` and ``dmt bench`` call it before they start;
training itself never writes data.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from pipeline import config as config_mod
from pipeline import locations
from pipeline.data import reader
from pipeline.data.inputs import FramesAudio
from pipeline.data.preprocess import run_preprocess
from pipeline.data.sources import SYNTH_MARKER, resolve_sources
from pipeline.data.verify import verify_shards
from pipeline.methods import method_of
from pipeline.ray_env import check_shared, ensure_ray
from pipeline.synth import generate


def prepare_dataset(cfg: config_mod.Config, say=print) -> dict[str, Any]:
    """Shards ready for ``cfg``: the existing ones, else synthesised and/or preprocessed now."""
    paths = config_mod.data_paths(cfg.data)
    synthetic = not (cfg.data.videos or cfg.data.frames)
    if synthetic and cfg.data.format == "synth" and not locations.is_remote(paths.synth):
        check_synth_matches(cfg.data.synth, paths.synth)
    if reader.is_shards_folder(paths.shards):
        return verify_shards(paths.shards, required_splits(cfg))

    # Ray Data tasks on any node write the shards: on a multi-node cluster their folder must be
    # one folder for every node (checked before anything is written)
    ensure_ray()
    check_shared({"data.shards": paths.shards.parent})
    if synthetic and locations.is_remote(paths.videos):
        raise config_mod.ConfigError(
            f"data.root={cfg.data.root}: the synthetic clips are written to and decoded from a "
            f"local folder; set data.root to one, and data.shards to the object-storage URI")
    if synthetic and not paths.videos.exists():
        if cfg.data.format != "synth":
            raise FileNotFoundError(f"data.videos: {paths.videos} does not exist (set data.videos"
                                    f", or data.frames and data.audio)")

        say(f"[data] {paths.videos} missing: synthesising {cfg.data.synth.clips} clips "
            f"into {paths.synth}")
        generate(cfg.data.synth, paths.synth, progress=True)
    sources = resolve_sources(cfg.data)
    if not isinstance(sources.inputs, FramesAudio) and not sources.inputs.exists():
        raise FileNotFoundError(f"data.videos: {sources.inputs} does not exist")

    say(f"[data] {paths.shards} missing: preprocessing with Ray Data; {sources.describe()}")
    t0 = time.perf_counter()
    run_preprocess(sources.inputs, paths.shards, annotations=sources.annotations,
                   fmt=cfg.data.format, lists=sources.lists, data=cfg.data,
                   progress=True, config=config_mod.to_dict(cfg))
    summary = verify_shards(paths.shards, required_splits(cfg))
    splits = ", ".join(f"{n} {c.get('rows', 0)}" for n, c in (summary.get("splits") or {}).items())
    say(f"[data] {summary.get('rows')} clips in {paths.shards} ({splits}), "
        f"{summary.get('quarantined', 0)} quarantined, {time.perf_counter() - t0:.0f} s")
    return summary


# settings that do not change what `dmt synth` writes
_SYNTH_ANY = frozenset({"workers"})


def check_synth_matches(synth_cfg: config_mod.SynthConfig, folder) -> None:
    """ConfigError when ``folder`` holds scenes synthesised with other ``data.synth`` settings:
    its shards would silently train the config on the old scenes (a benchmark whose knobs
    changed, reusing its ``data.root``). A folder without ``meta.json`` is not checked."""
    meta = folder / SYNTH_MARKER
    if not meta.is_file():
        return
    written = json.loads(meta.read_text()).get("config", {})
    wanted = asdict(synth_cfg)
    differ = [f"{k}={written.get(k)!r} (config: {v!r})" for k, v in sorted(wanted.items())
              if k not in _SYNTH_ANY and written.get(k) != v]
    if differ:
        raise config_mod.ConfigError(
            f"data.root: {folder.parent} holds scenes synthesised with other data.synth "
            f"settings: {', '.join(differ)}; delete that folder to synthesise them again, or "
            f"set data.root to a new folder")


def required_splits(cfg: config_mod.Config) -> tuple[str, ...]:
    """The splits a run of ``cfg`` reads, each of which must hold a row: labeled (methods
    trained on boxes), unlabeled (methods with a stage 2 on it), test (the final evaluation)."""
    method = method_of(cfg.dmt.method)
    return (("labeled",) if method.reads_boxes else ()) + (
        ("unlabeled",) if method.reads_unlabeled else ()) + ("test",)


def require_shards(cfg: config_mod.Config) -> dict[str, Any]:
    """The summary of ``cfg``'s shards, or FileNotFoundError saying how to make them (they
    were checked by ``prepare_dataset``, once per command, not once per sweep trial)."""
    shards = config_mod.data_paths(cfg.data).shards
    if not reader.is_shards_folder(shards):
        raise FileNotFoundError(f"{shards}: no preprocessed shards; run `dmt preprocess` (or "
                                f"`dmt train`, which prepares synthetic data) first")
    return reader.load_summary(shards)
