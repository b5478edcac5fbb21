"""`dmt lists` on the field's real id lists: seeded, nested across |D_l|, disjoint splits, the
test list untouched unless --from-test (VGG-Sound, whose only boxes are VGG-SS's test clips)."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.data.id_lists import load_id_list
from pipeline.data.lists import annotated_ids, draw_lists, parse_count


def test_flickr_lists_are_nested_and_disjoint(metadata_dir, tmp_path):
    sup, test = metadata_dir / "flickr_sup_train.txt", metadata_dir / "flickr_test.csv"
    for n in ("256", "2k", "4k"):
        assert main(["lists", "--annotated", str(sup), "--test", str(test), "-n", n,
                     "--out", str(tmp_path / n)]) == 0
    sets = {n: {k: set(load_id_list(tmp_path / n / f"{k}.txt"))
                for k in ("labeled", "unlabeled", "test")} for n in ("256", "2k", "4k")}
    assert [len(sets[n]["labeled"]) for n in sets] == [256, 2000, 4000]
    assert sets["256"]["labeled"] <= sets["2k"]["labeled"] <= sets["4k"]["labeled"]
    for s in sets.values():
        assert not (s["labeled"] & s["unlabeled"] or s["labeled"] & s["test"]
                    or s["unlabeled"] & s["test"])
        assert s["labeled"] | s["unlabeled"] == set(load_id_list(sup))
        assert s["test"] == set(load_id_list(test))
    info = json.loads((tmp_path / "256" / "lists.json").read_text())
    assert info["counts"] == {"labeled": 256, "unlabeled": 4494, "test": 249}
    again = draw_lists(sorted(load_id_list(sup)), load_id_list(test), 256, seed=0)
    assert set(again["labeled"]) == sets["256"]["labeled"]  # seeded
    assert set(draw_lists(sorted(load_id_list(sup)), [], 256, seed=1)["labeled"]) != \
        sets["256"]["labeled"]


def test_vggss_labeled_ids_come_out_of_the_test_list(metadata_dir):
    annotated = annotated_ids(metadata_dir / "vggss.json")
    test = load_id_list(metadata_dir / "vggss_test.csv")
    # 5,158 entries; 2 of them have only boxes that clipping made zero-area: no usable box
    assert len(annotated) == 5156
    with pytest.raises(ValueError, match="only 0 annotated ids outside the test list"):
        draw_lists(annotated, test, 256)
    lists = draw_lists(annotated, test, 256, from_test=True, pool=["x1", "x2", test[0]])
    assert len(lists["labeled"]) == 256 and len(lists["test"]) == len(set(test)) - 256
    assert not set(lists["labeled"]) & set(lists["test"])
    assert set(lists["unlabeled"]) <= {"x1", "x2"}


def test_counts_read_like_the_paper():
    assert [parse_count(t) for t in ("256", "2k", "4k", "0.5k")] == [256, 2000, 4000, 500]
    with pytest.raises(ValueError):
        parse_count("-3")
