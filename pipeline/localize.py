"""Localize the sounding object in new clips with a trained checkpoint (`dmt localize`, and the
MLflow model's ``predict``: both go through one :class:`Localizer`).

A clip goes through exactly the preprocessing and training input path: ``decode_clip`` (a video)
or ``decode_pair`` (a frame image + audio file, the frames+audio layout) with the checkpoint's
own ``data`` decode options (middle frame, audio window around it), then the ``ToTrainingBatch``
conversion (frame squashed to ``model.image_size`` square, uint8 -> float in [0, 1], PCM ->
waveform). The map is that of the checkpoint's reported role (``dmt.eval_model``, teacher mean
for DMT), 224x224 in [0, 1]. The box is the bounding box of the region of ``map >= threshold``
(8-connected) that holds the map's maximum.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.codecs import decode_jpeg
from pipeline.data.decode import ClipError, DecodeOptions, decode_clip, decode_pair
from pipeline.dmt.step import predict_maps
from pipeline.engine import checkpoint as ckpt_io
from pipeline.engine.batches import ToTrainingBatch, to_torch
from pipeline.engine.evaluation import reported_role
from pipeline.engine.heatmaps import overlay_grid_png
from pipeline.engine.offline import load_state

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
    frame_time: float  # seconds into the video; -1 for a frame image (time unknown)
    audio: str = ""  # the audio file of a frame + audio pair ('' for a video)

    @property
    def peak_xy(self) -> dict[str, float]:
        """The centre of the map's maximum pixel, normalised (x right, y down)."""
        return {"x": (self.peak[1] + 0.5) / self.map.shape[1],
                "y": (self.peak[0] + 0.5) / self.map.shape[0]}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "video": self.video, "checkpoint": self.checkpoint,
            "model": self.model, "frame_time": round(self.frame_time, 4),
            "box": [round(v, 4) for v in self.box],
            "box_threshold": BOX_THRESHOLD,
            "peak": self.peak_xy,
            "map": np.round(self.map.astype(np.float64), 4).tolist(),
            **({"audio": self.audio} if self.audio else {}),
        }


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


class Localizer:
    """A checkpoint loaded once (state, config, decode options, reported role) that localizes
    any number of inputs: :meth:`video` for a clip, :meth:`pair` for a frame image + audio file.
    ``dmt localize`` and the MLflow model's ``predict`` both use it."""

    def __init__(self, state: Any, cfg: Any, checkpoint: str):
        self.state, self.cfg, self.checkpoint = state, cfg, checkpoint
        self.options = DecodeOptions.from_config(cfg.data)
        self.role = reported_role(state.method, cfg.dmt.eval_model)
        self._convert = ToTrainingBatch(cfg.model.image_size, None)

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, *, device: str = "cpu",
             name: str = "") -> Localizer:
        """From a local ``state.pt`` or a folder holding one (checkpoints by URI:
        ``pipeline.checkpoint_uri.load_localizer``); ``name``: how results name the checkpoint
        (default: the path). LocalizeError naming the checkpoint if it cannot load."""
        name = name or str(checkpoint)
        if device == "cuda" and not torch.cuda.is_available():
            raise LocalizeError("--device cuda: no CUDA device is available here")
        try:
            file = ckpt_io.find(checkpoint)
        except FileNotFoundError as exc:
            raise LocalizeError(f"{name}: {exc}") from None
        try:
            state, cfg, _ = load_state(file, device)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise LocalizeError(f"{name}: cannot load {file.name}: {exc}") from None
        return cls(state, cfg, name)

    def video(self, path: str | os.PathLike, clip_id: str | None = None) -> Localization:
        """Localize in one video (id: its file stem unless given)."""
        path = Path(path)
        clip_id = clip_id or path.stem
        try:
            row = decode_clip(path, clip_id, self.options)
        except ClipError as exc:
            raise LocalizeError(f"{path}: cannot use this video: {exc.reason}") from None
        return self._predict(row, str(path), "")

    def pair(self, frame: str | os.PathLike, audio: str | os.PathLike,
             clip_id: str | None = None) -> Localization:
        """Localize in a frame image + audio file (the frames+audio layout; the audio window is
        centred on the middle of the track, as preprocessing does). Id: the frame's stem."""
        frame, audio = Path(frame), Path(audio)
        clip_id = clip_id or frame.stem
        for kind, path in (("frame", frame), ("audio", audio)):
            if not path.is_file():  # decode_pair's reasons do not say which side is missing
                raise LocalizeError(f"{path}: cannot use this {kind} file: file not found")
        try:
            row = decode_pair(frame, audio, clip_id, self.options)
        except ClipError as exc:
            raise LocalizeError(f"{frame} + {audio}: cannot use this frame and audio: "
                                f"{exc.reason}") from None
        return self._predict(row, str(frame), str(audio))

    def _predict(self, row: dict[str, Any], source: str, audio: str) -> Localization:
        """A decoded row -> the reported model's map (224, 224) in [0, 1] and its box."""
        batch = self._convert({"id": np.array([row["id"]]),
                               "frame_jpeg": np.array([row["frame_jpeg"]], dtype=object),
                               "audio": np.array([row["audio"]], dtype=object),
                               "has_boxes": np.array([False])})
        with torch.no_grad():
            heat = predict_maps(self.state, to_torch(batch, self.state.device), self.role)
        heat = heat[0].float().cpu().numpy().clip(0.0, 1.0)
        box, peak = peak_box(heat)
        return Localization(id=row["id"], video=source, checkpoint=self.checkpoint,
                            model=self.role, map=heat, box=box, peak=peak,
                            frame=decode_jpeg(row["frame_jpeg"]),
                            frame_time=float(row["frame_time"]), audio=audio)


def localize(video: str | os.PathLike, checkpoint: str | os.PathLike, *,
             device: str = "cpu") -> Localization:
    """One video with one local checkpoint (a :class:`Localizer` used once)."""
    return Localizer.load(checkpoint, device=device).video(video)


def overlay_png(result: Localization) -> bytes:
    """The frame with the map over it and the predicted box (dashed yellow)."""
    when = f", t={result.frame_time:.2f}s" if result.frame_time >= 0 else ""
    title = f"{result.id} ({result.model}{when})"
    return overlay_grid_png([{"frame": result.frame, "map": result.map, "boxes": (),
                              "pred_box": result.box, "title": title}], columns=1)
