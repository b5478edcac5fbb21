"""The config tree as data: flat dotted keys, dicts and overrides in, a validated
:class:`Config` out (``from_dict``, ``load``), and back (``flatten``, ``to_dict``). Every error
names the key and what it accepts."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any

from pipeline.config.files import find_config, pyyaml, read_with_bases
from pipeline.config.mini_yaml import scalar
from pipeline.config.schema import (
    BENCH_METHODS,
    BENCH_TABLES,
    BenchConfig,
    Config,
    ConfigError,
)

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
    yaml = pyyaml()
    if yaml is None:  # a machine without PyYAML (the GPU check's image)
        value = scalar(raw)
    else:
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
    if s.version == 1 and s.categories > 12:
        raise ConfigError(f"data.synth.categories: {s.categories} > 12, the categories of "
                          f"version 1; set data.synth.version=2 for up to 24")
    needed = s.distractors_max + (2 if s.two_sounding > 0 else 1)
    if s.categories < needed:
        raise ConfigError(f"data.synth.categories ({s.categories}) must be >= "
                          f"distractors_max + sounding objects ({needed}): every object in a "
                          f"scene has its own category")
    for key, value in (("data.nodes", cfg.data.nodes), ("train.worker_nodes",
                                                         cfg.train.worker_nodes)):
        label_selector(value, key)
    if s.frame_size % 2:
        raise ConfigError(f"data.synth.frame_size: {s.frame_size} must be even (H.264)")
    select = cfg.train.select_metric
    if select and not (select.startswith("val/") and len(select) > 4):
        raise ConfigError(f"train.select_metric: {select!r} must be a validation metric "
                          f"(val/ciou, val/ciou_both, ...) or empty (the last epoch)")
    if select and not (cfg.data.val_list or cfg.data.val_fraction > 0):
        raise ConfigError(f"train.select_metric={select} needs a validation split: set "
                          f"data.val_fraction > 0 or data.val_list (or train.select_metric='' "
                          f"for the last epoch)")
    bench_lists(cfg.bench)


def label_selector(text: str, key: str = "label selector") -> dict[str, str] | None:
    """``"dmt-role=data,zone=a"`` -> ``{"dmt-role": "data", "zone": "a"}`` (None when empty):
    the Ray node labels (``ray start --labels``) a kind of work is placed on."""
    if not text.strip():
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{key}: {text!r}: expected key=value[,key=value...] node labels")
        out[name.strip()] = value.strip()
    return out


@dataclasses.dataclass(frozen=True)
class BenchLists:
    """The comma-separated lists of ``bench``, read and checked."""

    tables: list[str]
    methods: list[str]  # empty: every row
    fractions: list[float]  # Table C's labeled fractions
    unlabeled: list[float]  # Table C's unlabeled pools, multiples of the labeled count


def bench_lists(b: BenchConfig) -> BenchLists:
    """The lists of ``bench``, validated (ConfigError naming the key)."""
    def items(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    def numbers(key: str, text: str) -> list[float]:
        try:
            return [float(t) for t in items(text)]
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not a comma-separated list of "
                              f"numbers") from None

    tables, methods = items(b.tables), items(b.methods)
    for key, values, allowed in (("bench.tables", tables, BENCH_TABLES),
                                 ("bench.methods", methods, BENCH_METHODS)):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(f"{key}: {', '.join(bad)} not among {', '.join(allowed)}")
    fractions = numbers("bench.fractions", b.fractions)
    unlabeled = numbers("bench.unlabeled", b.unlabeled)
    if not all(0.0 < f <= 1.0 for f in fractions):
        raise ConfigError(f"bench.fractions: {b.fractions!r}: every fraction must be in (0, 1]")
    for key, value in (("bench.fraction", b.fraction), ("bench.pool_fraction",
                                                         b.pool_fraction)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{key}: {value} must be in (0, 1]")
    if not all(m > 0 for m in unlabeled):
        raise ConfigError(f"bench.unlabeled: {b.unlabeled!r}: every multiple must be > 0")
    if unlabeled and max(unlabeled) * b.pool_fraction > 1.0 - b.pool_fraction:
        raise ConfigError(f"bench.unlabeled: {max(unlabeled):g}x the labeled clips at "
                          f"bench.pool_fraction={b.pool_fraction:g} needs more clips than the "
                          f"training pool has; lower one of them")
    return BenchLists(tables, methods, fractions, unlabeled)


def from_dict(data: dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    cfg = Config()
    _apply(cfg, data or {}, "")
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    _validate_relations(cfg)
    return cfg


def from_flat(flat: dict[str, Any]) -> Config:
    """Inverse of :func:`flatten` (used by Tune trials)."""
    cfg = Config()
    for key, value in flat.items():
        set_key(cfg, key, value)
    _validate_relations(cfg)
    return cfg


def dump_yaml(cfg: Config) -> str:
    import yaml  # optional: configs are read without it (mini_yaml); writing one needs it

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


def load(path: str | os.PathLike | None = None,
         overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (defaults when ``path`` is None), then apply ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        p = find_config(path)
        data = read_with_bases(p)
        data.setdefault("name", p.stem)
    return from_dict(data, overrides)
