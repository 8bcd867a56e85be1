"""The output of the augmentation replay: the GT set one training step would hand to the target assigner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Iterator

import numpy as np

SOURCE_DATASET: Final = "dataset"
SOURCE_GT_SAMPLING: Final = "gt_sampling"

# Why a dataset GT never reached the assigner (the `count` ledger's reasons), in pipeline order.
# num_lidar_pts < FILTER_MIN_POINTS_IN_GT before augmentation; under mmdet3d use_valid_flag: LiDAR + radar points == 0
DROP_MIN_POINTS: Final = "min_points"
DROP_CLASS_FILTER: Final = "class_filter"  # class (after class_mapping) not in the config's class_names
DROP_OUT_OF_RANGE: Final = "out_of_range"  # augmented centre outside the point-cloud range
DROP_REASONS: Final = (DROP_MIN_POINTS, DROP_CLASS_FILTER, DROP_OUT_OF_RANGE)


@dataclass(frozen=True)
class DroppedGT:
    """Dataset GT of one frame removed before the assigner, and why (one row per removed box).

    Pasted (gt_sampling) boxes are not dataset GT and never appear here; see ``AugmentedFrame.draws`` for how many
    pasted boxes the range filter removed.
    """

    frame_index: np.ndarray
    """int64 ``[D]``: row of the box in the input `Frame`."""
    ann_token: np.ndarray
    """object ``[D]``: annotation token (None where the source has none)."""
    class_name: np.ndarray
    """object ``[D]``: class after ``class_mapping`` (the dataset's class when unmapped; None when it has none)."""
    reason: np.ndarray
    """object ``[D]``: one of `DROP_REASONS`: the first filter, in pipeline order, that removed the box."""

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])

    def __iter__(self) -> Iterator[tuple[object, object, str]]:
        """Rows as ``(ann_token, class_name, reason)`` tuples (for small per-frame ledgers)."""
        return zip(self.ann_token.tolist(), self.class_name.tolist(), self.reason.tolist())

    @staticmethod
    def empty() -> "DroppedGT":
        obj = np.empty(0, dtype=object)
        return DroppedGT(np.empty(0, dtype=np.int64), obj, obj.copy(), obj.copy())


@dataclass(frozen=True)
class AugmentedFrame:
    """The GT of one (sample, replay) after augmentation and filters, as the assigner sees them.

    Per-box arrays have length N and line up row by row. Boxes are canonical (`assignaudit.conventions`) in the
    *augmented* LiDAR frame, yaw wrapped to [-pi, pi).
    """

    sample_token: str
    replay: int
    """Replay index; with the seed it fixes every random draw of this frame."""
    boxes: np.ndarray
    """float64 ``[N, 9]``: ``x, y, z, dx, dy, dz, yaw, vx, vy`` (metres, radians, m/s), augmented frame."""
    class_name: np.ndarray
    """object ``[N]``: config class name (every entry is in ``config.class_names``)."""
    source: np.ndarray
    """object ``[N]``: ``'dataset'`` or ``'gt_sampling'`` (pasted from the GT database)."""
    ann_token: np.ndarray
    """object ``[N]``: annotation token of dataset GT; None for pasted boxes."""
    num_lidar_pts: np.ndarray
    """int64 ``[N]``: LiDAR points in the box as annotated (pasted boxes: the database object's count; -1 unknown)."""
    frame_index: np.ndarray
    """int64 ``[N]``: row in the input `Frame` for dataset GT; -1 for pasted boxes."""
    dropped: DroppedGT
    """Dataset GT removed by the filters, with the reason."""
    draws: tuple[tuple[str, float], ...] = ()
    """The random draws actually applied, in order: ``('flip_x', 0.|1.)``, ``('flip_y', 0.|1.)``,
    ``('rotation_rad', a)``, ``('scale', s)``, ``('translate_x_m' | '_y_m' | '_z_m', t)``,
    ``('gt_sampling_drawn', n)``, ``('gt_sampling_pasted', n)``, ``('gt_sampling_out_of_range', n)``; mmdet3d ops
    add ``('flip_horizontal', 0.|1.)``, ``('flip_vertical', 0.|1.)`` (RandomFlip3D) and reuse the rotation, scale,
    translation and gt_sampling names (GlobalRotScaleTrans, ObjectSample); ``ObjectNoise`` records
    ``('object_noise_moved', n)`` and ``('object_noise_unmoved', n)`` (boxes with no collision-free trial). Empty when
    augmentation is off."""
    augmented: bool = True
    """False for ``--no-augment`` replays (filters only)."""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def dist_bev_m(self) -> np.ndarray:
        """float64 ``[N]``: BEV distance of each box centre from the augmented LiDAR origin, sqrt(x^2 + y^2)."""
        return np.hypot(self.boxes[:, 0], self.boxes[:, 1])

    def draw(self, name: str, default: float | None = None) -> float | None:
        """The last value recorded under ``name`` in `draws` (``default`` if that op did not run)."""
        value = default
        for key, val in self.draws:
            if key == name:
                value = val
        return value
