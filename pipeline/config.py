"""One typed config tree for a whole run, loaded from YAML and overridden with dotted keys.

Every leaf has a dotted key (``dmt.ema_decay``); the same flat keys are used by the CLI's
``--set``, by Tune's search space and by the MLflow params. Validation happens here, before any
Ray or MLflow work starts, and every error names the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config value, key or file that cannot be used; the message names the key."""


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, help: str = "") -> Any:
    """A dataclass field with validation metadata (range and/or allowed values)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "help": help}
    return field(default=default, metadata=meta)


AUDIO_BACKBONES = ("small", "resnet18", "vggish", "soundnet")
VISUAL_BACKBONES = ("small", "resnet18")
METHODS = ("dmt", "supervised", "ezvsl", "mean_teacher")
EVAL_MODELS = ("teacher_mean", "teacher_a", "teacher_b", "student_a", "student_b")


@dataclass
class SynthConfig:
    """The synthetic benchmark written by ``dmt synth`` (real mp4 files)."""

    clips: int = _f(400, lo=1, help="total clips (labeled + unlabeled + test)")
    labeled: int = _f(16, lo=0, help="clips whose boxes training may use")
    test: int = _f(100, lo=0, help="held-out test clips")
    seed: int = _f(0, lo=0)
    categories: int = _f(10, lo=2, hi=12)
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
    workers: int = _f(0, lo=0, help="parallel writer processes (0: all CPUs)")


@dataclass
class DataConfig:
    """Where the raw clips and the preprocessed shards live, and how clips are decoded."""

    root: str = _f("data/demo", help="folder of this dataset (synth/, shards/ below it)")
    videos: str = _f("", help="folder or manifest of videos (default: ROOT/synth/videos)")
    annotations: str = _f("", help="VGG-SS JSON, Flickr XML folder or synth file")
    format: str = _f("synth", choices=("synth", "vggss", "flickr"))
    lists: str = _f("", help="folder of id lists (labeled.txt, unlabeled.txt, test.txt)")
    shards: str = _f("", help="preprocessed Parquet shards (default: ROOT/shards)")
    frame_time: float = _f(-1.0, help="seconds into the clip for the frame; -1: the middle")
    frame_short_side: int = _f(224, lo=32)
    audio_seconds: float = _f(3.0, lo=0.1)
    sample_rate: int = _f(16000, lo=8000)
    store_spectrogram: bool = _f(False)
    rows_per_file: int = _f(1000, lo=1)
    decode_concurrency: int = _f(2, lo=1, help="Ray Data decode tasks at once")
    decode_batch_size: int = _f(16, lo=1)
    val_fraction: float = _f(0.25, lo=0.0, hi=0.9, help="labeled ids held out for tuning")
    val_list: str = _f("", help="id list of the validation split (default: val_fraction)")
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class ModelConfig:
    """The EZ-VSL-style network; A and B may use different audio backbones."""

    visual: str = _f("small", choices=VISUAL_BACKBONES)
    visual_weights: str = _f("", help="local ImageNet ResNet-18 state dict (optional)")
    audio_a: str = _f("small", choices=AUDIO_BACKBONES)
    audio_b: str = _f("small", choices=AUDIO_BACKBONES)
    dim: int = _f(128, lo=1)
    width: int = _f(32, lo=4, help="channels of the small CNNs")
    temperature: float = _f(0.03, lo=1e-4, hi=10.0)
    image_size: int = _f(224, lo=32, help="network input side; maps are resized to 224")


@dataclass
class DMTConfig:
    """The method and its open values (delta, tau, alpha, loss weights, augmentations)."""

    method: str = _f("dmt", choices=METHODS)
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
    time_mask: float = _f(0.15, lo=0.0, hi=1.0, help="max masked fraction of audio frames")
    freq_mask: float = _f(0.15, lo=0.0, hi=1.0, help="max masked fraction of mel bins")
    eval_model: str = _f("teacher_mean", choices=EVAL_MODELS, help="model reported as DMT")


@dataclass
class OptimConfig:
    lr: float = _f(1e-3, lo=0.0, hi=1.0)
    weight_decay: float = _f(1e-4, lo=0.0, hi=1.0)
    batch_size: int = _f(32, lo=1, help="labeled clips per step and worker")
    unlabeled_ratio: float = _f(1.0, lo=0.0, help="unlabeled clips per labeled clip in a step")


@dataclass
class TrainConfig:
    num_workers: int = _f(1, lo=0, help="Ray Train workers (0: in-process)")
    use_gpu: bool = _f(False)
    cpus_per_worker: float = _f(1.0, lo=0.01)
    placement_strategy: str = _f("PACK", choices=("PACK", "SPREAD", "STRICT_PACK",
                                                  "STRICT_SPREAD"),
                                 help="where Ray Train places the workers (SPREAD: across nodes)")
    stage1_epochs: int = _f(5, lo=0)
    stage2_epochs: int = _f(10, lo=0)
    steps_per_epoch: int = _f(50, lo=1)
    eval_every: int = _f(1, lo=1, help="evaluate every N epochs")
    seed: int = _f(0, lo=0)
    max_failures: int = _f(2, lo=-1, help="worker failures Train retries (-1: forever)")
    storage: str = _f("", help="Ray Train storage path (default: ./ray_results)")
    threads: int = _f(0, lo=0, help="torch threads per worker (0: cpus_per_worker)")
    data_cpus: float = _f(0.25, lo=0.01, help="CPUs per Ray Data task feeding training")


@dataclass
class TrackingConfig:
    uri: str = _f("", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    experiment: str = _f("", help="MLflow experiment (default: the config name)")
    heatmaps: int = _f(6, lo=0, help="test clips drawn as heatmap overlays per evaluation")


@dataclass
class TuneConfig:
    """`dmt tune`: the sweep's objective, scheduler and resources (the space is a YAML file)."""

    objective: str = _f("val/ciou", help="metric the sweep maximises (teachers' mean map)")
    mode: str = _f("max", choices=("max", "min"))
    scheduler: str = _f("asha", choices=("asha", "fifo"))
    grace_period: int = _f(2, lo=1, help="ASHA: epochs before a trial can be stopped, "
                           "counted from stage 2 when only dmt.* keys are swept")
    reduction_factor: int = _f(2, lo=2, help="ASHA: keep 1/reduction_factor per rung")
    max_concurrent: int = _f(0, lo=0, help="trials at once (0: as many as the cluster fits)")
    trial_cpus: float = _f(0.5, lo=0.01, help="CPUs of a trial's driver function")
    seed: int = _f(0, lo=0, help="seed of the search")


