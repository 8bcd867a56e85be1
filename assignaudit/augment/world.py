"""Global ("world") box transforms of OpenPCDet's augmentor, on canonical boxes (spec §9.1).

Every function takes canonical float64 boxes ``[N, 9]`` (``x, y, z, dx, dy, dz, yaw, vx, vy``, LiDAR frame, metres,
radians, m/s) and returns a NEW array; inputs are never modified. Yaw is not wrapped here: OpenPCDet wraps once,
after the whole augmentation queue (``DataAugmentor.forward``), and `AugmentationReplay` does the same.

Upstream: ``pcdet/datasets/augmentor/augmentor_utils.py`` (``random_flip_along_x/_y``, ``global_rotation``,
``global_scaling``) and ``data_augmentor.py`` (``random_world_translation``). The random draws live in
`assignaudit.augment.replay`; these functions are the deterministic maths given a draw.
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
