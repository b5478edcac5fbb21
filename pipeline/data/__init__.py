"""Preprocessing: raw videos -> versioned Parquet shards (one row per clip), and reading them.

Writing: :func:`run_preprocess` (Ray Data or a local loop; resumable; failures quarantined).
Per clip, without Ray: :func:`decode_clip` / :func:`make_row` / :class:`ClipDecoder`.
Formats: :mod:`pipeline.data.formats` (VGG-SS JSON, Flickr XML, id lists).
Reading (:mod:`pipeline.data.reader`, the one reading API): :func:`shard_files`,
:func:`read_shards`, :func:`iter_batches`, :func:`row_to_example`.
The schema and its version: :mod:`pipeline.data.schema`.
"""

from pipeline.data.decode import ClipError, DecodeOptions, decode_clip
from pipeline.data.formats import (
    AnnotationError,
    load_annotations,
    load_flickr_dir,
    load_vggss_json,
    parse_flickr_xml,
)
from pipeline.data.id_lists import load_id_list, load_split_lists
from pipeline.data.inputs import InputError, list_inputs
from pipeline.data.preprocess import PreprocessError, build_plan, run_preprocess, write_shard
from pipeline.data.reader import (
    iter_batches,
    load_quarantine,
    load_summary,
    read_shards,
    row_to_example,
    shard_files,
)
from pipeline.data.rows import ClipDecoder, make_row
from pipeline.data.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SchemaVersionError,
    ShardsError,
    check_schema,
)
from pipeline.data.verify import verify_shards

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "AnnotationError", "ClipDecoder", "ClipError", "DecodeOptions",
    "InputError", "PreprocessError", "SchemaVersionError", "ShardsError", "build_plan",
    "check_schema",
    "decode_clip", "iter_batches", "list_inputs", "load_annotations", "load_flickr_dir",
    "load_id_list", "load_quarantine", "load_split_lists", "load_summary", "load_vggss_json",
    "make_row", "parse_flickr_xml", "read_shards", "row_to_example",
    "run_preprocess", "shard_files", "verify_shards", "write_shard",
]
