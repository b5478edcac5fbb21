"""The end of a preprocessing run: the shards checked against the plan, ``quarantine.jsonl``
and ``summary.json`` (counts per split, quarantine reasons, missing ids, shards, options,
versions, timings). See :mod:`pipeline.data.preprocess`.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.data import schema
from pipeline.data.decode import DecodeOptions
from pipeline.data.inputs import FramesAudio
from pipeline.data.media import FROM_START
from pipeline.data.plan import Plan, clip_key
from pipeline.data.resume import (
    FRAGMENT_GLOB,
    PART_GLOB,
    QUARANTINE,
    STATE,
    SUMMARY,
    PreprocessError,
    scan_folder,
)
from pipeline.data.writer import atomic_write_bytes


def _category(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0].strip()


# ---------------------------------------------------------------- finalize

def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("ray", "pyarrow", "av", "numpy", "pillow", "torchaudio"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _check_against_plan(plan: Plan, done: dict[str, dict], quarantined: list[dict]) -> None:
    """Every planned input exactly once, in a shard or in the quarantine; no id twice in the
    shards."""
    planned = Counter(clip_key(it["id"], it["path"]) for it in plan.items)
    q_keys = Counter(clip_key(r["id"], r["path"]) for r in quarantined)
    got = Counter(done.keys()) + q_keys
    lost = planned - got
    extra = got - planned
    if lost or extra:
        raise PreprocessError(
            f"shards do not match the plan: {sum(lost.values())} clips missing "
            f"(e.g. {list(lost)[:3]}), {sum(extra.values())} unexpected or duplicated "
            f"(e.g. {list(extra)[:3]}); rerun to resume")
    ids = Counter(info["id"] for info in done.values())
    dup_ids = [i for i, c in ids.items() if c > 1]
    if dup_ids:
        raise PreprocessError(f"ids in more than one shard row: {dup_ids[:5]}")


def _split_counts(plan: Plan, done: dict[str, dict],
                  quarantined: list[dict]) -> dict[str, dict[str, int]]:
    """Inputs, rows and quarantined clips per split (``"none"`` for clips in no id list)."""
    splits: dict[str, dict[str, int]] = {}
    for it in plan.items:
        splits.setdefault(it["split"] or "none", {"inputs": 0, "rows": 0, "quarantined": 0})
        splits[it["split"] or "none"]["inputs"] += 1
    for info in done.values():
        splits[info["split"] or "none"]["rows"] += 1
    for r in quarantined:
        splits[r.get("split") or "none"]["quarantined"] += 1
    return splits


FROM_START_IDS_SHOWN = 50


def decoded_from_start(done: dict[str, dict]) -> dict[str, Any]:
    """How many rows' frame / audio had to be decoded from the stream's start (the seek landed
    after the asked-for time), and the first ids of each."""
    out: dict[str, Any] = {}
    for kind in ("frame", "audio"):
        ids = sorted(info["id"] for info in done.values()
                     if info.get(f"{kind}_decoder") == FROM_START)
        out[kind] = len(ids)
        out[f"{kind}_ids"] = ids[:FROM_START_IDS_SHOWN]
    return out


def finalize(tmp: Path, plan: Plan, fp: str, meta: dict[str, Any]) -> dict[str, Any]:
    done, quarantined, notes = scan_folder(tmp, repair=False)
    _check_against_plan(plan, done, quarantined)

    quarantined.sort(key=lambda r: (r["id"], r["path"]))
    atomic_write_bytes(tmp / QUARANTINE, "".join(
        json.dumps({k: r.get(k, "") for k in schema.QUARANTINE_FIELDS}) + "\n"
        for r in quarantined).encode())

    shards = []
    per_file = Counter(info["file"] for info in done.values())
    for f in sorted(tmp.glob(PART_GLOB)):
        shards.append({"file": f.name, "rows": per_file[f.name], "bytes": f.stat().st_size})
    shard_bytes = sum(s["bytes"] for s in shards)
    rows = len(done)

    splits = _split_counts(plan, done, quarantined)

    summary = {
        "schema_version": schema.SCHEMA_VERSION,
        "fingerprint": fp,
        "complete": True,
        "inputs": len(plan.items),
        "rows": rows,
        "quarantined": len(quarantined),
        "splits": dict(sorted(splits.items())),
        "quarantine_reasons": dict(Counter(_category(r["reason"]) for r in quarantined)
                                   .most_common()),
        "missing": plan.missing,
        "missing_count": len(plan.missing),
        "missing_by_split": plan.missing_by_split,
        "without_box": plan.without_box,
        "annotations": plan.annotations,
        "lists": plan.lists,
        "shards": shards,
        "shard_bytes": shard_bytes,
        "bytes_per_row": round(shard_bytes / rows, 1) if rows else 0.0,
        "decoded_from_start": decoded_from_start(done),
        "notes": notes,
        **meta,
    }
    assert summary["inputs"] == summary["rows"] + summary["quarantined"]
    atomic_write_bytes(tmp / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    for frag in tmp.glob(FRAGMENT_GLOB):
        frag.unlink()
    (tmp / STATE).unlink(missing_ok=True)
    return summary


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return asdict(obj)
    return obj


def run_meta(engine: str, done_keys: set[str], pending: list[dict[str, Any]],
              notes: list[str], *, opts: DecodeOptions, data: Any, config: dict | None,
              videos: str | Path, t_plan: float, t_decode: float) -> dict[str, Any]:
    """What a run records in its summary beside the counts: engine, resume work, options,
    config, versions, timings."""
    return {
        "engine": engine,
        "resumed": {"already_done": len(done_keys), "decoded_now": len(pending),
                    "repairs": notes},
        "decode_options": opts.to_dict(),
        "data_config": _jsonable(data),
        "config": config or {},
        "inputs_source": ({"frames": str(videos.frames), "audio": str(videos.audio)}
                          if isinstance(videos, FramesAudio) else str(Path(videos).resolve())),
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "timings": {"plan_s": round(t_plan, 3), "decode_write_s": round(t_decode, 3)},
        "clips_per_s": round(len(pending) / t_decode, 2) if pending and t_decode > 0 else None,
    }
