"""Which containers and codecs seek exactly (not a test): every file of the real-media corpus
(tests/corpus/) through ``decode_clip``, with how its frame and its audio window were reached.

- frame ``pyav``: the seek to the key frame before the frame landed at or before it (checked
  from the decoded frames' own timestamps); ``pyav-from-start``: it landed after, and the
  video was decoded from its first frame.
- audio ``pyav``: decoded from a seek; ``pyav-from-start``: decoded from the track's first
  sample (a window that starts within 0.25 s of the track's start, a track shorter than the
  window, or a late seek). The audio time base says how precisely a seek's landing point is
  known: 1/rate, 1/90000 or frame units (AVI) name samples exactly; 1/1000 to 0.5 ms.

Whether each row equals what a player shows is tests/test_media_corpus.py's job.

    .venv/bin/python jobs/benchmarks/corpus_seeking.py --out docs/decode-bench/corpus_seeking.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.data.decode import ClipError, DecodeOptions, decode_clip  # noqa: E402
from pipeline.data.media import audio_stream, video_stream  # noqa: E402

CORPUS = REPO / "tests" / "corpus"


def describe(path: Path) -> dict:
    with av.open(str(path), metadata_errors="replace") as container:
        video, audio = video_stream(container), audio_stream(container)
        out = {"container": container.format.name,
               "video": video.codec_context.name if video else "",
               "audio": audio.codec_context.name if audio else "",
               "audio_time_base": str(audio.time_base) if audio else ""}
    try:
        row = decode_clip(path, path.stem, DecodeOptions())
        out.update(frame=row["frame_decoder"], audio_window=row["audio_decoder"],
                   audio_offset=round(row["audio_offset"], 4))
    except ClipError as exc:
        out.update(quarantined=exc.reason)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-out/corpus_seeking.json")
    args = parser.parse_args(argv)
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    rows = {name: {"what": spec["what"], **describe(CORPUS / "videos" / name)}
            for name, spec in sorted(manifest["videos"].items())}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    report = {"command": "python jobs/benchmarks/corpus_seeking.py " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "commit": commit, "pyav": av.__version__, "ffmpeg": av.ffmpeg_version_info,
              "files": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print("| file | container | video / audio | frame | audio time base | audio window |\n"
          "|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| `{name}` | {r['container']} | {r['video']} / {r['audio']} | "
              f"{r.get('frame', '-')} | {r['audio_time_base']} | "
              f"{r.get('audio_window', r.get('quarantined', '-'))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
