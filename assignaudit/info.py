"""``assignaudit info``: what is in a dataset split, per class and BEV range band (a plain, JSON-ready dict).

Distances are BEV (``sqrt(x^2 + y^2)``) from the LiDAR origin of each frame, banded by `assignaudit.bands.Bands`.
Annotations whose category has no detection class (``detection_class is None``; e.g. ``animal``,
``static_object.bicycle_rack``) are counted in the ``"(none)"`` row, with their categories listed separately.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from assignaudit.bands import Bands
from assignaudit.sources.base import BoxSource

NONE_CLASS = "(none)"
UNNAMED_CATEGORY = "(unnamed)"  # a box without a category name (mmdet3d v2 infos: label -1)

# nuScenes' 10 detection classes in the devkit's detection_cvpr_2019 order; listed for nuScenes sources even when
# a class is absent from the split (an absent class is exactly what the user should see).
NUSCENES_DETECTION_CLASSES: tuple[str, ...] = (
    "car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
    "traffic_cone", "barrier",
)


def dataset_info(source: BoxSource, bands: Bands | None = None) -> dict[str, Any]:
    """Counts over every frame of ``source``.

    Returns ``{"source": {...SourceInfo}, "num_scenes", "num_samples", "num_annotations", "bands": [names],
    "classes": {class: {"num_annotations", "by_band": {band: n}, "num_zero_lidar_pts", "num_unknown_lidar_pts"}},
    "none_categories": {category: n}}``. ``classes`` lists the detection classes (for nuScenes all ten, in the
    devkit's order; for tables in first-appearance order) and ``"(none)"`` last when it is non-empty.
    Zero-point counts use ``num_lidar_pts == 0``; ``-1`` (unknown, tables) is counted separately.
    """
    bands = bands or Bands()
    cls_parts, band_parts, pts_parts, cat_parts = [], [], [], []
    for frame in source.frames():
        det = frame.detection_class
        cls_parts.append(np.array([NONE_CLASS if c is None else str(c) for c in det], dtype=object))
        band_parts.append(bands.index(frame.dist_bev_m))
        pts_parts.append(np.asarray(frame.num_lidar_pts, dtype=np.int64))
        cat_parts.append(np.asarray(frame.category, dtype=object)[np.array([c is None for c in det], dtype=bool)])
    cls = np.concatenate(cls_parts) if cls_parts else np.zeros(0, dtype=object)
    band = np.concatenate(band_parts) if band_parts else np.zeros(0, dtype=np.int64)
    pts = np.concatenate(pts_parts) if pts_parts else np.zeros(0, dtype=np.int64)

    present = list(dict.fromkeys(c for c in cls.tolist() if c != NONE_CLASS))
    if source.info.kind == "nuscenes":
        order = list(NUSCENES_DETECTION_CLASSES) + [c for c in present if c not in NUSCENES_DETECTION_CLASSES]
    else:
        order = present
    if (cls == NONE_CLASS).any():
        order.append(NONE_CLASS)

    names = bands.names
    classes: dict[str, Any] = {}
    for c in order:
        m = cls == c
        per_band = np.bincount(band[m], minlength=len(names))
        classes[c] = {
            "num_annotations": int(m.sum()),
            "by_band": {n: int(v) for n, v in zip(names, per_band)},
            "num_zero_lidar_pts": int((m & (pts == 0)).sum()),
            "num_unknown_lidar_pts": int((m & (pts < 0)).sum()),
        }
    none_categories = Counter(UNNAMED_CATEGORY if c is None else str(c) for part in cat_parts for c in part.tolist())
    info = source.info
    return {
        "source": {"kind": info.kind, "dataroot": info.dataroot, "version": info.version, "split": info.split},
        "num_scenes": int(info.num_scenes),
        "num_samples": int(len(source)),
        "num_annotations": int(cls.shape[0]),
        "bands": names,
        "classes": classes,
        "none_categories": dict(sorted(none_categories.items())),
    }
