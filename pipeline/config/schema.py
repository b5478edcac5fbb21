"""The config tree's sections: one dataclass per section, each leaf with its default, limits
and help text (``_f``). Loading, dotted-key overrides and validation live in ``pipeline.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline import methods as _methods


class ConfigError(ValueError):
    """A config value, key or file that cannot be used; the message names the key."""


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, help: str = "") -> Any:
    """A dataclass field with validation metadata (range and/or allowed values)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "help": help}
    return field(default=default, metadata=meta)


AUDIO_BACKBONES = ("small", "small_wave", "resnet18", "vggish", "vggish_bn", "soundnet")
VISUAL_BACKBONES = ("small", "resnet18")
SCHEDULES = ("constant", "cosine")  # optim.schedule (pipeline.engine.schedule)
METHODS = tuple(_methods.METHODS)
EVAL_MODELS = _methods.ROLES


@dataclass
class SynthConfig:
    """The synthetic benchmark written by ``dmt synth`` (real mp4 files)."""

    clips: int = _f(400, lo=1, help="total clips (labeled + unlabeled + test)")
    labeled: int = _f(16, lo=0, help="clips whose boxes training may use")
    test: int = _f(100, lo=0, help="held-out test clips")
    seed: int = _f(0, lo=0)
    version: int = _f(1, choices=(1, 2), help="1: one look and one tone per category (the "
                      "demo); 2: colour, texture, pose, pitch, timbre vary within a category")
    categories: int = _f(10, lo=2, hi=24, help="object categories (version 1: at most 12)")
    frame_size: int = _f(224, lo=32, help="square frame side in pixels (even)")
    fps: int = _f(25, lo=1)
    duration: float = _f(3.2, lo=0.5, help="seconds per clip")
    sample_rate: int = _f(16000, lo=8000)
    distractors_min: int = _f(1, lo=0, help="silent objects per scene, at least")
    distractors_max: int = _f(2, lo=0)
    area_min: float = _f(0.2, lo=0.01, hi=1.0, help="sounding box area, fraction of frame")
    area_max: float = _f(0.45, lo=0.01, hi=1.0)
    noise_level: float = _f(0.3, lo=0.0, hi=10.0, help="background noise RMS / sound RMS")
    motion: float = _f(0.03, lo=0.0, hi=1.0, help="object drift, fraction of frame per second")
    two_sounding: float = _f(0.0, lo=0.0, hi=1.0, help="probability a scene has two sounders")
    offscreen: float = _f(0.0, lo=0.0, hi=1.0, help="version 2: fraction of unlabeled clips "
                          "heard from off-screen (no object of the sound's category shown)")
    looks: int = _f(3, lo=1, hi=3, help="version 2: looks (colour + texture) per category")
    hue_spread: float = _f(8.0, lo=0.0, hi=30.0, help="version 2: degrees an object's hue "
                           "moves from its look's colour")
    pitch_spread: float = _f(0.75, lo=0.0, hi=1.25, help="version 2: semitones a clip's pitch "
                             "moves within its category's band (bands are 2.5 apart)")
    look_share: float = _f(0.3, lo=0.0, hi=1.0, help="version 2: probability a distractor "
                           "wears the sounder's colour")
    rotation: float = _f(30.0, lo=0.0, hi=180.0, help="version 2: largest rotation, "
                         "degrees (180: any pose)")
    overlap: float = _f(0.35, lo=0.0, hi=0.9, help="version 2: fraction of an object's box "
                        "that may lie under the boxes placed before it (drawn in random order)")
    workers: int = _f(0, lo=0, help="parallel writer processes (0: all CPUs)")


