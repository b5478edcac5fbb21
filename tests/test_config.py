"""The config tree: YAML loading, dotted overrides, flattening, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"


@pytest.mark.parametrize("name", ["demo", "smoke"])
def test_shipped_configs_load_and_name_themselves(name):
    cfg = C.load(CONFIGS / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.data.root == f"data/{name}"


def test_smoke_is_smaller_than_demo():
    smoke, demo = C.load(CONFIGS / "smoke.yaml"), C.load(CONFIGS / "demo.yaml")
    assert smoke.data.synth.clips < demo.data.synth.clips
    assert smoke.train.steps_per_epoch < demo.train.steps_per_epoch


def test_overrides_apply_in_order_and_are_typed():
    cfg = C.load(CONFIGS / "smoke.yaml", ["dmt.ema_decay=0.95", "train.num_workers=2",
                                          "dmt.noise_filtering=false", "dmt.ema_decay=0.97"])
    assert cfg.dmt.ema_decay == 0.97
    assert cfg.train.num_workers == 2
    assert cfg.dmt.noise_filtering is False


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert C.load(None, ["dmt.tau=1"]).dmt.tau == 1.0
    with pytest.raises(C.ConfigError, match=r"train\.num_workers: expected int"):
        C.load(None, ["train.num_workers=1.5"])


def test_flatten_round_trips_through_from_flat():
    cfg = C.load(CONFIGS / "demo.yaml", ["dmt.tau=0.3"])
    flat = C.flatten(cfg)
    assert flat["dmt.tau"] == 0.3 and flat["data.synth.clips"] == cfg.data.synth.clips
    assert all(not isinstance(v, dict) for v in flat.values())
    assert C.from_flat(flat) == cfg


def test_dump_yaml_reloads_to_the_same_config(tmp_path):
    cfg = C.load(CONFIGS / "smoke.yaml", ["dmt.delta=0.4"])
    path = tmp_path / "again.yaml"
    path.write_text(C.dump_yaml(cfg))
    assert C.load(path) == cfg


@pytest.mark.parametrize("override, message", [
    ("dmt.ema_decay=1.5", r"dmt\.ema_decay: 1\.5 is out of range, allowed \[0\.0, 1\.0\]"),
    ("dmt.tau=-0.1", r"dmt\.tau: -0\.1 is out of range"),
    ("dmt.delta=2", r"dmt\.delta: 2"),
    ("train.num_workers=-1", r"train\.num_workers: -1 is out of range, allowed \[0, inf\]"),
    ("dmt.method=magic", r"dmt\.method: 'magic' is not one of: dmt, supervised, ezvsl"),
    ("model.audio_a=wav2vec", r"model\.audio_a: 'wav2vec' is not one of"),
    ("dmt.ema=yes please", r"dmt\.ema: expected bool"),
    ("dmt.emadecay=0.9", r"unknown key 'dmt\.emadecay'.*dmt\.ema_decay"),
    ("nosuch.key=1", r"unknown key 'nosuch'"),
    ("dmt.tau", r"must look like key=value"),
])
def test_bad_values_name_the_key_and_the_allowed_values(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load(CONFIGS / "smoke.yaml", [override])


def test_bad_yaml_files_are_rejected_with_the_file_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(C.ConfigError, match="config file not found"):
        C.load(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dmt: {tau: [unclosed\n")
    with pytest.raises(C.ConfigError, match="bad.yaml: not valid YAML"):
        C.load(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"dmt": {"tau": "high"}}))
    with pytest.raises(C.ConfigError, match=r"dmt\.tau: expected float, got 'high'"):
        C.load(wrong)


def test_cross_field_rules():
    with pytest.raises(C.ConfigError, match="must not exceed data.synth.clips"):
        C.load(None, ["data.synth.clips=10", "data.synth.labeled=8", "data.synth.test=4"])
    with pytest.raises(C.ConfigError, match="area_min"):
        C.load(None, ["data.synth.area_min=0.5", "data.synth.area_max=0.3"])


def test_data_paths_are_absolute_and_follow_root(tmp_path):
    cfg = C.load(None, ["data.root=somewhere"])
    paths = C.data_paths(cfg.data, base=tmp_path)
    assert paths.root == tmp_path / "somewhere"
    assert paths.videos == tmp_path / "somewhere" / "synth" / "videos"
    assert paths.shards.is_absolute()


def test_cli_config_error_exits_2_before_any_work(tmp_path):
    """A bad value fails fast: exit 2, the key in the message, and no Ray or MLflow touched."""
    code = ("import sys; from pipeline.cli import main; rc = main(["
            "'config', '--config', 'jobs/configs/smoke.yaml', '--set', 'dmt.ema_decay=7']); "
            "assert 'ray' not in sys.modules and 'mlflow' not in sys.modules, 'started work'; "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=CONFIGS.parents[1])
    assert proc.returncode == 2, proc.stderr
    assert "dmt.ema_decay" in proc.stderr and "[0.0, 1.0]" in proc.stderr


def test_cli_prints_resolved_config_with_overrides(capsys):
    from pipeline.cli import main

    assert main(["config", "--config", str(CONFIGS / "smoke.yaml"), "--set", "dmt.tau=0.25"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["dmt"]["tau"] == 0.25 and printed["name"] == "smoke"


def test_shipped_configs_read_the_same_without_pyyaml():
    """mini_yaml (for machines without PyYAML) reads every shipped config as PyYAML does."""
    import yaml

    from pipeline.config.mini_yaml import loads

    files = sorted((REPO / "jobs" / "configs").rglob("*.yaml"))
    assert len(files) >= 14
    for f in files:
        assert loads(f.read_text(), str(f)) == yaml.safe_load(f.read_text()), f
    with pytest.raises(ValueError, match="outside the supported YAML subset"):
        loads("a:\n  - 1\n")
    with pytest.raises(ValueError, match="not closed"):
        loads("a: {b: 1,\n")


def test_a_config_extends_another(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {dim: 16, width: 8}\ntrain: {seed: 3}\n")
    (tmp_path / "leaf.yaml").write_text("extends: base.yaml\nmodel: {dim: 32}\n")
    cfg = C.load(tmp_path / "leaf.yaml")
    assert (cfg.model.dim, cfg.model.width, cfg.train.seed, cfg.name) == (32, 8, 3, "leaf")
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(C.ConfigError, match="loops back"):
        C.load(tmp_path / "loop.yaml")
    paper = C.load("paper/vggsound_144k_2k")
    assert (paper.data.format, paper.model.audio_b, paper.optim.lr) == ("vggss", "soundnet", 1e-4)
