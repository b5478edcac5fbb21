"""dmt synth repeats: the same config gives the same files, byte for byte, whatever the worker
count or what the heap held before."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import SynthConfig
from pipeline.synth import generate
from pipeline.synth.annotations import vggss_entry
from pipeline.synth.scene import sample_scene


def test_same_seed_same_files_different_seed_differs(tmp_path: Path):
    tiny = dict(clips=3, labeled=1, test=1, duration=0.5, frame_size=64, fps=10)
    a = generate(SynthConfig(seed=3, workers=1, **tiny), tmp_path / "a", progress=False)
    b = generate(SynthConfig(seed=3, workers=2, **tiny), tmp_path / "b", progress=False)
    assert a["workers"] == 1 and b["workers"] == 2
    videos = [f"videos/synth_{i:06d}.mp4" for i in range(3)]
    for name in ("annotations.json", "labeled.txt", "unlabeled.txt", "test.txt", *videos):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    meta_a, meta_b = (json.loads((tmp_path / d / "meta.json").read_text()) for d in "ab")
    assert meta_a["config"].pop("workers") == 1 and meta_b["config"].pop("workers") == 2
    assert meta_a == meta_b

    other = SynthConfig(seed=4, **tiny)
    assert ([vggss_entry(other, sample_scene(other, i)) for i in range(3)]
            != json.loads((tmp_path / "a" / "annotations.json").read_text()))


# glibc fills every fresh allocation with this byte (0 = leave it as it was): an encoder that
# reads memory it never wrote gives other bytes under each pattern.
_ENCODE_IN_CHILD = """
import sys
from pathlib import Path
from pipeline.config import SynthConfig
from pipeline.synth import generate
cfg = SynthConfig(version=2, clips=6, labeled=1, test=1, rotation=45, hue_spread=15, workers=1)
generate(cfg, Path(sys.argv[1]), progress=False)
"""


def test_encoded_clips_do_not_depend_on_uninitialised_memory(tmp_path: Path):
    """The same config gives the same mp4 bytes, whatever the heap held before (x264's
    macroblock tree read uninitialised memory: 2% of a benchmark's files differed between
    two syntheses, and a benchmark row trained on them moved by up to 7 CIoU points)."""
    import os
    import subprocess
    import sys

    digests = []
    for pattern in ("1", "170"):
        out = tmp_path / f"perturb{pattern}"
        env = {**os.environ, "MALLOC_PERTURB_": pattern}
        subprocess.run([sys.executable, "-c", _ENCODE_IN_CHILD, str(out)], env=env, check=True)
        videos = sorted((out / "videos").glob("*.mp4"))
        assert len(videos) == 6
        digests.append({v.name: v.read_bytes() for v in videos})
    assert digests[0].keys() == digests[1].keys()
    assert [name for name in digests[0] if digests[0][name] != digests[1][name]] == []
    meta = json.loads((tmp_path / "perturb1" / "meta.json").read_text())
    assert meta["encoder"]["video"] == "libx264" and meta["encoder"]["mbtree"] == "0"
