"""Trivial and ideal predictors on a synthetic layout, scored with ``pipeline.metrics`` (the one
metric): what a layout allows before any model is trained.

- ``oracle``: ``metrics.oracle_map`` of the sounding boxes' map (box pixels ranked first). Under
  the median rule this is the best any map can score (cIoU = ``2a`` for a box of area ``a < 0.5``).
- ``centre``: ``metrics.centre_box_map`` (any map falling with distance from the centre selects
  the same central half of the frame).
- ``whole``: ``metrics.whole_image_map`` (everything selected; cIoU = the box area).
- ``largest``: the largest object's box ranked first (needs every object's box): how far the
  size of the objects alone would get a model.
- ``off_centre``: the box farthest from the centre (the lowest ``centre`` cIoU) ranked first:
  how far the sounders' off-centre placement alone would get a model.
"""

from __future__ import annotations

from pipeline import metrics


def baseline_scores(annotations: list[dict], objects: list[list[list[float]]] | None = None
                    ) -> dict[str, dict[str, float]]:
    """``{predictor: {"ciou", "auc", "mean_ciou"}}`` on VGG-SS style ``annotations``
    (``{"bbox": [...]}`` each). ``objects``, if given, lists every object's box per clip (same
    order) for ``largest`` and ``off_centre``."""
    centre, whole = metrics.centre_box_map(), metrics.whole_image_map()
    rows: dict[str, list[float]] = {"oracle": [], "centre": [], "whole": []}
    if objects is not None:
        rows["largest"], rows["off_centre"] = [], []
    for k, ann in enumerate(annotations):
        gt = metrics.gt_map(ann["bbox"])
        rows["oracle"].append(metrics.ciou(metrics.oracle_map(gt), gt))
        rows["centre"].append(metrics.ciou(centre, gt))
        rows["whole"].append(metrics.ciou(whole, gt))
        if objects is not None:
            largest = max(objects[k], key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            outer = min(objects[k], key=lambda b: metrics.ciou(centre, metrics.gt_map([b])))
            for name, box in (("largest", largest), ("off_centre", outer)):
                rows[name].append(metrics.ciou(metrics.oracle_map(metrics.gt_map([box])), gt))
    return {name: metrics.summarize(values) for name, values in rows.items()}
