"""The two preprocessing engines: Ray Data (``engine="ray"``) and a plain loop (``"local"``).

Both decode the pending clips with :class:`ClipDecoder` and write them with
:func:`write_shard`; see :mod:`pipeline.data.preprocess` for how Ray bundles rows into shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.data.decode import ClipDecoder, DecodeOptions
from pipeline.data.writer import write_shard


def _shard_sink_class():
    from ray.data import Datasink

    class ShardSink(Datasink):
        """Writes each write task's rows with :func:`write_shard` (see the module docstring)."""

        def __init__(self, folder: str, rows_per_file: int, block_rows: int = 1):
            self.folder = str(folder)
            self.rows_per_file = int(rows_per_file)
            self.block_rows = max(1, int(block_rows))

        @property
        def min_rows_per_write(self) -> int:
            # Ray adds whole blocks (one decode batch each) until it reaches this count; aiming
            # one block short of rows_per_file makes full bundles land at <= rows_per_file, so
            # they become one shard instead of two half-size ones.
            return max(1, self.rows_per_file - self.block_rows + 1)

        def write(self, blocks, ctx) -> dict[str, Any]:
            from ray.data.block import BlockAccessor

            return write_shard((BlockAccessor.for_block(b).to_arrow() for b in blocks),
                               self.folder, max_rows=self.rows_per_file)

        def get_name(self) -> str:
            return "WriteShards"

    return ShardSink


def ShardSink(folder: str | Path, rows_per_file: int, block_rows: int = 1):  # noqa: N802
    """The Ray Data datasink (a factory, so importing this module does not import Ray)."""
    return _shard_sink_class()(str(folder), rows_per_file, block_rows)


def run_ray(pending: list[dict[str, Any]], folder: Path, opts: DecodeOptions, *,
             batch_size: int, concurrency: int, rows_per_file: int, num_cpus: float,
             progress: bool, label_selector: dict[str, str] | None = None) -> None:
    """Decode and write with Ray Data tasks (on the nodes ``label_selector`` names, if any)."""
    import ray

    from pipeline.ray_env import ensure_ray

    ensure_ray()
    ctx = ray.data.DataContext.get_current()
    old_bars, old_labels = ctx.enable_progress_bars, ctx.execution_options.label_selector
    ctx.enable_progress_bars = progress
    ctx.execution_options.label_selector = label_selector
    try:
        n_blocks = max(1, min(len(pending), -(-len(pending) // batch_size)))
        ds = ray.data.from_items(pending, override_num_blocks=n_blocks)
        ds = ds.map_batches(ClipDecoder(opts), batch_size=batch_size, batch_format="pyarrow",
                            compute=ray.data.TaskPoolStrategy(size=concurrency),
                            num_cpus=num_cpus)
        ds.write_datasink(ShardSink(folder, rows_per_file, block_rows=batch_size),
                          ray_remote_args={"num_cpus": min(num_cpus, 0.25)})
    finally:
        ctx.enable_progress_bars = old_bars
        ctx.execution_options.label_selector = old_labels


def run_local(pending: list[dict[str, Any]], folder: Path, opts: DecodeOptions, *,
               batch_size: int, rows_per_file: int) -> None:
    """The same decode + shard writing in this process (tests, debugging, the benchmark)."""
    decoder = ClipDecoder(opts)
    buffered: list[pa.Table] = []
    n = 0
    for start in range(0, len(pending), batch_size):
        table = decoder(pending[start:start + batch_size])
        buffered.append(table)
        n += table.num_rows
        if n >= max(1, rows_per_file - batch_size + 1):
            write_shard(buffered, folder, max_rows=rows_per_file)
            buffered, n = [], 0
    if buffered:
        write_shard(buffered, folder, max_rows=rows_per_file)
