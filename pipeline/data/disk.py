"""What a full device means for a preprocessing run: how much the clips left still need.

Shards are written whole or not at all (``locations.write_atomically`` removes a half-written
temp file), so after a write meets a full device the partial folder holds only complete shards
and fragments; the rerun resumes from them (``pipeline.data.resume``). This module turns the
failure into one message: the folder, the bytes free, the bytes the clips left need (measured
from the shards already written, else estimated from the decode options) and what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.data.resume import FRAGMENT_GLOB, PART_GLOB
from pipeline.errors import DiskFullError

JPEG_BYTES_ESTIMATE = 30_000  # a 224-px frame at quality 90, before any shard says better
SLACK = 1.1  # Parquet footers, quarantine fragments, summary.json


def written(folder: Path) -> tuple[int, int, int]:
    """(rows, their bytes, quarantined clips) of the whole files in ``folder``."""
    rows = size = quarantined = 0
    for part in folder.glob(PART_GLOB):
        try:
            rows += pq.read_metadata(part).num_rows
            size += part.stat().st_size
        except OSError:
            continue
    for fragment in folder.glob(FRAGMENT_GLOB):
        quarantined += sum(1 for line in fragment.read_text().splitlines() if line.strip())
    return rows, size, quarantined


def row_bytes(opts) -> int:
    """Bytes a row takes by the decode options: JPEG frame, int16 PCM, spectrogram."""
    audio = int(round(opts.audio_seconds * opts.sample_rate)) * 2
    spec = 0
    if opts.store_spectrogram:
        spec = (opts.spec_n_fft // 2 + 1) * (audio // 2 // opts.spec_hop + 1) * 2
    return JPEG_BYTES_ESTIMATE + audio + spec


def disk_full(folder: Path, clips: int, opts) -> DiskFullError:
    """The error for a run of ``clips`` inputs into ``folder`` that met a full device."""
    rows, size, quarantined = written(folder)
    per_row = size / rows if rows else row_bytes(opts)
    basis = f"{rows} rows written so far" if rows else "estimated from the decode options"
    left = max(0, clips - rows - quarantined)
    need = int(left * per_row * SLACK)
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    return DiskFullError(
        f"no space left on the device writing {folder}: {free:,} bytes free, the {left} clips "
        f"left need about {need:,} bytes more ({per_row / 1024:.0f} KiB a row, {basis}). "
        f"Every shard written is whole and kept; free space (or choose another --out) and "
        f"rerun the same command: it resumes")
