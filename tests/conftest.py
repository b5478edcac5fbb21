"""Shared fixtures: one Ray instance per test session, one small synthetic benchmark, one folder
of awkward clips for the preprocessing tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
METADATA = SHARED / "data" / "avsl-metadata"

# Small machines: one parquet footer reader instead of Ray Data's 32 actors.
os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
# Fake AWS credentials for the S3 test server (tests/s3_server.py), set here, before the
# session's Ray instance starts, so its workers inherit them (S3 signs every request); no test
# reaches real AWS, nor the EC2 metadata service (the SDKs' last, slow credential source).
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_EC2_METADATA_DISABLED="true")
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

KEY_PACKAGES = ("torch", "torchaudio", "torchvision", "ray", "mlflow", "pyarrow", "numpy",
                "av", "pillow", "imageio-ffmpeg")


def pytest_report_header(config) -> list[str]:
    """The resolved versions, first thing in the output, and any that differ from the pins of
    constraints.txt (what the suite last passed with)."""
    import platform
    from importlib import metadata

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version
                 for d in metadata.distributions()}
    lines = [f"python {platform.python_version()} on {platform.machine()}; " + ", ".join(
        f"{n} {installed.get(n, 'not installed')}" for n in KEY_PACKAGES)]
    drift = sorted(f"{n} {installed[n]} (pinned {v})" for n, v in pins.items()
                   if n in installed and installed[n] != v)
    lines.append("versions differ from constraints.txt: " + ", ".join(drift) if drift
                 else f"all {len(pins)} pinned packages at their constraints.txt versions")
    return lines


@pytest.fixture(scope="session")
def metadata_dir() -> Path:
    if not METADATA.is_dir():
        pytest.fail(f"real annotation files expected at {METADATA} (the shared/ folder)")
    return METADATA


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by the whole session, with explicit small resources."""
    import ray

    from pipeline.ray_env import ensure_ray

    # the product's own start-up: the dashboard (loopback) serves the state API that Train's
    # cleanup and tests use, and its address is passed to the workers
    ensure_ray(num_cpus=2, object_store_memory=512 * 1024**2, log_to_driver=False,
               configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """A tiny synthetic benchmark (real mp4 files) shared by tests that read clips."""
    from pipeline.config import SynthConfig
    from pipeline.synth import generate

    out = tmp_path_factory.mktemp("synth_small")
    cfg = SynthConfig(clips=24, labeled=6, test=6, seed=7, duration=2.0, workers=2)
    generate(cfg, out, progress=False)
    return out


@pytest.fixture()
def one_torch_thread():
    """One intra-op thread: the 2-core machine is shared, and OpenMP with 2 threads slows down
    badly when the other core is busy. Restored afterwards for other test files."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_base(tmp_path_factory, ray_session):
    """The smoke config pointed at a private folder, its data synthesised and preprocessed."""
    from pipeline.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("smoke_run")
    cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={root / 'data'}", f"train.storage={root / 'ray_results'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}"])
    summary = prepare_dataset(cfg, say=lambda *_: None)
    assert summary["rows"] == cfg.data.synth.clips
    return cfg


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    """A smoke-config checkpoint made without Ray (make_state + checkpoint.save): the folder."""
    from pipeline.dmt.state import make_state
    from pipeline.engine import checkpoint as ckpt_io

    cfg = C.load(REPO / "jobs/configs/smoke.yaml")
    state = make_state(cfg.model, cfg.dmt, cfg.optim, "cpu", seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate)
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoint_000000"
    ckpt_io.save(folder, state.state_dict(), epoch=0, config=C.to_dict(cfg))
    return folder


@pytest.fixture(scope="session")
def clip_video(tmp_path_factory) -> Path:
    """One real mp4 (moving square, 440 Hz tone), 3.2 s at 10 fps."""
    from tests.media import sine, write_clip

    path = tmp_path_factory.mktemp("videos") / "clip_a.mp4"
    return write_clip(path, seconds=3.2, fps=10, width=160, height=120,
                      audio=sine(440, 3.2, 16000), sample_rate=16000)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """A folder of real, awkward media files + VGG-SS style annotations + id lists
    (tests/preprocess_helpers.py), shared by test_preprocess.py and test_preprocess_decode.py."""
    try:
        from tests.preprocess_helpers import make_clips
    except ImportError:  # pytest run without the repo root on sys.path
        from preprocess_helpers import make_clips

    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def direct_rows(clips) -> dict[str, dict]:
    """Every planned clip of ``clips`` decoded by the plain per-clip function, no Ray."""
    from pipeline.data import DecodeOptions, build_plan, make_row

    try:
        from tests.preprocess_helpers import SMALL, _plan_args
    except ImportError:  # pytest run without the repo root on sys.path
        from preprocess_helpers import SMALL, _plan_args

    plan = build_plan(clips / "videos", **_plan_args(clips))
    opts = DecodeOptions.from_config(SMALL)
    return {it["id"]: make_row(it, opts) for it in plan.items}
