"""Small PyAV writers for real media files in tests (reusable by any test module).

Every writer produces a genuine container (mp4/mkv/webm/avi/mov) that ffmpeg-based readers
(decord, PyAV) open like a downloaded clip. The picture is a flat background with a bright
square whose position encodes the frame index, so tests can tell which frame was decoded;
the audio is a sine (or silence / noise) so tests can check rate, length and level.

    from tests.media import write_clip, sine
    write_clip(tmp / "a.mp4", seconds=2.0, audio=sine(440, 2.0, 44100, channels=2),
               sample_rate=44100)
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container extension -> (video codec, audio codec, pixel format)
CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"),
    ".mkv": ("libx264", "aac", "yuv420p"),
    ".webm": ("libvpx", "libopus", "yuv420p"),
    ".avi": ("mpeg4", "mp3", "yuv420p"),
}


def sine(freq: float, seconds: float, sample_rate: int, *, channels: int = 1,
         amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine, shape (channels, samples)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[None, :], channels, axis=0)


def silence(seconds: float, sample_rate: int, *, channels: int = 1) -> np.ndarray:
    return np.zeros((channels, int(round(seconds * sample_rate))), np.float32)


def frame_image(index: int, width: int, height: int, frames: int, jump: bool = False
                ) -> np.ndarray:
    """RGB uint8 frame: dark background, a white square moving left to right with ``index``
    (``jump``: 7 px right and 3 px down every frame, wrapping, so neighbours differ in long
    clips too)."""
    img = np.full((height, width, 3), (40, 60, 90), np.uint8)
    side = max(4, min(width, height) // 5)
    if jump:
        x, y = (7 * index) % (width - side), (3 * index) % (height - side)
    else:
        x = int((width - side) * index / max(1, frames - 1))
        y = (height - side) // 2
    img[y:y + side, x:x + side] = 255
    return img


def write_clip(path: str | Path, *, seconds: float = 2.0, fps: int = 10, width: int = 160,
               height: int = 120, audio: np.ndarray | None = None, sample_rate: int = 16000,
               video_codec: str | None = None, audio_codec: str | None = None,
               gop: int | None = None, jump: bool = False) -> Path:
    """Write a real video file; ``audio`` (channels, samples) float32 in [-1, 1] or None.

    The container follows the extension (see ``CODECS``); pass ``audio=None`` for a file with
    no audio stream at all; ``gop`` sets the key-frame interval in frames; ``jump`` moves the
    square every frame (``frame_image``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec, pix = CODECS.get(path.suffix.lower(), CODECS[".mp4"])
    vcodec = video_codec or vcodec
    acodec = audio_codec or acodec
    n_frames = max(1, int(round(seconds * fps)))
    with av.open(str(path), mode="w") as container:
        vs = container.add_stream(vcodec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix
        if vcodec in ("libx264",):
            vs.options = {"preset": "ultrafast", "crf": "18"}
        if gop:
            vs.codec_context.gop_size = gop  # a key frame every `gop` frames
        as_ = None
        if audio is not None:
            audio = np.asarray(audio, np.float32)
            if audio.ndim == 1:
                audio = audio[None, :]
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            as_ = container.add_stream(acodec, rate=sample_rate, layout=layout)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height, n_frames, jump),
                                               format="rgb24")
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if as_ is not None:
            _encode_audio(container, as_, audio, sample_rate)
    return path


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    channels = audio.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    # feed planar float; the resampler converts to the encoder's sample format/frame size
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout,
                                  rate=sample_rate,
                                  frame_size=stream.codec_context.frame_size or 1024)
    step = 4096
    pts = 0
    for start in range(0, audio.shape[1], step):
        chunk = np.ascontiguousarray(audio[:, start:start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
        pts += chunk.shape[1]
        for out in resampler.resample(frame):
            for packet in stream.encode(out):
                container.mux(packet)
    for out in resampler.resample(None):
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def truncate(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of a file's bytes (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_text(path: str | Path, text: str = "this is not a video\n") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM WAV of ``audio`` (channels, samples) float in [-1, 1], with the stdlib."""
    import wave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[0])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.T.tobytes())
    return path


def export_pair(video: str | Path, frames_dir: Path, audio_dir: Path, *, rate: int = 44100,
                channels: int = 2, folder: bool = False, quality: int = 95) -> int:
    """The field's pre-extracted layout of one video, made with PyAV: its middle frame as
    ``frames/<id>.jpg`` (or, with ``folder``, every 5th frame as ``frames/<id>/NNNN.jpg``, the
    middle frame in the middle of the folder) and its whole audio track as ``audio/<id>.wav``
    at ``rate`` Hz with ``channels`` channels. Returns the middle frame's index."""
    from PIL import Image

    video = Path(video)
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(video)) as container:
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [o.to_ndarray() for f in container.decode(audio=0) for o in resampler.resample(f)]
        chunks += [o.to_ndarray() for o in resampler.resample(None)]
    middle = len(frames) // 2
    if folder:
        picks = sorted({middle + 5 * k for k in range(-2, 3) if 0 <= middle + 5 * k < len(frames)})
        for n, index in enumerate(picks):
            out = frames_dir / video.stem / f"{n:04d}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frames[index]).save(out, quality=quality)
        assert picks[len(picks) // 2] == middle
    else:
        frames_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[middle]).save(frames_dir / f"{video.stem}.jpg", quality=quality)
    write_wav(audio_dir / f"{video.stem}.wav", np.concatenate(chunks, axis=1), rate)
    return middle
