"""Write the synthetic audio-visual benchmark: real mp4 clips, VGG-SS / Flickr annotations, lists.

The flags override the config's ``data.synth`` section (validated like ``--set``); the output
folder defaults to ROOT/synth of the config's ``data.root``, where ``dmt preprocess`` and
``dmt train`` look for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import config as config_mod
from pipeline.commands.common import add_config_arguments, load_config

HELP = "write the synthetic audio-visual benchmark (real mp4 files)"

# flag -> data.synth key
FLAGS = {"clips": "clips", "labeled": "labeled", "test": "test", "seed": "seed",
         "workers": "workers"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", help="output folder (default: DATA_ROOT/synth of the config)")
    parser.add_argument("--clips", type=int, help="total clips (data.synth.clips)")
    parser.add_argument("--labeled", type=int, help="labeled clips (data.synth.labeled)")
    parser.add_argument("--test", type=int, help="test clips (data.synth.test)")
    parser.add_argument("--seed", type=int, help="benchmark seed (data.synth.seed)")
    parser.add_argument("--workers", type=int, help="writer processes, 0: all CPUs "
                        "(data.synth.workers)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            config_mod.set_key(cfg, f"data.synth.{key}", value)
    # Re-check the relations (labeled + test <= clips, ...) now that the flags are in.
    cfg = config_mod.from_dict(config_mod.to_dict(cfg))

    from pipeline.synth import generate  # PyAV and Pillow: imported when the command runs

    out = Path(args.out).resolve() if args.out else config_mod.data_paths(cfg.data).synth
    s = cfg.data.synth
    print(f"dmt synth: {s.clips} clips of {s.duration:g} s ({s.frame_size}px, {s.fps} fps, "
          f"{s.categories} categories, seed {s.seed}) -> {out}")
    summary = generate(s, out, progress=not args.quiet)
    print(f"videos:      {summary['videos']}  ({summary['clips']} mp4, "
          f"{summary['frames_per_clip']} frames each)")
    print(f"annotations: {summary['annotations']}  (VGG-SS layout, every clip)")
    print(f"flickr xml:  {summary['flickr_xml']}  (test clips)")
    print(f"lists:       {out}/{{labeled,unlabeled,test}}.txt  labeled {summary['labeled']}, "
          f"unlabeled {summary['unlabeled']}, test {summary['test']}")
    print(f"meta:        {summary['meta']}")
    print(f"time:        {summary['seconds']:.1f} s with {summary['workers']} process(es); "
          f"{summary['seconds_per_clip']:.2f} s ({summary['cpu_seconds_per_clip']:.2f} s CPU) "
          "per clip")
    if summary["baselines"]:
        rows = ", ".join(f"{name} {row['ciou']:.2f}" for name, row in summary["baselines"].items())
        print(f"test-split CIoU of trivial maps (median rule): {rows}")
    return 0
