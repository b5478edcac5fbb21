"""Localize the sounding object in one new video with a trained checkpoint (`dmt localize`).

The clip goes through exactly the preprocessing and training input path: ``decode_clip`` with the
checkpoint's own ``data`` decode options (middle frame, audio window around it), then the
``ToTrainingBatch`` conversion (frame squashed to ``model.image_size`` square, uint8 -> float in
[0, 1], PCM -> waveform). The map is that of the checkpoint's reported role (``dmt.eval_model``,
teacher mean for DMT), 224x224 in [0, 1]. The box is the bounding box of the region of
``map >= threshold`` (8-connected) that holds the map's maximum.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
BOX_THRESHOLD = 0.5


class LocalizeError(Exception):
    """An input that cannot be used (video, checkpoint); the message names the file."""


@dataclass
class Localization:
    id: str
    video: str
    checkpoint: str
    model: str
    map: np.ndarray  # (224, 224) float32 in [0, 1]
    box: list[float]  # normalised xmin, ymin, xmax, ymax
    peak: tuple[int, int]  # (row, col) of the map's maximum
    frame: np.ndarray  # the decoded frame (H, W, 3) uint8, aspect kept
    frame_time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "video": self.video, "checkpoint": self.checkpoint,
            "model": self.model, "frame_time": round(self.frame_time, 4),
            "box": [round(v, 4) for v in self.box],
            "box_threshold": BOX_THRESHOLD,
            "peak": {"x": (self.peak[1] + 0.5) / self.map.shape[1],
                     "y": (self.peak[0] + 0.5) / self.map.shape[0]},
            "map": np.round(self.map.astype(np.float64), 4).tolist(),
        }


def resolve_checkpoint(spec: str, tracking_uri: str = "",
                       download_dir: str | os.PathLike | None = None) -> Path:
    """A local ``state.pt`` for a file, a folder holding one, or an MLflow artifact URI
    (``runs:/<id>/model``, ``models:/<name>/<version>``), downloaded from ``tracking_uri``
    (default ``$MLFLOW_TRACKING_URI`` or ./mlflow.db)."""
    from pipeline.engine import checkpoint as ckpt_io

    if spec.startswith(MLFLOW_SCHEMES):
        from pipeline import tracking

        uri = tracking.resolve_tracking_uri(tracking_uri)
        dst = Path(download_dir or tempfile.mkdtemp(prefix="dmt-localize-"))
        try:
            local = tracking.download_artifacts(uri, spec, dst)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
            raise LocalizeError(f"--checkpoint {spec}: cannot download from {uri}: "
                                f"{type(exc).__name__}: {exc}") from None
        spec_path = Path(local)
    else:
        spec_path = Path(spec)
    try:
        return ckpt_io.find(spec_path)
    except FileNotFoundError as exc:
        raise LocalizeError(f"--checkpoint {spec}: {exc}") from None


def peak_box(heat: np.ndarray, threshold: float = BOX_THRESHOLD
             ) -> tuple[list[float], tuple[int, int]]:
    """Normalised (xmin, ymin, xmax, ymax) of the 8-connected region of ``heat >= threshold``
    that holds the maximum (the threshold drops to the maximum if that is lower), and the
    maximum's (row, col). Pixel edges: a one-pixel region at column c spans [c, c + 1] / W."""
    h, w = heat.shape
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    mask = heat >= min(threshold, float(heat[peak]))
    seen = np.zeros_like(mask)
    seen[peak] = True
    queue = deque([peak])
    r0 = r1 = peak[0]
    c0 = c1 = peak[1]
    while queue:
        r, c = queue.popleft()
        r0, r1, c0, c1 = min(r0, r), max(r1, r), min(c0, c), max(c1, c)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
    return [c0 / w, r0 / h, (c1 + 1) / w, (r1 + 1) / h], (int(peak[0]), int(peak[1]))


def localize(video: str | os.PathLike, checkpoint: str, *, device: str = "cpu",
             tracking_uri: str = "") -> Localization:
    """Decode ``video``, run the checkpoint's reported model, return its map and box."""
    import torch

    from pipeline.data.codecs import decode_jpeg
    from pipeline.data.decode import ClipError, DecodeOptions, decode_clip
    from pipeline.dmt.step import predict_maps
    from pipeline.engine.batches import ToTrainingBatch, to_torch
    from pipeline.engine.evaluation import reported_role
    from pipeline.engine.offline import load_state

    if device == "cuda" and not torch.cuda.is_available():
        raise LocalizeError("--device cuda: no CUDA device is available here")
    with tempfile.TemporaryDirectory(prefix="dmt-localize-") as tmp:  # MLflow downloads
        file = resolve_checkpoint(checkpoint, tracking_uri, tmp)
        try:
            state, cfg, _ = load_state(file, device)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise LocalizeError(f"--checkpoint {checkpoint}: cannot load {file.name}: "
                                f"{exc}") from None

    video = Path(video)
    clip_id = video.stem
    try:
        row = decode_clip(video, clip_id, DecodeOptions.from_config(cfg.data))
    except ClipError as exc:
        raise LocalizeError(f"{video}: cannot use this video: {exc.reason}") from None

    convert = ToTrainingBatch(cfg.model.image_size, None)
    batch = convert({"id": np.array([clip_id]),
                     "frame_jpeg": np.array([row["frame_jpeg"]], dtype=object),
                     "audio": np.array([row["audio"]], dtype=object),
                     "has_boxes": np.array([False])})
    role = reported_role(state.method, cfg.dmt.eval_model)
    with torch.no_grad():
        heat = predict_maps(state, to_torch(batch, state.device), role)
    heat = heat[0].float().cpu().numpy().clip(0.0, 1.0)
    box, peak = peak_box(heat)
    return Localization(id=clip_id, video=str(video), checkpoint=checkpoint, model=role,
                        map=heat, box=box, peak=peak, frame=decode_jpeg(row["frame_jpeg"]),
                        frame_time=float(row["frame_time"]))


def overlay_png(result: Localization) -> bytes:
    """The frame with the map over it and the predicted box (dashed yellow)."""
    from pipeline.engine.heatmaps import overlay_grid_png

    title = f"{result.id} ({result.model}, t={result.frame_time:.2f}s)"
    return overlay_grid_png([{"frame": result.frame, "map": result.map, "boxes": (),
                              "pred_box": result.box, "title": title}], columns=1)
