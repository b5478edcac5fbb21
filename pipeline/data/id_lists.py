"""Id-list files: which clips are labeled, unlabeled or test (docs/method.md §8.5).

Plain text (one id per line) or CSV (the first column; ``flickr_test.csv`` rows are ``id,int``);
a file's split comes from its name (:func:`split_of_list`). A list that cannot be read raises
``AnnotationError`` naming the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.data.formats import MAX_ANNOTATION_BYTES, AnnotationError, check_file_size

SPLITS = ("labeled", "unlabeled", "test")
SPLIT_PRIORITY = {"test": 0, "labeled": 1, "unlabeled": 2}  # an id in two lists gets the first


def load_id_list(path: str | Path) -> list[str]:
    """Ids of a list file: ``.csv`` -> first column (a header ``id``/``file`` is skipped);
    anything else -> one id per line. Blank lines are skipped; CRLF is fine."""
    path = Path(path)
    try:
        check_file_size(path, MAX_ANNOTATION_BYTES, "id list")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: id list not found") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not a text id list: {exc}") from None
    ids: list[str] = []
    if path.suffix.lower() == ".csv":
        for n, row in enumerate(csv.reader(text.splitlines())):
            if not row or not row[0].strip():
                continue
            value = row[0].strip()
            if n == 0 and value.lower() in ("id", "file", "ids", "video_id"):
                continue
            ids.append(value)
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    return ids


def split_of_list(path: str | Path) -> str | None:
    """Which split a list file feeds, from its name (None: not a split list).

    test: ``test.*``, ``*_test.*`` (flickr_test.csv, vggss_test.csv);
    labeled: ``labeled.*``, ``*sup_train*`` (flickr_sup_train.txt);
    unlabeled: ``unlabeled.*``, ``train.*``, ``*_10k.*``, ``*_144k.*`` (the training pools).
    """
    p = Path(path)
    if p.suffix.lower() not in (".txt", ".csv"):
        return None
    stem = p.stem.lower()
    if stem == "test" or stem.endswith("_test"):
        return "test"
    if stem in ("labeled", "labelled") or "sup_train" in stem:
        return "labeled"
    if stem in ("unlabeled", "unlabelled", "train") or stem.endswith(("_10k", "_144k")):
        return "unlabeled"
    return None


@dataclass
class SplitLists:
    split_of: dict[str, str]
    files: dict[str, dict[str, Any]]
    conflicts: int = 0


def load_split_lists(path: str | Path | None) -> SplitLists:
    """Every recognised list in a folder (or one list file) -> ``{id: split}``.

    An id in two lists takes the first of test > labeled > unlabeled (``conflicts`` counts
    them: a test id in a training list is a leak worth knowing about).
    """
    if path is None:
        return SplitLists({}, {})
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    else:
        raise AnnotationError(f"{path}: id-list folder not found")
    split_of: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    conflicts = 0
    for f in files:
        split = split_of_list(f)
        if split is None:
            continue
        ids = load_id_list(f)
        info[f.name] = {"split": split, "ids": len(ids)}
        for clip_id in ids:
            old = split_of.get(clip_id)
            if old is None:
                split_of[clip_id] = split
            elif old != split:
                conflicts += 1
                if SPLIT_PRIORITY[split] < SPLIT_PRIORITY[old]:
                    split_of[clip_id] = split
    return SplitLists(split_of, info, conflicts)