@dataclass
class DataConfig:
    """Where the raw clips and the preprocessed shards live, and how clips are decoded."""

    root: str = _f("data/demo", help="folder of this dataset (synth/, shards/ below it)")
    videos: str = _f("", help="folder or manifest of videos (default: ROOT/synth/videos)")
    frames: str = _f("", help="pre-extracted layout: folder of <id>.jpg or <id>/*.jpg frames")
    audio: str = _f("", help="pre-extracted layout: folder of <id>.wav (any rate, channels)")
    annotations: str = _f("", help="VGG-SS JSON, Flickr XML folder or synth file (default: "
                          "none, or a dmt synth input folder's own)")
    format: str = _f("synth", choices=("synth", "vggss", "flickr"))
    lists: str = _f("", help="folder of id lists (labeled.txt, unlabeled.txt, test.txt; "
                    "default: none, or a dmt synth input folder's own)")
    labeled_without_box: str = _f("unlabeled", choices=("unlabeled", "exclude", "quarantine"),
                                  help="a labeled-list id without a usable box")
    test_without_box: str = _f("exclude", choices=("exclude", "quarantine"),
                               help="a test-list id without a usable box (exclude: a row in "
                                    "no split)")
    shards: str = _f("", help="preprocessed Parquet shards (default: ROOT/shards)")
    frame_time: float = _f(-1.0, help="seconds into the clip for the frame; -1: the middle")
    frame_short_side: int = _f(224, lo=32)
    audio_seconds: float = _f(3.0, lo=0.1)
    sample_rate: int = _f(16000, lo=8000)
    store_spectrogram: bool = _f(False)
    max_duration_s: float = _f(1800.0, lo=1.0, help="longer files are quarantined (a recording "
                               "in the wrong folder, not a clip)")
    max_frame_pixels: int = _f(40_000_000, lo=1024, help="larger frames are quarantined")
    rows_per_file: int = _f(1000, lo=1)
    decode_concurrency: int = _f(2, lo=1, help="Ray Data decode tasks at once")
    decode_batch_size: int = _f(16, lo=1)
    nodes: str = _f("", help="Ray node labels (key=value,...) of the nodes that run Ray Data "
                    "(decoding, training streams); empty: any node")
    val_fraction: float = _f(0.25, lo=0.0, hi=0.9, help="labeled ids held out for tuning")
    val_list: str = _f("", help="id list of the validation split (default: val_fraction)")
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class ModelConfig:
    """The EZ-VSL-style network; A and B may use different audio backbones."""

    visual: str = _f("small", choices=VISUAL_BACKBONES)
    visual_weights: str = _f("", help="local ImageNet ResNet-18 state dict (torchvision)")
    audio_a: str = _f("small", choices=AUDIO_BACKBONES)
    audio_b: str = _f("small", choices=AUDIO_BACKBONES)
    audio_a_weights: str = _f("", help="local weights of audio_a (vggish: the PyTorch VGGish "
                              "port; soundnet: converted SoundNet-8)")
    audio_b_weights: str = _f("", help="local weights of audio_b (as audio_a_weights)")
    dim: int = _f(128, lo=1)
    width: int = _f(32, lo=4, help="channels of the small CNNs")
    context_blocks: int = _f(0, lo=0, hi=4, help="small visual trunk: stride-1 blocks at 1/8 "
                             "after the four (each widens the receptive field by 16 px)")
    temperature: float = _f(0.03, lo=1e-4, hi=10.0)
    image_size: int = _f(224, lo=32, help="network input side; maps are resized to 224")


