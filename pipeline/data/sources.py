"""What a preprocessing run reads, and where each part came from: the clips (videos, a
manifest, or the frames+audio layout), their annotations and their id lists.

Annotations and id lists come only from what the user names (``--annotations``, ``--lists``,
``data.annotations``, ``data.lists``) or from files that belong to the input folder itself: a
``dmt synth`` folder (``meta.json`` beside ``videos/``, or beside ``frames/`` and ``audio/``)
carries its own ``annotations.json`` and ``labeled/unlabeled/test.txt``. Never from another
dataset's folder (e.g. the default config's data root), whose ids may overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.data.inputs import FramesAudio, InputError

SYNTH_MARKER = "meta.json"  # written by `dmt synth` beside its videos and annotations


@dataclass(frozen=True)
class Sources:
    inputs: Path | FramesAudio
    annotations: Path | None
    lists: Path | None
    annotations_origin: str  # "given", "the input's own dmt synth folder" or "none"
    lists_origin: str

    def describe(self) -> str:
        inputs = (f"frames {self.inputs.frames} + audio {self.inputs.audio}"
                  if isinstance(self.inputs, FramesAudio) else str(self.inputs))
        return (f"inputs {inputs}; annotations {self.annotations or '-'} "
                f"({self.annotations_origin}); lists {self.lists or '-'} ({self.lists_origin})")


def _own_folder(inputs: Path | FramesAudio) -> Path | None:
    """The dmt synth folder the inputs belong to, if they do."""
    folder = inputs.frames.parent if isinstance(inputs, FramesAudio) else Path(inputs).parent
    return folder if (folder / SYNTH_MARKER).is_file() else None


def resolve_sources(data, base: str | Path | None = None) -> Sources:
    """The sources of ``data`` (a ``DataConfig``): ``frames`` + ``audio``, else ``videos``,
    else the config's synthetic benchmark (``ROOT/synth/videos``). Named paths must exist."""
    base_dir = Path(base or Path.cwd())

    def path(value: str) -> Path:
        return (base_dir / value).resolve()

    if bool(data.frames) != bool(data.audio):
        raise InputError("--frames and --audio (data.frames, data.audio) go together: the "
                         "frames+audio layout needs both folders")
    if data.frames:
        inputs: Path | FramesAudio = FramesAudio(path(data.frames), path(data.audio))
    else:
        inputs = path(data.videos) if data.videos else path(data.root) / "synth" / "videos"
    own = _own_folder(inputs)
    found = {}
    for key, value, default in (("annotations", data.annotations, "annotations.json"),
                                ("lists", data.lists, "")):
        if value:
            if not path(value).exists():
                raise FileNotFoundError(f"{key} not found: {path(value)}")
            found[key] = (path(value), "given")
        elif own is not None and (own / default).exists():
            found[key] = (own / default if default else own, "the input's own dmt synth folder")
        else:
            found[key] = (None, "none given")
    return Sources(inputs, found["annotations"][0], found["lists"][0],
                   found["annotations"][1], found["lists"][1])