BENCH_TABLES = ("A", "B", "C")
BENCH_METHODS = ("ezvsl", "supervised", "supervised_matched", "mean_teacher", "dmt",
                 "supervised_all", "dmt_no_nf", "dmt_no_ipl", "dmt_no_ema")


@dataclass
class BenchConfig:
    """`dmt bench quality`: which rows of Tables A/B/C run, with how many seeds."""

    tables: str = _f("A,B,C", help="tables to run, comma-separated subset of A,B,C")
    methods: str = _f("", help="only these methods, comma-separated (empty: every row)")
    seeds: int = _f(3, lo=1, help="seeds of Table A's learned rows")
    ablation_seeds: int = _f(2, lo=1, help="seeds of Tables B and C")
    fraction: float = _f(0.03, lo=0.0, hi=1.0, help="labeled fraction of Tables A and B")
    fractions: str = _f("0.01,0.03,0.1", help="labeled fractions of Table C, comma-separated")
    parallel: int = _f(0, lo=0, help="rows trained at once (0: one per CPU of the cluster)")
    threads: int = _f(1, lo=1, help="torch threads per row")
    matched_max_epochs: int = _f(200, lo=1, help="cap of the compute-matched row's epochs")


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


# ---------------------------------------------------------------- flatten / set

def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _fields(obj_or_cls: Any) -> dict[str, dataclasses.Field]:
    hints = typing.get_type_hints(obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls))
    out = {}
    for f in dataclasses.fields(obj_or_cls):
        f.type = hints[f.name]  # resolve the postponed annotation once
        out[f.name] = f
    return out


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``Config`` -> ``{"dmt.ema_decay": 0.99, ...}`` (leaves only, sorted by definition)."""
    flat: dict[str, Any] = {}
    for name, f in _fields(cfg).items():
        value = getattr(cfg, name)
        key = f"{prefix}{name}"
        if _is_section(f.type):
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    """Check ``value`` against the field's type and limits; return it in the field's type."""
    tp = f.type
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(map(str, meta["choices"]))
        raise ConfigError(f"{key}: {value!r} is not one of: {allowed}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{key}: {value!r} is out of range, allowed {rng}")
    return value


def _apply(section: Any, data: dict, prefix: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = _fields(section)
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            known = ", ".join(f"{prefix}{n}" for n in fields)
            raise ConfigError(f"unknown key {key!r}; known keys here: {known}")
        f = fields[name]
        if _is_section(f.type):
            _apply(getattr(section, name), value if value is not None else {}, key + ".")
        else:
            setattr(section, name, _coerce(key, f, value))


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted key (``dmt.tau``) with full validation."""
    *path, leaf = key.split(".")
    nested: Any = {leaf: value}
    for part in reversed(path):
        nested = {part: nested}
    _apply(cfg, nested, "")


