"""``dmt lists``: a seeded labeled subset of N annotated ids, and the id lists it implies.

The paper's settings differ in |D_l| (256, 2k, 4k labeled clips). The labeled ids are the first
N of one seeded permutation of the annotated candidates, so for one seed the 256 ids lie inside
the 2k ones, which lie inside the 4k ones (rows differ only in how many labels they get). The
unlabeled list is the training pool (``--pool``, e.g. EZ-VSL's ``flickr_144k.csv``) without the
labeled and test ids, or, without a pool, the other annotated candidates. A test id is never
labeled, except with ``from_test``: VGG-Sound's only boxes are VGG-SS's test clips, so there
the labeled ids are drawn from the test list and removed from it (the test set shrinks by N).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.formats import AnnotationError, load_annotations
from pipeline.data.id_lists import load_id_list
from pipeline.data.plan import has_usable_box


def annotated_ids(source: str | Path) -> list[str]:
    """Ids with a usable box: a VGG-SS JSON, a Flickr XML folder, or an id list of annotated
    ids (e.g. ``flickr_sup_train.txt``)."""
    source = Path(source)
    if source.is_dir():
        entries = load_annotations("flickr", source).entries
    elif source.suffix.lower() == ".json":
        entries = load_annotations("vggss", source).entries
    else:
        return sorted(set(load_id_list(source)))
    return sorted(i for i, a in entries.items() if not a.error and has_usable_box(a.to_dict()))


def parse_count(text: str) -> int:
    """``256``, ``2k``, ``4k`` -> the count."""
    t = str(text).strip().lower()
    value = float(t[:-1]) * 1000 if t.endswith("k") else float(t)
    if value < 1 or value != int(value):
        raise ValueError(f"-n {text!r}: a positive whole number of ids (e.g. 256, 2k)")
    return int(value)


def draw_lists(annotated: list[str], test: list[str], n: int, seed: int = 0,
               pool: list[str] | None = None, from_test: bool = False) -> dict[str, list[str]]:
    """{"labeled", "unlabeled", "test"}: disjoint, sorted."""
    test_set = set(test)
    candidates = sorted(set(annotated) & test_set if from_test else set(annotated) - test_set)
    if n > len(candidates):
        where = "annotated test ids" if from_test else "annotated ids outside the test list"
        raise AnnotationError(f"-n {n}: only {len(candidates)} {where} to draw from")
    order = np.random.default_rng(seed).permutation(len(candidates))
    labeled = sorted(candidates[i] for i in order[:n])
    chosen = set(labeled)
    test_out = sorted(test_set - chosen)
    rest = set(pool) if pool is not None else set(candidates)
    unlabeled = sorted(rest - chosen - test_set)
    return {"labeled": labeled, "unlabeled": unlabeled, "test": test_out}


def write_lists(out: str | Path, lists: dict[str, list[str]], meta: dict[str, Any]) -> Path:
    """``labeled.txt``, ``unlabeled.txt``, ``test.txt`` and ``lists.json`` (counts, seed,
    sources) in ``out``; the folder is what ``--lists`` / ``data.lists`` take."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (out / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    info = {**meta, "counts": {k: len(v) for k, v in lists.items()}}
    (out / "lists.json").write_text(json.dumps(info, indent=1) + "\n")
    return out
