"""Decode raw videos (a folder or a manifest) into versioned Parquet shards with Ray Data.

One row per clip: the frame (JPEG), the audio window around it (int16 PCM), boxes, split and
source facts (see pipeline/data/schema.py). Clips that cannot be decoded, or whose annotation
is malformed, go to OUT/quarantine.jsonl with the reason; ids named by the id lists or the
annotations without a video are listed under "missing" in OUT/summary.json. Interrupted runs
resume where they stopped; a rerun of a finished one does nothing.

Examples:
  dmt preprocess --config jobs/configs/demo.yaml
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

HELP = "decode videos into Parquet shards with Ray Data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' layout
    add_config_arguments(parser)
    parser.add_argument("--videos", metavar="DIR_OR_MANIFEST",
                        help="folder of videos, or a CSV/JSONL/Parquet manifest with a 'path' "
                             "column (and optional 'id') (data.videos)")
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
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")


def _maybe(path: Path, explicit: bool, what: str) -> Path | None:
    """An explicitly given path must exist; a default that does not exist means 'none'."""
    if path.exists():
        return path
    if explicit:
        raise FileNotFoundError(f"{what} not found: {path}")
    return None


def run(args: argparse.Namespace) -> int:
    from pipeline.data import AnnotationError, InputError, PreprocessError, run_preprocess

    cfg = load_config(args)
    for flag, key in (("videos", "data.videos"), ("out", "data.shards"),
                      ("annotations", "data.annotations"), ("format", "data.format"),
                      ("lists", "data.lists")):
        value = getattr(args, flag)
        if value is not None:
            config_mod.set_key(cfg, key, value)
    paths = config_mod.data_paths(cfg.data)
    try:
        annotations = _maybe(paths.annotations, bool(cfg.data.annotations), "annotations")
        lists = _maybe(paths.lists, bool(cfg.data.lists), "id-list folder")
        if not paths.videos.exists():
            raise FileNotFoundError(f"videos not found: {paths.videos} (set --videos or "
                                    f"data.videos; `dmt synth` writes ROOT/synth/videos)")
    except FileNotFoundError as exc:
        print(f"dmt preprocess: {exc}", file=sys.stderr)
        return 2

    if args.engine == "ray":
        from pipeline.ray_env import ensure_ray

        ensure_ray(num_cpus=args.num_cpus)

    print(f"preprocess: {paths.videos} -> {paths.shards} (format {cfg.data.format}, "
          f"annotations {annotations or '-'}, lists {lists or '-'}, engine {args.engine})",
          file=sys.stderr)
    try:
        summary = run_preprocess(
            paths.videos, paths.shards, annotations=annotations, fmt=cfg.data.format,
            lists=lists, data=cfg.data, engine=args.engine, force=args.force,
            progress=args.progress, config=config_mod.to_dict(cfg))
    except (InputError, AnnotationError, PreprocessError) as exc:
        print(f"dmt preprocess: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    state = "up to date" if summary.get("up_to_date") else "done"
    print(f"{state}: {summary['inputs']} inputs -> {summary['rows']} rows, "
          f"{summary['quarantined']} quarantined, {summary['missing_count']} listed ids "
          f"without a video; {len(summary['shards'])} shards, "
          f"{summary['bytes_per_row'] / 1024:.1f} KiB per row -> {paths.shards}")
    if summary["quarantined"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["quarantine_reasons"].items())
        print(f"  quarantined ({reasons}): see {paths.shards / 'quarantine.jsonl'}")
    for split, counts in summary["splits"].items():
        print(f"  {split:10s} {counts['rows']:7d} rows  {counts['quarantined']:5d} quarantined")
    return 0
