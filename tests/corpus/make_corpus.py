"""Writes the real-media corpus of tests/test_media_corpus.py (not run by the tests: its output
is committed, so the tests read the same bytes whatever ffmpeg a later machine has).

Every file is made by real encoders and muxers -- the ffmpeg command-line tool that the
``imageio-ffmpeg`` wheel carries (a dev dependency) -- with the property a user's clip has
set for real: a phone's display matrix, a container without timestamps or duration, metadata
that is not UTF-8, a second video and audio stream, 6 channels, 8 kHz, 10-bit AV1... The
commands, the ffmpeg version and each file's SHA-256 go to PROVENANCE.md; what each file must
become (a row, or a quarantined entry with its reason) goes to manifest.json. A rerun makes
files with the same properties, not the same bytes (the encoders' threads and noise sources
are not bit-reproducible): rewrite the corpus only to change it, and commit it whole.

The picture is a slowly moving colour gradient with a white square that jumps every frame
(the frame is identifiable from its neighbours) and a red block in the coded top-left corner
(where it lands shows the orientation). The sound is pink noise below 2 kHz, another seed per
file (a window from the wrong time does not correlate).

    .venv/bin/python tests/corpus/make_corpus.py        # rewrites tests/corpus/
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
VIDEOS, PAIRS = HERE / "videos", HERE / "pairs"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def picture(w: int, h: int, rate: str, seconds: float, seed: int, tail: str = ""
            ) -> tuple[list[str], str]:
    """lavfi inputs (2) and the filter that draws the test picture into [v]."""
    box = max(8, min(w, h) // 6)
    return ["-f", "lavfi", "-i", f"gradients=size={w}x{h}:rate={rate}:duration={seconds}:"
            f"speed=0.02:seed={seed}",
            "-f", "lavfi", "-i", f"color=white:size={box}x{box}:rate={rate}"], (
        f"[0][1]overlay=x='mod(n*9\\,W-w)':y='H/2-{box // 2}+mod(n*5\\,H/3)':shortest=1,"
        f"drawbox=x=0:y=0:w={w // 5}:h={h // 7}:color=red:t=fill{tail},format=yuv420p[v]")


def noise(seconds: float, rate: int, seed: int, channels: int = 1) -> list[str]:
    """A lavfi input of pink noise below 2 kHz, ``channels`` independent channels."""
    if channels == 1:
        graph = f"anoisesrc=d={seconds}:c=pink:r={rate}:a=0.3:seed={seed},lowpass=f=2000"
    else:
        layout = {2: "stereo", 6: "5.1"}[channels]
        parts = ";".join(f"anoisesrc=d={seconds}:c=pink:r={rate}:a=0.3:seed={seed + k},"
                         f"lowpass=f=2000[c{k}]" for k in range(channels))
        graph = (f"{parts};{''.join(f'[c{k}]' for k in range(channels))}"
                 f"join=inputs={channels}:channel_layout={layout}")
    return ["-f", "lavfi", "-i", graph]


H264 = ["-c:v", "libx264", "-preset", "medium", "-crf", "28", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "48k"]


def av_clip(name: str, *, w=192, h=144, rate="25", seconds=4.0, seed=1, sr=44100, channels=1,
            video=H264, audio=AAC, extra=(), audio_input=None, fmt=None, tail=""
            ) -> list[str]:
    """The ffmpeg arguments of one clip: the picture, the noise, the codecs."""
    pic_inputs, graph = picture(w, h, rate, seconds, seed, tail)
    snd = audio_input if audio_input is not None else noise(seconds, sr, seed * 10, channels)
    args = [*pic_inputs, *snd, "-filter_complex", graph, "-map", "[v]", "-map", "2:a",
            *video, *audio, "-shortest", *extra]
    if fmt:
        args += ["-f", fmt]
    return [*args, str(VIDEOS / name)]


# name -> (arguments of the first command, remux arguments or None, expectation, what it is)
def clips() -> dict[str, dict]:
    rotate = {"phone_rot90.mp4": ["-display_rotation", "90"],
              "phone_rot270.mp4": ["-display_rotation", "-90"],
              "phone_rot180.mp4": ["-display_rotation", "180"],
              "selfie_hflip.mp4": ["-display_hflip"],
              "vflip.mp4": ["-display_vflip"],
              "rot90_hflip.mov": ["-display_rotation", "90", "-display_hflip"],
              "rot270_hflip.mov": ["-display_rotation", "-90", "-display_hflip"]}
    out = {}
    for k, (name, flags) in enumerate(rotate.items()):
        out[name] = {"make": av_clip("_" + name, w=320, h=180, rate="30", seconds=3.5, seed=2 + k,
                                     sr=48000, channels=2, video=[*H264, "-g", "30"]),
                     "remux": [*flags, "-i", str(VIDEOS / ("_" + name)), "-c", "copy",
                               str(VIDEOS / name)],
                     "what": f"phone capture: H.264 High + AAC stereo 48 kHz, display matrix "
                             f"{' '.join(flags)}"}
    out["hevc_rot90.mp4"] = {
        "make": av_clip("_hevc_rot90.mp4", w=320, h=180, rate="30", seconds=3.0, seed=8,
                        sr=48000, video=["-c:v", "libx265", "-preset", "fast", "-crf", "30",
                                         "-tag:v", "hvc1", "-x265-params", "log-level=error"]),
        "remux": ["-display_rotation", "90", "-i", str(VIDEOS / "_hevc_rot90.mp4"), "-c", "copy",
                  "-tag:v", "hvc1", str(VIDEOS / "hevc_rot90.mp4")],
        "what": "phone capture: HEVC + AAC, display matrix rotation 90"}
    plain = {
        "mov_pcm.mov": dict(seed=9, sr=22050, audio=["-c:a", "pcm_s16le"],
                            what="QuickTime MOV: H.264 + PCM s16le 22.05 kHz"),
        "webcam.flv": dict(w=176, h=144, seed=10, sr=22050, video=["-c:v", "flv", "-q:v", "5"],
                           audio=["-c:a", "libmp3lame", "-b:a", "32k"],
                           what="webcam FLV: Sorenson Spark (FLV1) + MP3 22.05 kHz"),
        "windows.wmv": dict(seed=11, video=["-c:v", "wmv2", "-q:v", "5"],
                            audio=["-c:a", "wmav2", "-b:a", "64k"], channels=2, fmt="asf",
                            what="Windows Media: ASF with WMV2 + WMA v2 stereo"),
        "broadcast.ts": dict(w=192, h=144, rate="24000/1001", seconds=2.42, seed=12, sr=48000,
                             video=["-c:v", "mpeg2video", "-g", "12", "-bf", "2", "-q:v", "4"],
                             audio=["-c:a", "mp2", "-b:a", "96k"], fmt="mpegts",
                             what="MPEG-TS: MPEG-2 video (58 frames, B-frames) + MP2; the "
                                  "container starts at 1.4 s and seeks by estimate"),
        "xvid.avi": dict(seconds=6.48, seed=13,
                         video=["-c:v", "mpeg4", "-vtag", "xvid", "-bf", "2", "-g", "50",
                                "-q:v", "4"],
                         audio=["-c:a", "libmp3lame", "-b:a", "48k"],
                         what="AVI: MPEG-4 Part 2 (Xvid tag, B-frames) + MP3; AVI stores no "
                              "presentation timestamps"),
        "vp8_vorbis.webm": dict(seed=14, sr=48000, video=["-c:v", "libvpx", "-b:v", "200k"],
                                audio=["-c:a", "libvorbis", "-q:a", "2"],
                                what="WebM: VP8 + Vorbis"),
        "vp9_opus.webm": dict(seed=15, sr=48000, video=["-c:v", "libvpx-vp9", "-b:v", "150k",
                                                        "-deadline", "realtime"],
                              audio=["-c:a", "libopus", "-b:a", "32k"], channels=2,
                              what="WebM: VP9 + Opus stereo"),
        "fps60.mp4": dict(rate="60", seed=16, what="60 fps H.264 + AAC"),
        "surround51.mp4": dict(seed=17, sr=48000, channels=6, audio=["-c:a", "aac", "-b:a",
                                                                     "128k"],
                               what="AAC 5.1 (6 independent channels) 48 kHz"),
        "av1_10bit.mkv": dict(seed=18, sr=48000,
                              video=["-c:v", "libsvtav1", "-preset", "10", "-crf", "45",
                                     "-pix_fmt", "yuv420p10le", "-svtav1-params", "lp=1"],
                              audio=["-c:a", "libopus", "-b:a", "32k"],
                              what="Matroska: AV1 10-bit (yuv420p10le) + Opus"),
        "aac8k.mp4": dict(seed=19, sr=8000, audio=["-c:a", "aac", "-b:a", "16k"],
                          what="AAC at 8 kHz mono"),
        "mpeg1.mpg": dict(seed=20, video=["-c:v", "mpeg1video", "-q:v", "4"],
                          audio=["-c:a", "mp2", "-b:a", "96k"], fmt="mpeg",
                          what="MPEG program stream: MPEG-1 video + MP2 (timestamps only on "
                               "some packets; ffmpeg interpolates the rest unevenly)"),
        "phone.3gp": dict(w=176, h=144, rate="15", seed=21, sr=8000,
                          video=["-c:v", "h263", "-q:v", "5"],
                          audio=["-c:a", "libopencore_amrnb", "-b:a", "12.2k"],
                          what="3GP: H.263 + AMR-NB 8 kHz (an old phone)"),
        "theora.ogv": dict(seed=22, video=["-c:v", "libtheora", "-q:v", "5"],
                           audio=["-c:a", "libvorbis", "-q:a", "2"],
                           what="Ogg: Theora + Vorbis (seeks by bisection)"),
        "one_keyframe.mp4": dict(seconds=6.0, seed=23, video=[*H264, "-g", "1000"],
                                 what="H.264 with one key frame in 6 s"),
        "vfr_matroska.mkv": dict(seconds=5.0, seed=24,
                        what="variable frame rate: 50 fps for 1 s, then 25 fps for 3 s "
                             "(Matroska, 1 ms timestamps)"),
        "vfr_phone.mp4": dict(seconds=5.0, seed=32,
                        what="variable frame rate: 50 fps for 1 s, then 25 fps for 3 s (MP4, "
                             "as phones record)"),
        "late_audio.mp4": dict(seconds=5.0, seed=25,
                               what="audio starts 0.5 s after the picture"),
        "ts_offset.mkv": dict(seed=26, extra=["-output_ts_offset", "100"],
                              what="timestamps start at 100 s (a cut from a longer recording)"),
        "bad_metadata.mp4": dict(seed=27, what="container title that is not valid UTF-8 "
                                               "(bytes 0xed 0xa0 0x80)"),
        "no_audio.mp4": dict(seed=28, what="no audio stream (quarantined)"),
        "silent.mp4": dict(seed=29, what="an all-zero audio track (quarantined)"),
    }
    big, big_graph = picture(320, 240, "25", 4.0, 31)
    small, small_graph = picture(160, 120, "25", 4.0, 32)
    out["two_streams.mkv"] = {
        "make": [*small, *big, *noise(4.0, 44100, 330), *noise(4.0, 44100, 340, 2),
                 "-filter_complex", small_graph.replace("[v]", "[small]") + ";"
                 + big_graph.replace("[0][1]", "[2][3]").replace("[v]", "[big]"),
                 "-map", "[small]", "-map", "[big]", "-map", "4:a", "-map", "5:a", *H264,
                 *AAC, "-disposition:v:0", "0", "-disposition:v:1", "default",
                 "-disposition:a:0", "0", "-disposition:a:1", "default", "-shortest",
                 str(VIDEOS / "two_streams.mkv")],
        "what": "two video streams (160x120 first, 320x240 default) and two audio streams "
                "(mono first, stereo default): the default ones are what a player shows"}
    for name, spec in plain.items():
        what = spec.pop("what")
        extra = list(spec.pop("extra", []))
        if name.startswith("vfr_"):
            spec["video"] = [*H264, "-fps_mode", "passthrough", "-enc_time_base:v", "1/1000"]
            spec["tail"] = ",settb=1/1000,setpts='if(lt(N\\,50)\\,N/50\\,1+(N-50)/25)/TB'"
        if name == "late_audio.mp4":
            spec["audio_input"] = ["-itsoffset", "0.5", *noise(5.0, 44100, 250)]
        if name == "silent.mp4":
            spec["audio_input"] = ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=4"]
        args = av_clip(name, extra=extra, **spec)
        if name == "bad_metadata.mp4":
            args = [*args[:-1], "-metadata", b"title=caf\xed\xa0\x80 clip", args[-1]]
        if name == "no_audio.mp4":
            args = [a for a in args if a != "2:a"]
            i = args.index("-map", args.index("[v]"))
            args = [*args[:i], *args[i + 1:]]
        out[name] = {"make": args, "what": what}
    return out


EXPECT = {"no_audio.mp4": "no audio stream", "silent.mp4": "silent audio"}
# What a player does with each display matrix, in the rows' terms: degrees turned
# counter-clockwise, then mirrored left to right (ffmpeg's -display_rotation counts
# counter-clockwise; a vertical flip is a half turn and a mirror).
DISPLAY = {"phone_rot90.mp4": [90, False], "phone_rot270.mp4": [270, False],
           "phone_rot180.mp4": [180, False], "selfie_hflip.mp4": [0, True],
           "vflip.mp4": [180, True], "rot90_hflip.mov": [90, True],
           "rot270_hflip.mov": [270, True], "hevc_rot90.mp4": [90, False]}
# Containers that stamp audio in milliseconds: a window from a seek is placed to within 1 ms.
MS_STAMPED = {".mkv", ".webm", ".flv", ".wmv"}
# Frames whose timestamps are not one frame apart: the frame is identified by its time.
IRREGULAR = {"vfr_matroska.mkv", "vfr_phone.mp4", "mpeg1.mpg"}


def run(args: list) -> None:
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode:
        sys.exit(f"ffmpeg failed: {done.stderr.decode(errors='replace')}\n{cmd}")


def shown(args: list) -> str:
    text = [a.decode("latin-1") if isinstance(a, bytes) else a for a in args]
    return "ffmpeg " + " ".join(a.replace(str(HERE) + "/", "") for a in text)


def make_pairs() -> dict[str, dict]:
    """The frames+audio layout: photos with an EXIF orientation (and a PNG without) beside a
    WAV. Each photo stores the coded picture; the tag says how a viewer turns it."""
    out = {}
    pairs = {"exif6": (6, 22050, 2), "exif8": (8, 16000, 1), "exif3": (3, 11025, 1),
             "exif5": (5, 8000, 2), "plain_png": (None, 24000, 1)}
    rng = np.random.default_rng(7)
    for k, (name, (tag, sr, channels)) in enumerate(pairs.items()):
        y, x = np.mgrid[0:150, 0:200]
        img = np.stack([x * 1.2, y * 1.5, (x + y) * 0.6], -1).astype(np.uint8)
        img[:20, :40] = (255, 0, 0)  # the coded top-left corner
        img[60 + k * 10:90 + k * 10, 120:150] = 255
        frame = PAIRS / "frames" / (f"{name}.png" if tag is None else f"{name}.jpg")
        frame.parent.mkdir(parents=True, exist_ok=True)
        if tag is None:
            Image.fromarray(img).save(frame)
        else:
            exif = Image.Exif()
            exif[0x0112] = tag
            Image.fromarray(img).save(frame, quality=92, exif=exif)
        sound = rng.standard_normal((channels, int(3.5 * sr))).cumsum(axis=1)
        sound -= sound.mean(axis=1, keepdims=True)
        sound = 0.3 * sound / np.abs(sound).max()
        path = PAIRS / "audio" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out_wav:
            out_wav.setnchannels(channels)
            out_wav.setsampwidth(2)
            out_wav.setframerate(sr)
            out_wav.writeframes((sound.T * 32767).round().astype("<i2").tobytes())
        out[name] = {"frame": frame.name, "audio": path.name, "exif_orientation": tag,
                     "what": f"{frame.suffix[1:].upper()} with EXIF orientation {tag} + WAV "
                             f"{channels} ch {sr} Hz (random walk)"}
    return out


def main() -> int:
    for folder in (VIDEOS, PAIRS):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    version = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True
                             ).stdout.splitlines()[0]
    manifest, lines = {"videos": {}, "pairs": {}}, []
    for name, spec in clips().items():
        run(spec["make"])
        commands = [shown(spec["make"])]
        if "remux" in spec:
            run(spec["remux"])
            commands.append(shown(spec["remux"]))
            (VIDEOS / ("_" + name)).unlink()
        data = (VIDEOS / name).read_bytes()
        manifest["videos"][name] = {"what": spec["what"], "expect": EXPECT.get(name, "row"),
                                    "display": DISPLAY.get(name, [0, False]),
                                    "regular_frames": name not in IRREGULAR,
                                    "audio_exact": Path(name).suffix not in MS_STAMPED,
                                    "bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
        lines.append(f"| `{name}` | {spec['what']} | {len(data):,} | "
                     f"`{'` then `'.join(commands)}` |")
    streamed = VIDEOS / "streamed.mkv"  # written to a pipe: no duration and no index
    with streamed.open("wb") as sink:
        pic, graph = picture(192, 144, "25", 4.0, 30)
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", *pic, *noise(4.0, 44100, 300),
               "-filter_complex", graph, "-map", "[v]", "-map", "2:a", *H264, *AAC,
               "-shortest", "-f", "matroska", "pipe:1"]
        subprocess.run(cmd, stdout=sink, check=True)
    data = streamed.read_bytes()
    manifest["videos"]["streamed.mkv"] = {
        "what": "Matroska written to a pipe: no duration and no seek index", "expect": "row",
        "display": [0, False], "regular_frames": True, "audio_exact": False,
        "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    lines.append(f"| `streamed.mkv` | Matroska written to a pipe: no duration, no index | "
                 f"{len(data):,} | `{shown(cmd[4:])} > streamed.mkv` |")
    manifest["pairs"] = make_pairs()
    for spec in manifest["pairs"].values():
        for part, folder in (("frame", "frames"), ("audio", "audio")):
            data = (PAIRS / folder / spec[part]).read_bytes()
            spec[f"{part}_sha256"] = hashlib.sha256(data).hexdigest()
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (HERE / "PROVENANCE.md").write_text(PROVENANCE.format(
        version=version, rows="\n".join(lines),
        pairs="\n".join(f"| `{n}` | {s['what']} |" for n, s in manifest["pairs"].items())))
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"{len(manifest['videos'])} videos, {len(manifest['pairs'])} pairs, "
          f"{total / 1e6:.2f} MB in {HERE}")
    return 0


PROVENANCE = """# The real-media corpus: where each file comes from

Made by this project (`tests/corpus/make_corpus.py`), under the project's licence (Apache-2.0);
no third-party content. Every video was written by real encoders and muxers: {version}, the
build that the `imageio-ffmpeg` wheel (PyPI, a dev dependency) carries. Sources are ffmpeg's
own test generators (`gradients`, `color`, `anoisesrc`), so nothing here was downloaded.
`manifest.json` holds each file's SHA-256 and what it must become (a row, or a quarantined
entry with its reason).

| file | what it is | bytes | made with |
|---|---|---|---|
{rows}

Frames + audio pairs (`pairs/frames/<id>.jpg|png`, `pairs/audio/<id>.wav`), written with Pillow
and Python's `wave` by the same script:

| id | what it is |
|---|---|
{pairs}
"""

if __name__ == "__main__":
    sys.exit(main())
