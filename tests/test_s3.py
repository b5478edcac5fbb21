"""Object storage (issue 19 item 7): shards in a bucket of a real S3-compatible server (moto's
standalone server, started on 127.0.0.1 by the test). Training from the bucket with checkpoints
in it and --resume are not covered here yet."""

from __future__ import annotations

import pytest

from pipeline.config import DataConfig
from pipeline.data import reader
from pipeline.data.preprocess import run_preprocess
from pipeline.data.verify import verify_shards

try:
    from tests.s3_server import moto_server
except ImportError:  # pytest run without the repo root on sys.path
    from s3_server import moto_server


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.create_bucket("dmt")
        yield server


def test_preprocess_into_a_bucket_resume_and_read_back(s3, synth_small):
    out = s3.uri("dmt", "shards")
    kwargs = dict(annotations=synth_small / "annotations.json", lists=synth_small,
                  engine="local", data=DataConfig(rows_per_file=8))
    summary = run_preprocess(synth_small / "videos", out, **kwargs)
    keys = s3.keys("dmt")
    assert "shards/summary.json" in keys and not summary["up_to_date"]
    assert sum(k.startswith("shards/part-") for k in keys) == len(summary["shards"])
    assert not [k for k in keys if ".partial" in k]  # the partial folder was moved in
    assert run_preprocess(synth_small / "videos", out, **kwargs)["up_to_date"]
    assert verify_shards(out, ("labeled", "test"))["rows"] == summary["rows"]
    assert reader.is_shards_folder(out)
    assert sum(reader.split_counts(out).values()) == summary["rows"]
    assert len(reader.read_clips(out, reader.split_ids(out, "test")[:2])) == 2
