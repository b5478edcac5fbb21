"""PNG overlays of localization maps on their frames, for MLflow and `dmt localize`."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib
from PIL import Image

from pipeline.data import reader
from pipeline.data.codecs import decode_jpeg
from pipeline.dmt.step import predict_maps
from pipeline.engine.batches import rows_to_batch, to_torch
from pipeline.engine.evaluation import reported_role

matplotlib.use("Agg")  # headless: workers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def _draw(ax, frame: np.ndarray, heat: np.ndarray, boxes: Sequence[Sequence[float]],
          title: str, pred_box: Sequence[float] | None = None) -> None:
    """frame (H, W, 3) uint8; heat (h, w) in [0, 1], stretched over the frame; boxes normalised."""
    h, w = frame.shape[:2]
    ax.imshow(frame)
    ax.imshow(heat, cmap="jet", alpha=0.45, extent=(0, w, h, 0), vmin=0.0, vmax=1.0)
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h,
                               fill=False, edgecolor="white", linewidth=2))
    if pred_box is not None:
        x0, y0, x1, y1 = pred_box
        ax.add_patch(Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h,
                               fill=False, edgecolor="yellow", linewidth=2, linestyle="--"))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def overlay_grid_png(items: Sequence[dict], columns: int = 3, suptitle: str = "") -> bytes:
    """One PNG with a panel per item.

    Each item: ``frame`` (H, W, 3) uint8, ``map`` (h, w) in [0, 1], ``boxes`` (true boxes,
    normalised; white), optional ``pred_box`` (normalised; dashed yellow) and ``title``.
    """
    n = max(len(items), 1)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.axis("off")
    for ax, item in zip(axes.flat, items, strict=False):
        _draw(ax, item["frame"], item["map"], item.get("boxes", ()), item.get("title", ""),
              item.get("pred_box"))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap_clips(shards, n: int) -> list[dict]:
    """The rows drawn at every evaluation: the first ``n`` test ids in sorted order (a fixed
    set, so the overlays of successive epochs show the same clips); none when ``n`` is 0."""
    return reader.read_clips(shards, reader.split_ids(shards, "test")[:n]) if n > 0 else []


def clips_png(state, cfg, clips: Sequence[dict], title: str) -> bytes | None:
    """The reported model's maps over a few shard rows (``reader.read_clips``), one panel each,
    true boxes drawn; None without clips (``tracking.heatmaps=0``)."""
    if not clips:
        return None

    batch = to_torch(rows_to_batch(list(clips), cfg.model.image_size), state.device)
    role = reported_role(state.method, cfg.dmt.eval_model)
    maps = predict_maps(state, batch, role).cpu().numpy()
    items = [{"frame": decode_jpeg(c["frame_jpeg"]), "map": m, "boxes": c["boxes"],
              "title": c["id"]} for m, c in zip(maps, clips, strict=True)]
    return overlay_grid_png(items, suptitle=title)


def png_image(png: bytes) -> np.ndarray:
    """PNG bytes as an (H, W, 3) uint8 array (MLflow's ``log_image`` takes arrays)."""
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))
