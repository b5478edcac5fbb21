"""The package as a user installs it: a wheel, run from a folder that is not the repository.

Nothing may read the repository's layout at run time: the shipped configs come with the wheel
(``pipeline/configs``), `dmt submit` knows it has no checkout to upload, and every command runs
from a temporary folder with only the wheel on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_lists_every_package():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "pipeline").rglob("__init__.py")}
    assert listed == found | {"pipeline.configs"}


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """The project built as a wheel and unpacked into its own folder; an environment whose
    Python finds the package only there (dependencies from this venv)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: building leaves build/ and *.egg-info behind
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in files.splitlines():
        if (REPO / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(root / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (root / "dist").glob("dmt_avsl-*.whl")
    target = root / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                              "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(target), RAY_DATA_PARQUET_FOOTER_NUM_ACTORS="1")
    return target, env


def _dmt(env, cwd, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_configs(wheel_env, tmp_path):
    target, env = wheel_env
    assert {p.name for p in (target / "pipeline" / "configs").glob("*.yaml")} >= {
        "demo.yaml", "smoke.yaml", "bench.yaml", "bench_quick.yaml", "tune.yaml"}
    where = subprocess.run([sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where  # not the checkout
    out = _dmt(env, tmp_path, "config", "--config", "jobs/configs/smoke.yaml")
    assert out.returncode == 0 and "name: smoke" in out.stdout, out.stderr
    bad = _dmt(env, tmp_path, "config", "--config", "nonesuch")
    assert bad.returncode == 2 and "shipped: " in bad.stderr and "smoke" in bad.stderr


@pytest.mark.slow
@pytest.mark.long  # `make test-long`: 110 s (wheel install), the suite ran 35.7 min on CI
def test_every_command_runs_from_another_folder(wheel_env, tmp_path):
    """demo (synth, preprocess with Ray Data, train, evaluate), evaluate, localize, tune's and
    bench's config checks, submit's and jobs' errors: all from an empty folder."""
    _, env = wheel_env
    sets = ["--set", "data.root=smoke", "--set", "tracking.uri=sqlite:///mlflow.db",
            "--set", "data.synth.clips=24", "--set", "data.synth.labeled=6",
            "--set", "data.synth.test=6"]
    demo = _dmt(env, tmp_path, "demo", "--config", "smoke", *sets)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "teacher_mean" in demo.stdout and (tmp_path / "smoke" / "shards").is_dir()
    (ckpt,) = [p for p in (tmp_path / "ray_results").rglob("state.pt")
               if "checkpoint_" in str(p)][-1:]
    ev = _dmt(env, tmp_path, "evaluate", "--checkpoint", str(ckpt), "--data", "smoke/shards",
              "--out", "eval.json")
    assert ev.returncode == 0 and (tmp_path / "eval.json").is_file(), ev.stderr[-2000:]
    video = sorted((tmp_path / "smoke" / "synth" / "videos").glob("*.mp4"))[0]
    loc = _dmt(env, tmp_path, "localize", "--checkpoint", str(ckpt), str(video),
               "--json", "loc.json")
    assert loc.returncode == 0 and (tmp_path / "loc.json").is_file(), loc.stderr[-2000:]
    tune = _dmt(env, tmp_path, "tune", "--config", "smoke", "--samples", "0")
    assert tune.returncode == 2 and "--samples" in tune.stderr
    bench = _dmt(env, tmp_path, "bench", "quality", "--quick", "--out", "b",
                 "--set", "bench.methods=supervised_matched")
    assert bench.returncode == 2 and "include dmt" in bench.stderr  # its config was found
    sub = _dmt(env, tmp_path, "submit", "--address", "http://127.0.0.1:9", "train",
               "--config", "smoke", "--set", "dmt.tau=5")
    assert sub.returncode == 2 and "dmt.tau" in sub.stderr
    jobs = _dmt(env, tmp_path, "jobs", "--address", "http://127.0.0.1:9")
    assert jobs.returncode == 1 and "cannot reach" in jobs.stderr
