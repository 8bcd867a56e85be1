r"""The one box convention used inside assignaudit, and the converters at the edges.

Canonical box (numpy array or torch tensor, shape ``[N, 9]``, or ``[N, 7]`` where velocity is not needed)::

    columns   x, y, z, dx, dy, dz, yaw, vx, vy
    frame     the sample's LIDAR_TOP frame (metres); after augmentation, the augmented LiDAR frame
    z         the geometric centre of the box (not the bottom)
    dx        length, the extent along the heading; dy = width; dz = height
    yaw       radians, counter-clockwise from +x (x -> y), wrapped to [-pi, pi)
    vx, vy    metres/second in the same frame (NaN when unknown)

                 +y
                  ^        yaw = +pi/2: heading along +y
                  |
          +-------|-------+
          |       |       |  dy
          |       o-------|--->  +x   (yaw = 0: heading along +x, dx along x)
          |               |
          +---------------+
                 dx

This is OpenPCDet's convention, so the OpenPCDet converter is the identity. mmdetection3d >= 1.0
(``LiDARInstance3DBoxes``) differs only in z, which is the bottom centre there. nuScenes stores boxes in the global
frame with size (w, l, h) and a (w, x, y, z) rotation quaternion.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

import numpy as np

BOX_COLUMNS: Final = ("x", "y", "z", "dx", "dy", "dz", "yaw", "vx", "vy")
BOX_DIM: Final = 9
YAW: Final = 6

ArrayT = TypeVar("ArrayT")


def limit_period(value, offset: float = 0.5, period: float = 2 * math.pi):
    """``value - floor(value / period + offset) * period``: maps into ``[-offset*period, (1-offset)*period)``.

    The frameworks' helper (OpenPCDet ``common_utils.limit_period``, mmdet3d ``limit_period``); works on numpy
    arrays, torch tensors and floats with the operation order of the originals.
    """
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value - torch.floor(value / period + offset) * period
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return value - np.floor(np.asarray(value) / period + offset) * period


def wrap_yaw(yaw_rad):
    """Wrap yaw to the canonical principal range [-pi, pi)."""
    return limit_period(yaw_rad, 0.5, 2 * math.pi)


# --------------------------------------------------------------------------------------------------------------------
# Rotation helpers (vectorised; the devkit's per-Box path costs ~2 ms per frame)
# --------------------------------------------------------------------------------------------------------------------


def quaternion_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    """``[N, 4]`` (w, x, y, z) quaternions -> ``[N, 3, 3]`` rotation matrices (normalised first, as pyquaternion)."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.empty(q.shape[:-1] + (3, 3), dtype=np.float64)
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def yaw_to_quaternion(yaw_rad: np.ndarray) -> np.ndarray:
    """Rotation about +z by ``yaw_rad`` as ``[N, 4]`` (w, x, y, z) quaternions."""
    half = np.asarray(yaw_rad, dtype=np.float64) / 2
    zeros = np.zeros_like(half)
    return np.stack([np.cos(half), zeros, zeros, np.sin(half)], axis=-1)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """``[N, 3, 3]`` rotation matrices -> ``[N, 4]`` (w, x, y, z) quaternions with w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Shepperd's method, choosing the numerically largest component for every matrix.
    cand = np.stack(
        [tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], axis=-1
    )
    choice = np.argmax(cand, axis=-1)
    q = np.empty(m.shape[:-2] + (4,), dtype=np.float64)
    s0 = np.sqrt(np.maximum(1.0 + tr, 1e-300)) * 2
    s1 = np.sqrt(np.maximum(1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1e-300)) * 2
    s2 = np.sqrt(np.maximum(1.0 + m[..., 1, 1] - m[..., 0, 0] - m[..., 2, 2], 1e-300)) * 2
    s3 = np.sqrt(np.maximum(1.0 + m[..., 2, 2] - m[..., 0, 0] - m[..., 1, 1], 1e-300)) * 2
    q0 = np.stack([0.25 * s0, (m[..., 2, 1] - m[..., 1, 2]) / s0, (m[..., 0, 2] - m[..., 2, 0]) / s0,
                   (m[..., 1, 0] - m[..., 0, 1]) / s0], axis=-1)
    q1 = np.stack([(m[..., 2, 1] - m[..., 1, 2]) / s1, 0.25 * s1, (m[..., 0, 1] + m[..., 1, 0]) / s1,
                   (m[..., 0, 2] + m[..., 2, 0]) / s1], axis=-1)
    q2 = np.stack([(m[..., 0, 2] - m[..., 2, 0]) / s2, (m[..., 0, 1] + m[..., 1, 0]) / s2, 0.25 * s2,
                   (m[..., 1, 2] + m[..., 2, 1]) / s2], axis=-1)
    q3 = np.stack([(m[..., 1, 0] - m[..., 0, 1]) / s3, (m[..., 0, 2] + m[..., 2, 0]) / s3,
                   (m[..., 1, 2] + m[..., 2, 1]) / s3, 0.25 * s3], axis=-1)
    for k, qk in enumerate((q0, q1, q2, q3)):
        sel = choice == k
        q[sel] = qk[sel]
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rigid_transform(rotation_wxyz: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """A 4x4 homogeneous transform ``target_SE3_source`` from a (w, x, y, z) quaternion and a translation."""
    t = np.eye(4)
    t[:3, :3] = quaternion_to_matrix(np.asarray(rotation_wxyz, dtype=np.float64)[None])[0]
    t[:3, 3] = np.asarray(translation, dtype=np.float64)
    return t


# --------------------------------------------------------------------------------------------------------------------
# nuScenes global <-> canonical
# --------------------------------------------------------------------------------------------------------------------


def nuscenes_global_to_canonical(
    translation_global: np.ndarray,
    size_wlh: np.ndarray,
    rotation_wxyz_global: np.ndarray,
    velocity_global: np.ndarray | None,
    lidar_SE3_global: np.ndarray,
) -> np.ndarray:
    """nuScenes global-frame annotations -> canonical ``[N, 9]`` boxes in the LiDAR frame.

    ``translation_global [N, 3]`` (box centre, metres), ``size_wlh [N, 3]``, ``rotation_wxyz_global [N, 4]``,
    ``velocity_global [N, 2]`` or ``[N, 3]`` (vz ignored; NaN allowed), ``lidar_SE3_global [4, 4]``.
    Velocity rotates with the box (as the devkit's ``Box.rotate`` and the frameworks' info converters do).
    yaw is the devkit's ``quaternion_yaw`` of the box orientation expressed in the LiDAR frame.
    """
    translation_global = np.asarray(translation_global, dtype=np.float64).reshape(-1, 3)
    n = translation_global.shape[0]
    rot = lidar_SE3_global[:3, :3]
    centre_lidar = translation_global @ rot.T + lidar_SE3_global[:3, 3]
    box_rot_lidar = rot[None] @ quaternion_to_matrix(np.asarray(rotation_wxyz_global).reshape(-1, 4))
    # quaternion_yaw: rotate the unit x vector and take its heading in the xy-plane.
    yaw = np.arctan2(box_rot_lidar[:, 1, 0], box_rot_lidar[:, 0, 0])
    size_wlh = np.asarray(size_wlh, dtype=np.float64).reshape(-1, 3)
    out = np.empty((n, BOX_DIM), dtype=np.float64)
    out[:, 0:3] = centre_lidar
    out[:, 3] = size_wlh[:, 1]
    out[:, 4] = size_wlh[:, 0]
    out[:, 5] = size_wlh[:, 2]
    out[:, 6] = wrap_yaw(yaw)
    if velocity_global is None:
        out[:, 7:9] = np.nan
    else:
        v = np.asarray(velocity_global, dtype=np.float64).reshape(n, -1)
        v3 = np.zeros((n, 3))
        v3[:, :2] = v[:, :2]
        out[:, 7:9] = (v3 @ rot.T)[:, :2]
    return out


def canonical_to_nuscenes_global(boxes: np.ndarray, global_SE3_lidar: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical ``[N, 7+]`` LiDAR boxes -> nuScenes global fields.

    Returns ``translation [N, 3]``, ``size_wlh [N, 3]``, ``rotation_wxyz [N, 4]`` and ``velocity [N, 2]``
    (NaN where the input has no velocity columns).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    n = boxes.shape[0]
    rot = global_SE3_lidar[:3, :3]
    translation = boxes[:, 0:3] @ rot.T + global_SE3_lidar[:3, 3]
    box_rot_global = rot[None] @ quaternion_to_matrix(yaw_to_quaternion(boxes[:, YAW]))
    rotation = matrix_to_quaternion(box_rot_global)
    size_wlh = boxes[:, [4, 3, 5]]
    velocity = np.full((n, 2), np.nan)
    if boxes.shape[1] >= 9:
        v3 = np.zeros((n, 3))
        v3[:, :2] = boxes[:, 7:9]
        velocity = (v3 @ rot.T)[:, :2]
    return {"translation": translation, "size_wlh": size_wlh, "rotation_wxyz": rotation, "velocity": velocity}


# --------------------------------------------------------------------------------------------------------------------
# Framework tensors <-> canonical
# --------------------------------------------------------------------------------------------------------------------


def mmdet3d_to_canonical(boxes_mm: ArrayT) -> ArrayT:
    """mmdetection3d >= 1.0 ``LiDARInstance3DBoxes`` tensor (bottom-centre z) -> canonical (centre z).

    Heading and dims are identical; ``z_canonical = z_mm + dz / 2``. Returns a new array/tensor.
    """
    out = boxes_mm.clone() if hasattr(boxes_mm, "clone") else np.array(boxes_mm, dtype=np.float64, copy=True)
    out[:, 2] = out[:, 2] + out[:, 5] / 2
    return out


def canonical_to_mmdet3d(boxes: ArrayT) -> ArrayT:
    """Canonical (centre z) -> mmdetection3d >= 1.0 bottom-centre z. Returns a new array/tensor."""
    out = boxes.clone() if hasattr(boxes, "clone") else np.array(boxes, dtype=np.float64, copy=True)
    out[:, 2] = out[:, 2] - out[:, 5] / 2
    return out


def pcdet_to_canonical(boxes_pcdet: ArrayT) -> ArrayT:
    """OpenPCDet boxes are already canonical (centre z, dx along heading, CCW yaw): a copy."""
    return boxes_pcdet.clone() if hasattr(boxes_pcdet, "clone") else np.array(boxes_pcdet, copy=True)


canonical_to_pcdet = pcdet_to_canonical
