"""Global ("world") box transforms of OpenPCDet's augmentor and mmdetection3d 1.x's, on canonical boxes (§9.1, §9.2).

Every function takes canonical float64 boxes ``[N, 9]`` (``x, y, z, dx, dy, dz, yaw, vx, vy``, LiDAR frame, metres,
radians, m/s) and returns a NEW array; inputs are never modified. Yaw is not wrapped here: OpenPCDet wraps once,
after the whole augmentation queue (``DataAugmentor.forward``), and `AugmentationReplay` does the same.

Upstream: ``pcdet/datasets/augmentor/augmentor_utils.py`` (``random_flip_along_x/_y``, ``global_rotation``,
``global_scaling``) and ``data_augmentor.py`` (``random_world_translation``). The random draws live in
`assignaudit.augment.replay`; these functions are the deterministic maths given a draw.

mmdetection3d 1.x (``GlobalRotScaleTrans``, ``RandomFlip3D``) works on ``LiDARInstance3DBoxes``
(mmdet3d/structures/bbox_3d/lidar_box3d.py, base_box3d.py), bottom-centred. On canonical (gravity-centred) boxes its
maths is the same as OpenPCDet's for rotation (counter-clockwise since the 1.0 coordinate refactor, PR #677; velocity
``@ rot_mat_T`` rotates the same way), scaling (``tensor[:, :6] *= s`` and ``tensor[:, 7:] *= s``: the bottom z and
dz both scale, so the centre z scales by s too) and translation (``tensor[:, :3] += t`` moves bottom and centre
alike), so `rotate_about_z`, `scale` and `translate` serve both. Only the flips have their own functions below: the
BEV "horizontal" flip equals OpenPCDet's flip along x; the "vertical" flip writes its yaw as ``-yaw + pi`` where
OpenPCDet writes ``-(yaw + pi)`` (equal modulo 2 pi, different before the final wrap). mmdet3d holds boxes in
float32; we compute in float64 (differences ~1e-6 m, visible only at a range-filter boundary).
"""

from __future__ import annotations

import math

import numpy as np


def flip_along_x(boxes: np.ndarray) -> np.ndarray:
    """Mirror across the x-z plane ("flip along x", OpenPCDet issue #843): y -> -y, yaw -> -yaw, vy -> -vy."""
    out = boxes.copy()
    out[:, 1] = -boxes[:, 1]
    out[:, 6] = -boxes[:, 6]
    out[:, 8] = -boxes[:, 8]
    return out


def flip_along_y(boxes: np.ndarray) -> np.ndarray:
    """Mirror across the y-z plane: x -> -x, yaw -> -(yaw + pi), vx -> -vx.

    ``-(yaw + pi)`` is OpenPCDet's literal formula (equal to ``pi - yaw`` modulo 2 pi); it is kept verbatim so the
    unwrapped intermediate yaw matches upstream before the final ``limit_period``.
    """
    out = boxes.copy()
    out[:, 0] = -boxes[:, 0]
    out[:, 6] = -(boxes[:, 6] + np.pi)
    out[:, 7] = -boxes[:, 7]
    return out


def rotate_about_z(boxes: np.ndarray, angle_rad: float) -> np.ndarray:
    """Counter-clockwise rotation by ``angle_rad`` about the LiDAR z axis (``common_utils.rotate_points_along_z``).

    Centres and velocities rotate: ``x' = x cos a - y sin a``, ``y' = x sin a + y cos a``; ``yaw += a``.
    """
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] * c - boxes[:, 1] * s
    out[:, 1] = boxes[:, 0] * s + boxes[:, 1] * c
    out[:, 6] = boxes[:, 6] + angle_rad
    out[:, 7] = boxes[:, 7] * c - boxes[:, 8] * s
    out[:, 8] = boxes[:, 7] * s + boxes[:, 8] * c
    return out


def scale(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Uniform scaling about the LiDAR origin: centres, dims and (current OpenPCDet) velocity x ``factor``; yaw kept."""
    out = boxes * factor
    out[:, 6] = boxes[:, 6]
    return out


def translate(boxes: np.ndarray, offset_m: np.ndarray) -> np.ndarray:
    """Add ``offset_m`` (float64 ``[3]``, metres) to the centres; dims, yaw and velocity unchanged."""
    out = boxes.copy()
    out[:, 0:3] = boxes[:, 0:3] + offset_m
    return out


# --------------------------------------------------------------------------------------------------------------------
# mmdetection3d 1.x RandomFlip3D (LiDARInstance3DBoxes.flip)
# --------------------------------------------------------------------------------------------------------------------


def flip_bev_horizontal(boxes: np.ndarray) -> np.ndarray:
    """mmdet3d 1.x ``flip('horizontal')``: y -> -y, vy -> -vy (``tensor[:, 1::7]``), yaw -> -yaw.

    (mmdet3d 0.x, with its clockwise yaw, wrote ``-yaw + pi`` here; 1.x boxes are canonical, so ``-yaw``.)
    """
    return flip_along_x(boxes)


def flip_bev_vertical(boxes: np.ndarray) -> np.ndarray:
    """mmdet3d 1.x ``flip('vertical')``: x -> -x, vx -> -vx (``tensor[:, 0::7]``), yaw -> -yaw + pi (literal,
    not wrapped here)."""
    out = boxes.copy()
    out[:, 0] = -boxes[:, 0]
    out[:, 6] = np.pi - boxes[:, 6]
    out[:, 7] = -boxes[:, 7]
    return out