@dataclass
class DMTConfig:
    """The method and its open values (delta, tau, alpha, loss weights, augmentations)."""

    method: str = _f(_methods.DMT.name, choices=METHODS)
    delta: float = _f(0.5, lo=0.0, hi=1.0, help="binarisation threshold of teacher maps")
    tau: float = _f(0.5, lo=0.0, hi=1.0, help="consensus IoU needed to keep a sample")
    ema_decay: float = _f(0.99, lo=0.0, hi=1.0, help="teacher EMA decay alpha")
    lambda_sup: float = _f(1.0, lo=0.0)
    lambda_u: float = _f(1.0, lo=0.0)
    lambda_c: float = _f(1.0, lo=0.0)
    noise_filtering: bool = _f(True)
    ipl: bool = _f(True, help="intersect the two teachers' maps (off: teacher A's map)")
    ema: bool = _f(True, help="teachers follow students (off: frozen teachers)")
    color_jitter: float = _f(0.4, lo=0.0, hi=1.0, help="strong view brightness/contrast/sat")
    blur_prob: float = _f(0.3, lo=0.0, hi=1.0)
    gray_prob: float = _f(0.2, lo=0.0, hi=1.0)
    flip_prob: float = _f(0.5, lo=0.0, hi=1.0, help="horizontal flip (moves label maps)")
    crop_scale: float = _f(1.0, lo=0.1, hi=1.0, help="strong view: zoom into a random square "
                           "of this side fraction or more, label maps cropped with the frame "
                           "(1: off)")
    student_views: str = _f("shared", choices=("shared", "own"), help="strong views: one "
                            "shared by the students, or one drawn for each")
    tau_quantile: float = _f(0.0, lo=0.0, hi=0.99, help="beyond the paper: also drop the "
                             "samples below this quantile of the batch's consensus IoU (0: off)")
    time_mask: float = _f(0.15, lo=0.0, hi=1.0, help="max masked fraction of audio frames")
    freq_mask: float = _f(0.15, lo=0.0, hi=1.0,
                          help="max masked fraction of the front end's frequency bins")
    eval_model: str = _f("teacher_mean", choices=EVAL_MODELS, help="model reported as DMT")


@dataclass
class OptimConfig:
    lr: float = _f(1e-3, lo=0.0, hi=1.0)
    schedule: str = _f("constant", choices=SCHEDULES,
                       help="learning rate over the run: constant, or cosine annealing to 0 over "
                            "stage1 + stage2 epochs (pipeline.engine.schedule)")
    weight_decay: float = _f(1e-4, lo=0.0, hi=1.0)
    batch_size: int = _f(32, lo=1, help="labeled clips per step and worker")
    unlabeled_ratio: float = _f(1.0, lo=0.0, help="unlabeled clips per labeled clip in a step")


@dataclass
class TrainConfig:
    num_workers: int = _f(1, lo=0, help="Ray Train workers (0: in-process)")
    use_gpu: bool = _f(False)
    precision: str = _f("fp32", choices=("fp32", "bf16", "fp16"),
                        help="encoders under autocast (bf16/fp16; fp16 with a gradient scaler); "
                             "maps, losses, optimiser and EMA stay fp32")
    channels_last: bool = _f(False, help="NHWC visual encoders (faster convolutions on GPUs)")
    cpus_per_worker: float = _f(0.0, lo=0.0, help="CPUs per Train worker (0: auto, 1 each when "
                                "that leaves Ray Data a CPU, else an equal share)")
    placement_strategy: str = _f("PACK", choices=("PACK", "SPREAD", "STRICT_PACK",
                                                  "STRICT_SPREAD"),
                                 help="where Ray Train places the workers (SPREAD: across nodes)")
    worker_nodes: str = _f("", help="Ray node labels (key=value,...) of the nodes that run the "
                           "training workers; empty: any node")
    stage1_epochs: int = _f(5, lo=0)
    stage2_epochs: int = _f(10, lo=0)
    steps_per_epoch: int = _f(50, lo=1)
    eval_every: int = _f(1, lo=1, help="evaluate every N epochs")
    select_metric: str = _f("val/ciou", help="the run's model (logged, registered) is the "
                            "checkpoint with the highest value of this metric on the validation "
                            "split carved from the labeled ids (data.val_fraction / "
                            "data.val_list); the test split stays for the report. Empty: the "
                            "last epoch's")
    seed: int = _f(0, lo=0)
    max_failures: int = _f(2, lo=-1, help="worker failures Train retries (-1: forever)")
    capacity_wait_s: float = _f(600.0, lo=60.0, help="how long a run whose workers lost their "
                                "node waits for capacity to come back before it stops")
    storage: str = _f("", help="Ray Train storage path (default: ./ray_results)")
    threads: int = _f(0, lo=0, help="torch threads per worker (0: cpus_per_worker)")
    data_cpus: float = _f(0.25, lo=0.01, help="CPUs per Ray Data task feeding training")


