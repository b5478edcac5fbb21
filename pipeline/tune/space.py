"""Search spaces over the config's dotted keys, from a small YAML vocabulary.

A space file maps dotted keys to one distribution each::

    dmt.delta: {uniform: [0.3, 0.7]}
    dmt.tau: {uniform: [0.2, 0.8]}
    dmt.ema_decay: {one_minus_loguniform: [1.0e-4, 0.1]}   # 1 - alpha log-spaced: 0.9 .. 0.9999
    optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
    dmt.lambda_u: {choice: [0.5, 1.0, 2.0]}

Keys and bounds are checked against the config before the sweep starts (unknown key, or a bound
the config would reject, fail with the key named).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ray import tune

from pipeline import config as config_mod

ONE_MINUS = "1-"  # param_space prefix: the trial sets key = 1 - sampled value
KINDS = ("uniform", "loguniform", "one_minus_loguniform", "choice", "randint")

DEFAULT_SPACE: dict[str, dict[str, list]] = {
    "dmt.delta": {"uniform": [0.3, 0.7]},
    "dmt.tau": {"uniform": [0.2, 0.8]},
    "dmt.ema_decay": {"one_minus_loguniform": [1.0e-4, 0.1]},
}


def _extremes(kind: str, args: list) -> list[Any]:
    if kind == "choice":
        return list(args)
    lo, hi = args
    if kind == "one_minus_loguniform":
        return [1.0 - hi, 1.0 - lo]
    return [lo, hi]


def validate_space(space: dict[str, Any], base: config_mod.Config) -> dict[str, dict[str, list]]:
    """Check every key and bound against the config; return the space in canonical form."""
    if not isinstance(space, dict) or not space:
        raise config_mod.ConfigError("search space: expected a non-empty mapping of dotted keys")
    flat = config_mod.flatten(base)
    out = {}
    for key, spec in space.items():
        if key not in flat:
            raise config_mod.ConfigError(f"search space: unknown key {key!r}")
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in KINDS):
            raise config_mod.ConfigError(
                f"search space: {key}: expected one of {{{', '.join(KINDS)}: [...]}}, got {spec!r}")
        kind, args = next(iter(spec.items()))
        if kind != "choice" and (not isinstance(args, list) or len(args) != 2
                                 or not args[0] < args[1]):
            raise config_mod.ConfigError(f"search space: {key}: {kind} needs [low, high], low < "
                                         f"high; got {args!r}")
        if kind in ("loguniform", "one_minus_loguniform") and args[0] <= 0:
            raise config_mod.ConfigError(f"search space: {key}: {kind} bounds must be > 0")
        for value in _extremes(kind, args):
            probe = config_mod.from_flat(flat)
            config_mod.set_key(probe, key, value)  # raises with the key and allowed range
        out[key] = {kind: list(args)}
    return out


def load_space(path: str | None, base: config_mod.Config) -> dict[str, dict[str, list]]:
    if not path:
        return validate_space(DEFAULT_SPACE, base)
    p = Path(path)
    if not p.is_file():
        raise config_mod.ConfigError(f"--space: file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise config_mod.ConfigError(f"{p}: not valid YAML: {exc}") from None
    return validate_space(data, base)


def to_tune(space: dict[str, dict[str, list]]) -> dict[str, Any]:
    """The Ray Tune ``param_space`` (flat dotted keys) of a validated space."""
    out: dict[str, Any] = {}
    for key, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        elif kind == "randint":
            out[key] = tune.randint(int(args[0]), int(args[1]) + 1)
        elif kind == "choice":
            out[key] = tune.choice(args)
        else:  # alpha = 1 - u with u log-uniform, so EMA decays spread evenly in "horizon"
            out[ONE_MINUS + key] = tune.loguniform(*args)
    return out


def decode_sample(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled ``param_space`` values -> ``{dotted key: config value}``."""
    out = {}
    for key, value in params.items():
        if key.startswith(ONE_MINUS):
            out[key[len(ONE_MINUS):]] = 1.0 - float(value)
        else:
            out[key] = value
    return out


def contains(space: dict[str, dict[str, list]], key: str, value: Any) -> bool:
    """Whether ``value`` lies in the space of ``key`` (used by tests and the sweep report)."""
    kind, args = next(iter(space[key].items()))
    if kind == "choice":
        return value in args
    lo, hi = _extremes(kind, args)
    return lo - 1e-12 <= value <= hi + 1e-12
