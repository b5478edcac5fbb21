"""CLI subcommands: each module defines ``add_arguments(parser)`` and ``run(args) -> int``.

``dmt`` imports every module here to build its parser, so a module imports at its top only what
is light (argparse, the config, the small utilities); what pulls in torch, Ray or MLflow (2-4 s
of imports) is imported inside ``run``, when the command runs. ``dmt --help`` and a config error
take 0.1 s and never start Ray or MLflow: those function-level imports are the only ones of the
package that are not for an optional dependency.
"""

from __future__ import annotations

# name -> (module under pipeline.commands, one-line help). Order is the order of `dmt --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("config_cmd", "print the resolved config, or every key with its default"),
    "synth": ("synth", "write the synthetic audio-visual benchmark (real mp4 files)"),
    "frame": ("frame", "render a video's annotated frame to PNG (boxes drawn)"),
    "lists": ("lists", "draw a seeded labeled subset of N annotated ids; write the id lists"),
    "preprocess": ("preprocess", "decode videos (or frames + audio) into Parquet shards"),
    "demo": ("demo", "the main job: synth, preprocess, train, evaluate, on embedded defaults"),
    "train": ("train", "train DMT (stage 1 + stage 2) with Ray Train, tracked in MLflow"),
    "evaluate": ("evaluate", "evaluate a checkpoint on preprocessed shards"),
    "tune": ("tune", "sweep DMT's thresholds and EMA decay with Ray Tune"),
    "localize": ("localize", "localize the sounding object in a new video"),
    "submit": ("submit", "submit a job to a Ray cluster and stream its logs"),
    "jobs": ("jobs", "list recent Ray jobs"),
    "bench": ("bench", "benchmarks (quality of DMT against baselines)"),
}
