"""The output folder and its resumable ``.<out>.partial/`` twin: what is already done there,
repairs after an interruption, and the final swap into ``out``. See
:mod:`pipeline.data.preprocess`.

Both may be object-storage prefixes (``s3://...``, :mod:`pipeline.locations`): there is no
rename there, so the swap deletes the old ``out`` and copies the partial folder's objects into
it, ``summary.json`` last; until that copy ends ``out`` is not a finished shards folder, and a
run interrupted in between finds the partial folder complete and copies it again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline import locations
from pipeline.data import schema
from pipeline.data.plan import clip_key
from pipeline.data.writer import atomic_write_bytes

SUMMARY = "summary.json"
QUARANTINE = "quarantine.jsonl"
STATE = "state.json"
PART_GLOB = "part-*.parquet"
FRAGMENT_GLOB = "quarantine-*.jsonl"


class PreprocessError(RuntimeError):
    """The run cannot proceed or its result failed a consistency check."""


# ---------------------------------------------------------------- resume

def scan_folder(folder: Path, *, repair: bool) -> tuple[dict[str, dict], list[dict], list[str]]:
    """Keys already done in ``folder``: ``({key: shard info}, quarantine records, notes)``.
    With ``repair``, leftovers of an interrupted write (temp files, unreadable shards or
    fragments) are deleted so their clips are decoded again."""
    notes: list[str] = []
    done: dict[str, dict] = {}
    quarantined: list[dict] = []
    for tmp in folder.glob(".*.inprogress"):
        if repair:
            tmp.unlink(missing_ok=True)
            notes.append(f"removed partial write {tmp.name}")
    for f in sorted(folder.glob(PART_GLOB)):
        try:
            fs, where = locations.fs_path(f)
            schema.check_schema(pq.read_schema(where, filesystem=fs), str(f))
            t = pq.read_table(where, filesystem=fs, columns=["id", "path", "split",
                                                             "frame_decoder", "audio_decoder"])
        except Exception as exc:  # noqa: BLE001 - an unreadable shard is redone
            if not repair:
                raise PreprocessError(f"{f}: unreadable shard: {exc}") from None
            f.unlink(missing_ok=True)
            notes.append(f"removed unreadable shard {f.name}")
            continue
        for i, p, s, fd, ad in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
            k = clip_key(i, p)
            if k in done:
                raise PreprocessError(f"clip {i!r} ({p}) is in two shards: "
                                      f"{done[k]['file']} and {f.name}")
            done[k] = {"file": f.name, "split": s, "id": i, "frame_decoder": fd,
                       "audio_decoder": ad}
    for f in sorted(folder.glob(FRAGMENT_GLOB)):
        try:
            recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            if not all({"id", "path", "reason"} <= set(r) for r in recs):
                raise ValueError("missing keys")
        except Exception:  # noqa: BLE001
            if not repair:
                raise PreprocessError(f"{f}: unreadable quarantine fragment") from None
            f.unlink(missing_ok=True)
            notes.append(f"removed unreadable quarantine fragment {f.name}")
            continue
        quarantined.extend(recs)
    return done, quarantined, notes


def _is_output_folder(path: Path) -> bool:
    """Only folders this module wrote (or empty ones) may be replaced."""
    if not path.is_dir():
        return False
    names = [p.name for p in path.iterdir()]
    if not names:
        return True
    if SUMMARY in names:
        try:
            return "schema_version" in json.loads((path / SUMMARY).read_text())
        except (OSError, json.JSONDecodeError):
            return False
    return all(n.startswith(("part-", "quarantine")) for n in names)


def install(tmp: Path, out: Path) -> None:
    if out.exists():
        if not _is_output_folder(out):
            raise PreprocessError(
                f"{out} exists and is not a shards folder written by `dmt preprocess` (no "
                f"summary.json); choose another --out or empty it")
    if locations.is_remote(out):  # no rename in object storage (see the module docstring)
        locations.rmtree(out, ignore_errors=True)
        locations.move_folder(tmp, out, last=(SUMMARY,))
    elif out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def up_to_date(out: Path, fp: str, force: bool) -> dict[str, Any] | None:
    """The summary of ``out`` if it already holds a complete result of fingerprint ``fp``
    (and not ``force``), else None. Leftovers of an earlier swap are removed first."""
    for stale in out.parent.glob(f".{out.name}.old-*"):
        locations.rmtree(stale, ignore_errors=True)
    if not force and (out / SUMMARY).is_file():
        try:
            old = json.loads((out / SUMMARY).read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if (old.get("fingerprint") == fp and old.get("complete")
                and all((out / s["file"]).is_file() for s in old.get("shards", []))):
            old["up_to_date"] = True
            return old
    return None


def open_partial(tmp: Path, out: Path, fp: str, force: bool) -> dict[str, Any] | None:
    """Make ``tmp`` the work folder of a run with fingerprint ``fp``: one of another fingerprint
    (or any, with ``force``) is started over. One already complete is swapped into ``out`` and
    its summary returned; otherwise None."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        state = {}
        for name in (SUMMARY, STATE):  # a complete summary wins over the run state
            try:
                state = json.loads((tmp / name).read_text())
                break
            except (OSError, json.JSONDecodeError):
                continue
        if force or state.get("fingerprint") != fp:
            locations.rmtree(tmp)
        elif state.get("complete"):  # finished but not yet swapped in
            for frag in tmp.glob(FRAGMENT_GLOB):
                frag.unlink()
            install(tmp, out)
            state["up_to_date"] = True
            return state
    tmp.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(tmp / STATE, json.dumps({"fingerprint": fp}).encode())
    return None
