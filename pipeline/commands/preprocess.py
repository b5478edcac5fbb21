"""Decode raw videos (a folder or a manifest) into versioned Parquet shards with Ray Data.

One row per clip: the frame (JPEG), the audio window around it (int16 PCM), boxes, split and
source facts (see pipeline/data/schema.py). Clips that cannot be decoded, or whose annotation
is malformed, go to OUT/quarantine.jsonl with the reason; ids named by the id lists or the
annotations without a video are listed under "missing" in OUT/summary.json. Interrupted runs
resume where they stopped; a rerun of a finished one does nothing.

Annotations and id lists come only from --annotations / --lists (or the config's data.*), or
from a `dmt synth` input folder's own files; the first line printed says where they came from.
A labeled or test id without a usable box is moved out of its split (data.labeled_without_box,
data.test_without_box) and listed.

Examples:
  dmt preprocess --config jobs/configs/demo.yaml
  dmt preprocess --frames flickr/frames --audio flickr/audio --annotations flickr/Annotations \\
      --format flickr --lists flickr/lists --out data/flickr/shards
  dmt preprocess --videos raw/vggss/videos --annotations metadata/vggss.json \\
      --format vggss --lists metadata/ --out data/vggss/shards
  dmt preprocess --videos clips.csv --out data/x/shards --engine local
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline import config as config_mod
from pipeline.commands.common import add_config_arguments, load_config
from pipeline.data import AnnotationError, InputError, PreprocessError, run_preprocess
from pipeline.data.inputs import FramesAudio
from pipeline.data.sources import resolve_sources
from pipeline.errors import DiskFullError
from pipeline.ray_env import check_shared, ensure_ray

HELP = "decode videos into Parquet shards with Ray Data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' layout
    add_config_arguments(parser)
    parser.add_argument("--videos", metavar="DIR_OR_MANIFEST",
                        help="folder of videos, or a CSV/JSONL/Parquet manifest with a 'path' "
                             "column (and optional 'id') (data.videos)")
    parser.add_argument("--frames", metavar="DIR",
                        help="pre-extracted layout: frames/<id>.jpg or frames/<id>/*.jpg "
                             "(data.frames; with --audio)")
    parser.add_argument("--audio", metavar="DIR",
                        help="pre-extracted layout: audio/<id>.wav, any rate and channels "
                             "(data.audio; with --frames)")
    parser.add_argument("--out", metavar="SHARDS", help="output shards folder (data.shards)")
    parser.add_argument("--annotations", metavar="FILE_OR_DIR",
                        help="VGG-SS/synth JSON or Flickr XML folder (data.annotations)")
    parser.add_argument("--format", choices=("vggss", "flickr", "synth"),
                        help="annotation format (data.format)")
    parser.add_argument("--lists", metavar="DIR",
                        help="folder of id lists: labeled/unlabeled/test.txt, flickr_test.csv, "
                             "flickr_sup_train.txt, ... (data.lists)")
    parser.add_argument("--engine", choices=("ray", "local"), default="ray",
                        help="ray: Ray Data tasks (default); local: the same code in-process")
    parser.add_argument("--force", action="store_true",
                        help="redo everything even if OUT is up to date or a partial run exists")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of a new local Ray instance (ignored with RAY_ADDRESS or a "
                             "running Ray)")
    parser.add_argument("--progress", action="store_true", help="show Ray Data progress bars")
    parser.add_argument("--dashboard", action="store_true",
                        help="start a new local Ray instance with its dashboard (off: "
                             "preprocessing needs none, and starts faster without)")
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store of the preprocessing run (default: the config's "
                             "tracking.uri, $MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the preprocessing as an MLflow run (a training run on "
                             "these shards then logs one from their summary.json)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    for flag, key in (("videos", "data.videos"), ("frames", "data.frames"),
                      ("audio", "data.audio"), ("out", "data.shards"),
                      ("annotations", "data.annotations"), ("format", "data.format"),
                      ("lists", "data.lists")):
        value = getattr(args, flag)
        if value is not None:
            config_mod.set_key(cfg, key, value)
    shards = config_mod.data_paths(cfg.data).shards
    try:
        sources = resolve_sources(cfg.data)
        if not isinstance(sources.inputs, FramesAudio) and not sources.inputs.exists():
            raise FileNotFoundError(f"videos not found: {sources.inputs} (set --videos or "
                                    f"data.videos, or --frames and --audio; `dmt synth` writes "
                                    f"ROOT/synth/videos)")
    except (FileNotFoundError, InputError) as exc:
        print(f"dmt preprocess: {exc}", file=sys.stderr)
        return 2
    if args.engine == "ray":
        ensure_ray(num_cpus=args.num_cpus, dashboard=args.dashboard)
        check_shared({"--out": shards.parent})  # Ray Data tasks on any node write there
    print(f"preprocess -> {shards} (format {cfg.data.format}, engine {args.engine}): "
          f"{sources.describe()}", file=sys.stderr)
    try:
        summary = run_preprocess(
            sources.inputs, shards, annotations=sources.annotations, fmt=cfg.data.format,
            lists=sources.lists, data=cfg.data, engine=args.engine, force=args.force,
            progress=args.progress, config=config_mod.to_dict(cfg))
    except (InputError, AnnotationError, PreprocessError, DiskFullError, ValueError) as exc:
        print(f"dmt preprocess: {exc}", file=sys.stderr)
        return 1
    run_id = None if args.no_log else _log_run(args.tracking_uri or cfg.tracking.uri, shards)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print_summary(summary, shards)
    if run_id:
        print(f"MLflow: preprocessing run {run_id}")
    return 0


def _log_run(tracking_uri: str, shards: Path) -> str:
    """The preprocessing run of these shards (an existing one for the same summary, after a
    rerun that found them up to date): params, counts, the raw inputs, summary and quarantine."""
    from pipeline import tracking  # heavy (MLflow): see pipeline/commands/__init__
    from pipeline.data.reader import load_quarantine, load_summary

    uri = tracking.resolve_tracking_uri(tracking_uri)
    summary = load_summary(shards)  # as written: its digest is what training runs record
    return tracking.preprocess_run_of(uri, summary) or tracking.log_preprocess(
        uri, str(shards), summary, load_quarantine(shards))


def print_summary(summary: dict, shards: Path) -> None:
    """The few lines a user reads after a run: counts, quarantine, ids without a box."""
    state = "up to date" if summary.get("up_to_date") else "done"
    print(f"{state}: {summary['inputs']} inputs -> {summary['rows']} rows, "
          f"{summary['quarantined']} quarantined, {summary['missing_count']} listed ids "
          f"without a clip; {len(summary['shards'])} shards, "
          f"{summary['bytes_per_row'] / 1024:.1f} KiB per row -> {shards}")
    if summary["quarantined"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["quarantine_reasons"].items())
        print(f"  quarantined ({reasons}): see {shards / 'quarantine.jsonl'}")
    for split, info in (summary.get("without_box") or {}).items():
        shown = ", ".join(info["ids"][:5]) + (", ..." if info["count"] > 5 else "")
        print(f"  {info['count']} {split} ids without a usable box -> {info['treated_as']} "
              f"({shown}; all in summary.json)")
    for split, counts in summary["splits"].items():
        print(f"  {split:10s} {counts['rows']:7d} rows  {counts['quarantined']:5d} quarantined")