def parse_override(text: str) -> tuple[str, Any]:
    """``"dmt.ema_decay=0.99"`` -> ``("dmt.ema_decay", 0.99)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. dmt.tau=0.5)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot read value {raw!r}: {exc}") from None
    if value is None:
        value = ""
    return key.strip(), value


def _validate_relations(cfg: Config) -> None:
    s = cfg.data.synth
    if s.labeled + s.test > s.clips:
        raise ConfigError(
            f"data.synth.labeled + data.synth.test ({s.labeled} + {s.test}) must not exceed "
            f"data.synth.clips ({s.clips})")
    if s.area_min > s.area_max:
        raise ConfigError(f"data.synth.area_min ({s.area_min}) must be <= data.synth.area_max "
                          f"({s.area_max})")
    if s.distractors_min > s.distractors_max:
        raise ConfigError("data.synth.distractors_min must be <= data.synth.distractors_max")
    needed = s.distractors_max + (2 if s.two_sounding > 0 else 1)
    if s.categories < needed:
        raise ConfigError(f"data.synth.categories ({s.categories}) must be >= "
                          f"distractors_max + sounding objects ({needed}): every object in a "
                          f"scene has its own category")
    if s.frame_size % 2:
        raise ConfigError(f"data.synth.frame_size: {s.frame_size} must be even (H.264)")
    bench_lists(cfg.bench)


def bench_lists(b: BenchConfig) -> tuple[list[str], list[str], list[float]]:
    """(tables, methods, fractions) of ``bench``, validated; methods empty means all."""
    def items(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    tables, methods = items(b.tables), items(b.methods)
    for key, values, allowed in (("bench.tables", tables, BENCH_TABLES),
                                 ("bench.methods", methods, BENCH_METHODS)):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(f"{key}: {', '.join(bad)} not among {', '.join(allowed)}")
    try:
        fractions = [float(t) for t in items(b.fractions)]
    except ValueError:
        raise ConfigError(f"bench.fractions: {b.fractions!r} is not a comma-separated list of "
                          f"numbers") from None
    if not all(0.0 < f <= 1.0 for f in fractions):
        raise ConfigError(f"bench.fractions: {b.fractions!r}: every fraction must be in (0, 1]")
    if not 0.0 < b.fraction <= 1.0:
        raise ConfigError(f"bench.fraction: {b.fraction} must be in (0, 1]")
    return tables, methods, fractions


def from_dict(data: dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    cfg = Config()
    _apply(cfg, data or {}, "")
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    _validate_relations(cfg)
    return cfg


def load(path: str | os.PathLike | None = None,
         overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (defaults when ``path`` is None), then apply ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        data.setdefault("name", p.stem)
    return from_dict(data, overrides)


def from_flat(flat: dict[str, Any]) -> Config:
    """Inverse of :func:`flatten` (used by Tune trials)."""
    cfg = Config()
    for key, value in flat.items():
        set_key(cfg, key, value)
    _validate_relations(cfg)
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def describe_keys() -> list[tuple[str, Any, str]]:
    """(key, default, help) for every leaf: used by ``dmt config --keys`` and the README."""
    rows = []

    def walk(section: Any, prefix: str) -> None:
        for name, f in _fields(section).items():
            key = prefix + name
            if _is_section(f.type):
                walk(getattr(section, name), key + ".")
            else:
                rows.append((key, getattr(section, name), f.metadata.get("help", "")))

    walk(Config(), "")
    return rows


@dataclass(frozen=True)
class DataPaths:
    """Absolute paths derived from ``DataConfig`` (workers change directory: resolve early)."""

    root: Path
    synth: Path
    videos: Path
    annotations: Path
    lists: Path
    shards: Path


PATH_KEYS = ("data.root", "data.videos", "data.annotations", "data.lists", "data.shards",
             "data.val_list", "model.visual_weights", "train.storage")


def resolve_paths(cfg: Config, base: str | os.PathLike | None = None) -> Config:
    """A copy of ``cfg`` whose relative paths are absolute against ``base`` (default: the
    current directory). Done on the driver: Tune trials and Train workers change directory."""
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