@dataclass
class TrackingConfig:
    uri: str = _f("", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    experiment: str = _f("", help="MLflow experiment (default: the config name)")
    heatmaps: int = _f(6, lo=0, help="test clips drawn as heatmap overlays per evaluation")
    retry_s: float = _f(300.0, lo=1.0, help="how long a run waits for an unreachable tracking "
                        "server (a restart) before it stops; `dmt train --resume` continues it")
    system_metrics: bool = _f(True, help="MLflow system metrics (CPU, memory, GPU) while "
                              "training, from each node's first worker")
    system_metrics_interval_s: float = _f(10.0, lo=1.0, help="seconds between system-metric "
                                          "samples")


@dataclass
class TuneConfig:
    """`dmt tune`: the sweep's objective, scheduler and resources (the space is a YAML file)."""

    objective: str = _f("val/ciou", help="metric the sweep maximises (teachers' mean map); "
                        "val/ciou_both: the smaller of the median- and fixed-rule CIoU")
    mode: str = _f("max", choices=("max", "min"))
    scheduler: str = _f("asha", choices=("asha", "fifo"))
    search: str = _f("random", choices=("random", "optuna"),
                     help="how trials pick values: random draws, or Optuna's TPE (seeded)")
    optuna_startup: int = _f(10, lo=1, help="Optuna: trials drawn at random before TPE "
                             "proposes from the results (its n_startup_trials)")
    grace_period: int = _f(2, lo=1, help="ASHA: epochs before a trial can be stopped, "
                           "counted from stage 2 when only dmt.* keys are swept")
    reduction_factor: int = _f(2, lo=2, help="ASHA: keep 1/reduction_factor per rung")
    max_concurrent: int = _f(0, lo=0, help="trials at once (0: as many as the cluster fits)")
    trial_cpus: float = _f(0.5, lo=0.01, help="CPUs of a trial's driver function")
    seed: int = _f(0, lo=0, help="seed of the search")
    max_failures: int = _f(2, lo=-1, help="times a trial is restarted after its process dies "
                           "(a lost node, a killed worker; -1: forever); it resumes from its last "
                           "Train checkpoint")
    share_warmup: bool = _f(True, help="run stage 1 once for all trials when only stage-2 "
                            "keys are swept (delta, tau, ema_decay, ...)")


BENCH_TABLES = tuple(_methods.TABLES)
BENCH_METHODS = tuple(_methods.VARIANTS)


@dataclass
class BenchConfig:
    """`dmt bench quality`: which rows of Tables A-E run, with how many seeds, scored on which
    split."""

    tables: str = _f("A,B,C,D", help="tables to run, comma-separated subset of A,B,C,D,E "
                     "(E: the open choices, meant for split=val)")
    methods: str = _f("", help="only these methods, comma-separated (empty: every row)")
    seeds: int = _f(3, lo=1, help="seeds of Table A's learned rows")
    ablation_seeds: int = _f(3, lo=1, help="seeds of Tables B, C and D")
    fraction: float = _f(0.03, lo=0.0, hi=1.0, help="labeled fraction of Tables A and B")
    fractions: str = _f("0.005,0.01,0.03,0.1", help="labeled fractions of Table C, "
                        "comma-separated")
    pool_fraction: float = _f(0.01, lo=0.0, hi=1.0, help="labeled fraction of Table C's "
                              "unlabeled-pool axis")
    unlabeled: str = _f("2.5,10,40", help="Table C's unlabeled pools (methods that read one), "
                        "multiples of the labeled count, comma-separated; the full pool too")
    parallel: int = _f(0, lo=0, help="rows trained at once (0: one per CPU of the cluster)")
    threads: int = _f(1, lo=1, help="torch threads per row")
    matched_max_epochs: int = _f(200, lo=1, help="cap of the compute-matched row's epochs")
    split: str = _f("test", choices=("test", "val"), help="what rows are scored on: the test "
                    "split, or val_clips held out of the training pool (the test split is then "
                    "never read): choose settings on val, report on test")
    val_clips: int = _f(300, lo=1, help="split=val: training-pool clips held out for scoring")


@dataclass
class Config:
    name: str = _f("demo")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dmt: DMTConfig = field(default_factory=DMTConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

