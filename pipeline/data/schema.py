"""The Parquet schema of preprocessed clips (one row per clip), versioned.

``dmt preprocess`` writes every shard with :data:`SCHEMA`; the version is stored in each
Parquet file's schema metadata (key ``dmt.schema_version``) and in ``summary.json``
(``schema_version``). Readers call :func:`check_schema` (``pipeline.data.reader`` does) and
refuse shards of another version with a message that says to re-run ``dmt preprocess``.
Bump :data:`SCHEMA_VERSION` whenever a column is added, removed, renamed or changes meaning.

Schema version 4 -- one row per successfully decoded clip. Times are seconds on the timeline a
player shows (0 = the container's start time, :mod:`pipeline.data.media`); pictures are as a
player shows them (display matrix or EXIF orientation applied):

=================== ====================== =========================================================
column              type                   meaning
=================== ====================== =========================================================
id                  string                 clip id: the file stem, or the manifest's ``id``
path                string                 absolute path of the source video, or of the frame image
                                           (frames+audio layout)
audio_path          string                 frames+audio layout: absolute path of the audio file;
                                           ``""`` for videos
split               string                 ``labeled`` / ``unlabeled`` / ``test`` from the id lists,
                                           ``""`` when the id is in no list
category            string                 class name when the annotations give one (VGG-SS
                                           ``class``), else ``""``
frame_jpeg          binary                 the displayed frame, RGB, JPEG (quality
                                           ``JPEG_QUALITY``), short side resized to
                                           ``data.frame_short_side``, aspect kept
frame_height        int32                  stored frame height in pixels
frame_width         int32                  stored frame width in pixels
frame_index         int32                  index of the frame in the video: frames before it at
                                           the average rate (exact for constant-rate video; the
                                           middle frame, ``num_frames // 2``, unless
                                           ``data.frame_time >= 0``); frames+audio: index in the
                                           per-id frame folder
frame_time          float64                presentation time of that frame (the one a player
                                           shows at ``data.frame_time``), inside
                                           [0, ``duration``); -1 in the frames+audio layout
                                           (unknown: the audio window is centred on the middle
                                           of the track)
audio               binary                 mono waveform, int16 little-endian PCM (x * 32767 of the
                                           float signal clipped to [-1, 1]), ``audio_samples`` long
sample_rate         int32                  rate of ``audio`` (``data.sample_rate``)
audio_samples       int32                  samples in ``audio`` (= audio_seconds * sample_rate)
audio_offset        float64                time of the window's first sample (window centred on
                                           ``frame_time``, shifted inward at the track's ends; 0
                                           when tiled)
audio_tiled         bool                   the track was shorter than the window and was tiled
audio_rms           float32                RMS of the stored window (float scale, before int16)
spectrogram         binary, nullable       log(power + 1e-7) STFT, float16 little-endian, row-major
                                           [spec_bins, spec_frames]; null unless
                                           ``data.store_spectrogram`` (n_fft 512, hop 238, Hann)
spec_bins           int32                  257 when stored, else 0
spec_frames         int32                  time frames when stored, else 0
boxes               list<list<float64>>    sounding-object boxes [xmin, ymin, xmax, ymax],
                                           normalised to the frame, clipped to [0, 1]; [] if none
boxes_256           list<list<int32>>      Flickr only: the raw boxes on the 256 x 256 grid exactly
                                           as in the XML (rebuilds the 0.5-consensus map); [] else
box_format          string                 ``vggss`` / ``flickr`` (how the gt map is built), ``""``
has_boxes           bool                   ``len(boxes) > 0``
duration            float64                end of the video's last frame, seconds (frames+audio:
                                           length of the audio track)
fps                 float64                average frame rate
num_frames          int32                  frames in the video (the header's count, else
                                           duration times the average rate)
source_width        int32                  width of the displayed picture before resizing (the
                                           coded height when ``display_rotation`` is 90 or 270)
source_height       int32                  height of the displayed picture before resizing
display_rotation    int16                  degrees the coded picture was turned counter-clockwise
                                           for display (0, 90, 180, 270; the video's display
                                           matrix or the image's EXIF orientation)
display_hflip       bool                   ... and then mirrored left to right
source_sample_rate  int32                  original audio sample rate
source_channels     int32                  original audio channels
frame_decoder       string                 how the frame was reached: ``pyav`` (a seek to the key
                                           frame before it), ``pyav-from-start`` (the seek landed
                                           late; decoded from the stream's start), ``pillow`` for
                                           a frame image
audio_decoder       string                 how the audio window was reached: ``pyav`` or
                                           ``pyav-from-start``, as for the frame
=================== ====================== =========================================================

Version history: 2 added ``frame_decoder`` and ``audio_decoder``; 3 added ``audio_path``
(the frames+audio layout), and labeled / test rows always have a usable box; 4 stores the
displayed picture (``display_rotation``, ``display_hflip``; ``source_width`` / ``source_height``
are displayed sizes), measures times from the container's start and picks the frame by time.

Boxes are stored for every clip the annotations cover (the synthetic benchmark annotates every
clip, VGG-SS only its test clips): a semi-supervised loader must take boxes only from
``split == "labeled"`` rows (and evaluate on ``"test"``), never from unlabeled ones. Every
labeled and test row has a usable box: an id of those lists without one is moved out of its
split at planning time (``data.labeled_without_box``, ``data.test_without_box``) and listed in
``summary.json["without_box"]``. VGG-SS
boxes that clipping turned inside out are stored with zero area (see ``formats``).

Clips that fail are not in the shards: they are listed in ``quarantine.jsonl`` next to them
(columns of :data:`QUARANTINE_FIELDS`). The decode step's own output (:data:`DECODED_SCHEMA`) is
:data:`SCHEMA` plus a nullable ``error`` string; rows with an error are split off there.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.errors import ShardsError

SCHEMA_VERSION = 4
SCHEMA_NAME = "dmt-avsl/clips"
VERSION_KEY = b"dmt.schema_version"
NAME_KEY = b"dmt.schema"

JPEG_QUALITY = 90
PCM_SCALE = 32767.0
AUDIO_FORMAT = "pcm_s16le"
SPEC_DTYPE = "<f2"

_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("audio_path", pa.string()),
    pa.field("split", pa.string()),
    pa.field("category", pa.string()),
    pa.field("frame_jpeg", pa.binary()),
    pa.field("frame_height", pa.int32()),
    pa.field("frame_width", pa.int32()),
    pa.field("frame_index", pa.int32()),
    pa.field("frame_time", pa.float64()),
    pa.field("audio", pa.binary()),
    pa.field("sample_rate", pa.int32()),
    pa.field("audio_samples", pa.int32()),
    pa.field("audio_offset", pa.float64()),
    pa.field("audio_tiled", pa.bool_()),
    pa.field("audio_rms", pa.float32()),
    pa.field("spectrogram", pa.binary()),
    pa.field("spec_bins", pa.int32()),
    pa.field("spec_frames", pa.int32()),
    pa.field("boxes", pa.list_(pa.list_(pa.float64()))),
    pa.field("boxes_256", pa.list_(pa.list_(pa.int32()))),
    pa.field("box_format", pa.string()),
    pa.field("has_boxes", pa.bool_()),
    pa.field("duration", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("num_frames", pa.int32()),
    pa.field("source_width", pa.int32()),
    pa.field("source_height", pa.int32()),
    pa.field("display_rotation", pa.int16()),
    pa.field("display_hflip", pa.bool_()),
    pa.field("source_sample_rate", pa.int32()),
    pa.field("source_channels", pa.int32()),
    pa.field("frame_decoder", pa.string()),
    pa.field("audio_decoder", pa.string()),
]

METADATA = {
    VERSION_KEY: str(SCHEMA_VERSION).encode(),
    NAME_KEY: SCHEMA_NAME.encode(),
    b"dmt.audio_format": AUDIO_FORMAT.encode(),
    b"dmt.frame_format": f"jpeg/q{JPEG_QUALITY}".encode(),
}

SCHEMA: pa.Schema = pa.schema(_FIELDS, metadata=METADATA)
"""One row per decoded clip; see the module docstring for every column."""

COLUMNS: list[str] = [f.name for f in _FIELDS]

DECODED_SCHEMA: pa.Schema = pa.schema(_FIELDS + [pa.field("error", pa.string())],
                                      metadata=METADATA)
"""What the decode step returns: :data:`SCHEMA` + ``error`` (null for good rows)."""

QUARANTINE_FIELDS = ("id", "path", "split", "reason")
"""Keys of each ``quarantine.jsonl`` line."""


class SchemaVersionError(ShardsError):
    """Shards written by another schema version (or not by ``dmt preprocess`` at all)."""


def schema_version(schema: pa.Schema) -> int | None:
    meta = schema.metadata or {}
    raw = meta.get(VERSION_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def check_version(found: object, where: str) -> None:
    """Raise :class:`SchemaVersionError` unless ``found`` (a shard's or a ``summary.json``'s
    schema version) is this code's."""
    if found != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: schema version {found}, this code reads version {SCHEMA_VERSION}; "
            f"re-run `dmt preprocess` to rebuild the shards")


def check_schema(schema: pa.Schema, where: str = "shard") -> None:
    """Raise :class:`SchemaVersionError` unless ``schema`` carries this schema version."""
    found = schema_version(schema)
    if found is None:
        raise SchemaVersionError(
            f"{where}: no {VERSION_KEY.decode()} in the Parquet metadata; not written by "
            f"`dmt preprocess` (schema version {SCHEMA_VERSION})")
    check_version(found, where)
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise SchemaVersionError(f"{where}: columns missing for schema version "
                                 f"{SCHEMA_VERSION}: {', '.join(missing)}")
