"""GT filters that decide which boxes reach the assigner (spec §3.5, §9.1, §12.10-11).

All functions are vectorised over boxes and return new arrays (masks or name arrays); loops run only over the
small tables of class names.
"""

from __future__ import annotations

from typing import Final, Iterable

import numpy as np

from assignaudit.errors import ConfigError

RANGE_FILTERS: Final = ("pcdet", "mmdet3d", "mmdet3d_3d", "none")


def map_classes(names: np.ndarray, class_mapping: Iterable[tuple[str, str]]) -> np.ndarray:
    """object ``[N]`` dataset class names -> config class names; unmapped names (and None) pass through unchanged."""
    out = np.array(names, dtype=object, copy=True)
    for src, dst in class_mapping:
        # Compare against the ORIGINAL names so a chain a->b, b->c does not map a to c.
        out[names == src] = dst
    return out


def class_mask(names: np.ndarray, class_names: Iterable[str]) -> np.ndarray:
    """bool ``[N]``: name is one of ``class_names`` (None never is).

    A loop over the few class names rather than ``np.isin``: on object arrays holding None, ``np.isin`` may take its
    sorting path and fail comparing None with str.
    """
    mask = np.zeros(names.shape[0], dtype=bool)
    for name in class_names:
        mask |= names == name
    return mask


def min_points_mask(num_lidar_pts: np.ndarray, min_lidar_points: int) -> np.ndarray:
    """bool ``[N]``: keep under OpenPCDet's ``FILTER_MIN_POINTS_IN_GT`` (nuscenes_dataset.py ``__getitem__``).

    Upstream keeps ``num_lidar_pts > FILTER_MIN_POINTS_IN_GT - 1`` and skips the filter when the value is 0/absent.
    ``-1`` means "unknown" (e.g. a box table without counts) and is never filtered: dropping every box of a table
    that simply lacks the column would silently empty the report.
    """
    if min_lidar_points <= 0:
        return np.ones(num_lidar_pts.shape[0], dtype=bool)
    return (num_lidar_pts >= min_lidar_points) | (num_lidar_pts == -1)


def valid_flag_mask(num_lidar_pts: np.ndarray, num_radar_pts: np.ndarray) -> np.ndarray:
    """bool ``[N]``: keep under mmdet3d nuScenes ``use_valid_flag=True`` (``NuScenesDataset._filter_with_mask``).

    The info converter sets ``valid_flag = num_lidar_pts + num_radar_pts > 0`` (tools/dataset_converters/
    nuscenes_converter.py), so a box with 0 LiDAR points but some radar points is KEPT (spec §9.2, §12.11); this
    replaces the LiDAR-point filter, it does not add to it. ``-1`` (unknown) in either count keeps the box, as in
    `min_points_mask`: a source without radar counts must not lose every 0-LiDAR-point box on a guess.
    """
    known = (num_lidar_pts != -1) & (num_radar_pts != -1)
    return ~known | (num_lidar_pts + num_radar_pts > 0)


def range_mask(boxes: np.ndarray, point_cloud_range, mode: str) -> np.ndarray:
    """bool ``[N]``: box centre kept by the framework's range filter.

    * ``'pcdet'``: ``mask_boxes_outside_range_numpy`` with ``USE_CENTER_TO_FILTER`` (pcdet/utils/box_utils.py):
      centre ``x, y, z`` inside on all three axes, **inclusive** (``>= min & <= max``).
    * ``'mmdet3d'``: ``ObjectRangeFilter`` -> ``BaseInstance3DBoxes.in_range_bev``
      (mmdet3d/structures/bbox_3d/base_box3d.py): BEV centre **strictly** inside (``> min & < max``), z ignored.
    * ``'mmdet3d_3d'``: projects/DSVT ``ObjectRangeFilter3D`` -> ``in_range_3d``: x, y and the *bottom* z
      (``z - dz / 2``, mmdet3d's LiDAR box origin) strictly inside.
    * ``'none'``: no GT range filter (an OpenPCDet config without ``mask_points_and_boxes_outside_range``, or with
      ``REMOVE_OUTSIDE_BOXES: False``): every box reaches the assigner.

    Both frameworks hold the range as float32 (``np.array(PCR, dtype=np.float32)``), so the bounds are the float32
    values: -51.2 is really -51.20000076, which decides boxes a hair outside the decimal bound.
    """
    pcr = np.asarray(point_cloud_range, dtype=np.float32).astype(np.float64)
    centre = boxes[:, 0:3]
    if mode == "pcdet":
        return np.all((centre >= pcr[0:3]) & (centre <= pcr[3:6]), axis=1)
    if mode == "mmdet3d":
        return np.all((centre[:, 0:2] > pcr[0:2]) & (centre[:, 0:2] < pcr[3:5]), axis=1)
    if mode == "mmdet3d_3d":
        bottom = np.concatenate([centre[:, 0:2], centre[:, 2:3] - boxes[:, 5:6] / 2], axis=1)
        return np.all((bottom > pcr[0:3]) & (bottom < pcr[3:6]), axis=1)
    if mode == "none":
        return np.ones(boxes.shape[0], dtype=bool)
    raise ConfigError(f"gt_filters.range_filter: unknown mode {mode!r} (expected one of {', '.join(RANGE_FILTERS)})")
