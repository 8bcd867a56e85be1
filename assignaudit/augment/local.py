"""OpenPCDet's per-object ("local") augmentations on canonical boxes (pcdet/datasets/augmentor/data_augmentor.py,
augmentor_utils.py, OpenPCDet 8cacccec).

They run inside the ``AUG_CONFIG_LIST`` queue on ``data_dict['gt_boxes']`` as it stands: every GT box of the frame
(classes outside ``CLASS_NAMES`` included, the class mask is applied only after the queue) followed by the boxes
``gt_sampling`` pasted, in that order. `AugmentationReplay` keeps the same order, so draw i goes to the same box.

Draw order (each op has its own seeded generator, see `assignaudit.augment.replay`):

* ``random_local_rotation``: one ``uniform(lo, hi)`` per box, in box order. Upstream translates the box to the
  origin, rotates it and translates it back, so the centre is unchanged; ``yaw += u`` (not wrapped here; the
  queue's final ``limit_period`` wraps it). Upstream then rotates the velocity with
  ``np.hstack((gt_boxes[idx, 7:9], np.zeros((N, 1))))``, which raises for any frame with a box when the boxes have
  velocity columns (nuScenes; Waymo ``TRAIN_WITH_SPEED``): such a config cannot train, and the importer refuses it.
  On 7-column datasets the canonical velocity columns are unused, and they are left as they are.
* ``random_local_scaling``: nothing at all (no draw) when ``hi - lo < 1e-3``; else one ``uniform(lo, hi)`` per box;
  ``dx, dy, dz *= s`` about the unchanged centre.
* ``random_local_translation``: for each axis of ``ALONG_AXIS_LIST`` in order, one ``uniform(lo, hi)`` per box,
  added to that centre coordinate (metres; velocity unchanged).
* ``random_local_frustum_dropout`` / ``random_local_pyramid_aug`` remove or move *points* inside boxes and never
  touch a box: the box replay is the identity and they draw nothing here (upstream their draws come from the same
  global numpy stream as everything else; our per-op generators make the other ops independent of them).
  OpenPCDet has no points-based GT filter after the queue, so they change no GT survival or box target. They do
  change what a points-based target sees: a head that places its positive at the occupied voxel nearest a GT centre
  (VoxelNeXt) would see fewer, or other, occupied voxels in the dropped slab / pyramid, and a frame's
  ``num_lidar_pts`` after them is lower than the recorded count. assignaudit does not replay points, so
  points-based heads are refused with these ops.

``numpy.random.Generator.uniform(lo, hi, size=n)`` yields the same values as n successive scalar calls, so the
vectorised draws below equal the per-box loop upstream.
"""

from __future__ import annotations

import numpy as np

from assignaudit.augment.params import (
    LocalFrustumDropout,
    LocalPyramidAug,
    LocalRotation,
    LocalScaling,
    LocalTranslation,
)
from assignaudit.errors import ConfigError

# local_scaling returns early, without a draw, below this range width (as global_scaling).
LOCAL_SCALE_SKIP_WIDTH = 1e-3
_AXIS = {"x": 0, "y": 1, "z": 2}
POINTS_ONLY_OPS = (LocalFrustumDropout, LocalPyramidAug)


def validate_local_op(op, where: str) -> None:
    """The checks `AugmentationReplay` runs on a config's local op (our YAML can build any values)."""
    if isinstance(op, (LocalRotation, LocalScaling, LocalTranslation)):
        rng = op.angle_range_rad if isinstance(op, LocalRotation) else \
            op.scale_range if isinstance(op, LocalScaling) else op.offset_range
        lo, hi = rng
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ConfigError(f"{where}: {type(op).__name__} range ({lo}, {hi}) must be finite with lo <= hi")
        if isinstance(op, LocalScaling) and not lo > 0:
            raise ConfigError(f"{where}: LocalScaling range ({lo}, {hi}) must satisfy 0 < lo <= hi")
        if isinstance(op, LocalTranslation):
            bad = [a for a in op.axes if a not in _AXIS]
            if bad:
                raise ConfigError(f"{where}: local translation axis {bad[0]!r} is not 'x', 'y' or 'z'")


def apply_local_op(op, boxes: np.ndarray, rng: np.random.Generator,
                   draws: list[tuple[str, float]]) -> np.ndarray:
    """One local op on canonical ``[N, 9]`` boxes (a new array); appends summary draws to ``draws``."""
    n = boxes.shape[0]
    if isinstance(op, POINTS_ONLY_OPS):
        return boxes
    if isinstance(op, LocalRotation):
        angle = rng.uniform(op.angle_range_rad[0], op.angle_range_rad[1], size=n)
        out = boxes.copy()
        out[:, 6] = boxes[:, 6] + angle
        draws.append(("local_rotation_boxes", float(n)))
        return out
    if isinstance(op, LocalScaling):
        lo, hi = op.scale_range
        if hi - lo < LOCAL_SCALE_SKIP_WIDTH:
            return boxes
        factor = rng.uniform(lo, hi, size=n)
        out = boxes.copy()
        out[:, 3:6] = boxes[:, 3:6] * factor[:, None]
        draws.append(("local_scaling_boxes", float(n)))
        return out
    if isinstance(op, LocalTranslation):
        out = boxes.copy()
        if op.axes:
            offsets = rng.uniform(op.offset_range[0], op.offset_range[1], size=(len(op.axes), n))
            for row, axis in enumerate(op.axes):  # axes in list order; a repeated axis adds twice, as upstream
                out[:, _AXIS[axis]] += offsets[row]
        draws.append(("local_translation_boxes", float(n)))
        return out
    raise TypeError(f"not a local op: {op!r}")  # pragma: no cover
