"""Config files: finding a ``--config`` argument (a path, or the name of a shipped config) and
loading it. The shipped configs are ``jobs/configs/*.yaml`` in the repository, installed with the
package as ``pipeline.configs`` (a wheel has no ``jobs/`` folder)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config.mini_yaml import loads
from pipeline.config.schema import ConfigError

CONFIG_DIR = "jobs/configs"  # where the shipped configs live in the repository


def shipped_configs() -> Path:
    """The folder of the configs shipped with the package: ``pipeline/configs`` when installed
    from a wheel, the repository's ``jobs/configs`` in a checkout (an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / CONFIG_DIR


def pyyaml():
    """PyYAML, or None where it is not installed (configs are then read by ``mini_yaml``)."""
    try:
        import yaml
    except ImportError:
        return None
    return yaml


def read_yaml(path: Path) -> dict:
    """A YAML file as plain data (``safe_load``: no Python objects), with PyYAML or, where it
    is missing, ``mini_yaml``; ConfigError naming the file when it cannot be read."""
    yaml = pyyaml()
    try:
        if yaml is None:
            return loads(path.read_text(), str(path)) or {}
        data = yaml.safe_load(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and its subclasses
        if yaml is not None and isinstance(exc, yaml.YAMLError):
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        raise
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got "
                          f"{type(data).__name__}")
    return data or {}


EXTENDS = "extends"  # a config file may extend another (a path relative to its own folder)


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, section by section (nested mappings merge, values replace)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def read_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file with the files it ``extends`` merged under it (shared settings live once:
    e.g. ``paper/_common.yaml`` under each of the paper's configs)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    data = read_yaml(path)
    base = data.pop(EXTENDS, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'extends' must name one file, got {base!r}")
    target = path.parent / base
    if not target.is_file():
        raise ConfigError(f"{path}: extends {base}, which is not a file ({target})")
    return merge(read_with_bases(target, (*seen, path)), data)


def find_config(spec: str | os.PathLike) -> Path:
    """A config file for ``--config``: an existing path as given, else a shipped config by name
    (``demo``, ``demo.yaml``, ``paper/flickr_4k``, or ``jobs/configs/demo.yaml`` from any
    folder); ConfigError naming what was looked for otherwise."""
    given = Path(spec)
    if given.is_file():
        return given
    name = str(spec).removeprefix(CONFIG_DIR + "/").removeprefix("./" + CONFIG_DIR + "/")
    shipped = shipped_configs() / (name if name.endswith((".yaml", ".yml")) else name + ".yaml")
    if shipped.is_file():
        return shipped
    known = sorted(str(p.relative_to(shipped_configs()).with_suffix(""))
                   for p in shipped_configs().rglob("*.yaml"))
    raise ConfigError(f"config file not found: {given} (nor a shipped config of that name; "
                      f"shipped: {', '.join(known)})")
