"""Where shards, checkpoints and run folders live: a local folder or an object-storage URI.

``location(text)`` is a ``pathlib.Path`` for a local path (so local code paths are what they
were) and an :class:`ObjectPath` for a URI pyarrow's filesystems accept (``s3://bucket/key``,
``gs://...``). ``ObjectPath`` implements the part of the ``Path`` API the data and training code
uses (``/``, ``name``, ``parent``, ``glob``, ``read_text``, ``write_bytes``, ...) on the
``pyarrow.fs`` filesystem of the URI, the same filesystem Ray Data and Ray Train open for it,
so a multi-node cluster needs no shared POSIX volume.

The endpoint and credentials are never in a config: credentials come from the standard AWS
chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, an instance role) on
every node; a non-AWS endpoint from ``AWS_ENDPOINT_URL`` or pyarrow's URI options, which travel
with the path to every task and worker::

    s3://bucket/shards?endpoint_override=127.0.0.1:9000&scheme=http
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(value: Any) -> bool:
    """``s3://...`` and other filesystem URIs (``file://`` is a local path)."""
    return (isinstance(value, ObjectPath)
            or (isinstance(value, str) and bool(_URI.match(value))
                and not value.startswith("file://")))


def is_remote(value: Any) -> bool:
    return isinstance(value, ObjectPath)


def location(value: str | os.PathLike | ObjectPath, key: str = "") -> Path | ObjectPath:
    """``value`` as a ``Path`` (local) or an :class:`ObjectPath` (a URI); ``key`` (the config
    key or flag it came from) is named when the URI cannot be opened."""
    if isinstance(value, ObjectPath):
        return value
    if isinstance(value, str) and value.startswith("file://"):
        return Path(urlsplit(value).path)
    if is_uri(value):
        return ObjectPath.from_uri(str(value), key)
    return Path(value)


@functools.lru_cache(maxsize=32)
def _filesystem(root: str):
    """One pyarrow filesystem per scheme, bucket and options (a client per call would resolve
    the bucket's region and open connections again every time)."""
    return pyarrow.fs.FileSystem.from_uri(root)[0]


class ObjectPath:
    """A file or folder (key prefix) on a pyarrow filesystem, addressed by a URI."""

    __slots__ = ("fs", "path", "_prefix", "_query")

    def __init__(self, fs: Any, path: str, prefix: str, query: str = ""):
        self.fs, self.path = fs, path.rstrip("/")
        self._prefix, self._query = prefix, query

    @classmethod
    def from_uri(cls, uri: str, key: str = "") -> ObjectPath:
        parts = urlsplit(uri)
        query = f"?{parts.query}" if parts.query else ""
        try:
            fs = _filesystem(f"{parts.scheme}://{parts.netloc}{query}")
            _, path = pyarrow.fs.FileSystem.from_uri(uri)
        except (ValueError, OSError, TypeError) as exc:
            where = f"{key}: " if key else ""
            raise ValueError(f"{where}{uri!r}: not a location pyarrow can open "
                             f"({str(exc).splitlines()[0][:200]})") from None
        bare = uri.split("?", 1)[0].rstrip("/")
        prefix = bare[:-len(path)] if path and bare.endswith(path) else f"{parts.scheme}://"
        return cls(fs, path, prefix, parts.query)

    # ------------------------------------------------------------ naming
    def __str__(self) -> str:
        return f"{self._prefix}{self.path}" + (f"?{self._query}" if self._query else "")

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: ObjectPath) -> bool:  # sorted(): the code sorts shard lists
        return str(self) < str(other)

    def __truediv__(self, name: str | os.PathLike) -> ObjectPath:
        return ObjectPath(self.fs, f"{self.path}/{os.fspath(name).strip('/')}", self._prefix,
                          self._query)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        head = self.path.rsplit("/", 1)[0] if "/" in self.path else self.path
        return ObjectPath(self.fs, head, self._prefix, self._query)

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def resolve(self) -> ObjectPath:
        return self

    def is_absolute(self) -> bool:
        return True

    # ------------------------------------------------------------ queries
    def _type(self):
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pyarrow.fs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pyarrow.fs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pyarrow.fs.FileType.Directory

    def stat(self) -> SimpleNamespace:
        info = self.fs.get_file_info(self.path)
        mtime = info.mtime.timestamp() if info.mtime else 0.0
        return SimpleNamespace(st_size=info.size or 0, st_mtime=mtime)

    def iterdir(self) -> list[ObjectPath]:
        infos = self.fs.get_file_info(pyarrow.fs.FileSelector(self.path, allow_not_found=True))
        return [self / info.base_name for info in infos]

    def glob(self, pattern: str) -> list[ObjectPath]:
        """The children whose name matches ``pattern`` (one level: what the callers use)."""
        if "/" in pattern or "**" in pattern:
            raise ValueError(f"ObjectPath.glob: only name patterns, not {pattern!r}")
        return sorted((p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)),
                      key=str)

    def rglob(self, pattern: str) -> list[ObjectPath]:
        infos = self.fs.get_file_info(pyarrow.fs.FileSelector(self.path, recursive=True,
                                                              allow_not_found=True))
        return sorted((ObjectPath(self.fs, i.path, self._prefix, self._query) for i in infos
                       if i.type == pyarrow.fs.FileType.File
                       and fnmatch.fnmatchcase(i.base_name, pattern)), key=str)

    # ------------------------------------------------------------ contents
    def read_bytes(self) -> bytes:
        if not self.is_file():
            raise FileNotFoundError(f"{self}: no such object")
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        # an object appears whole when its stream closes (one PUT or a completed multipart
        # upload): readers see the old object or the new one, never half of it
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        if not self.is_file():
            if missing_ok:
                return
            raise FileNotFoundError(f"{self}: no such object")
        self.fs.delete_file(self.path)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.create_dir(self.path, recursive=True)


Location = Path | ObjectPath  # what location() returns: a local path or an object prefix


def fs_path(p: Path | ObjectPath) -> tuple[Any, Any]:
    """``(filesystem, path)`` for pyarrow's ``filesystem=`` arguments: ``(None, p)`` for a local
    path (pyarrow's default, as before), ``(fs, "bucket/key")`` for an object."""
    if isinstance(p, ObjectPath):
        return p.fs, p.path
    return None, p


def write_atomically(final: Path | ObjectPath, write: Callable[[Any, Any], None]) -> None:
    """``write(target, filesystem)`` so that ``final`` appears whole or not at all: a local file
    is written to a temp name beside it and renamed; an object is whole when written."""
    if isinstance(final, ObjectPath):
        write(final.path, final.fs)
        return
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.inprogress")
    try:
        write(tmp, None)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written file: never left (a full disk, a kill...)
        raise
    os.replace(tmp, final)


def rmtree(p: Path | ObjectPath, ignore_errors: bool = False) -> None:
    if isinstance(p, ObjectPath):
        try:
            p.fs.delete_dir(p.path)
        except (OSError, FileNotFoundError):
            if not ignore_errors:
                raise
        return
    shutil.rmtree(p, ignore_errors=ignore_errors)


def move_folder(src: ObjectPath, dst: ObjectPath, last: tuple[str, ...] = ()) -> None:
    """Object storage has no rename: every object is copied (server side) and the source
    deleted. Names in ``last`` are copied after the rest, so a reader that waits for them
    (``summary.json``) never sees a half-copied folder as finished."""
    files = sorted(src.iterdir(), key=lambda p: (p.name in last, p.name))
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        src.fs.copy_file(f.path, (dst / f.name).path)
    rmtree(src)
