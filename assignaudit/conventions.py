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
import sys
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
    # A tensor exists only if torch is already imported: do not pay torch's import (seconds) for numpy input.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value - torch.floor(value / period + offset) * period
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


def pcdet_fakelidar_to_canonical(boxes_fakelidar: np.ndarray) -> np.ndarray:
    """OpenPCDet's old "fake LiDAR" boxes ``[x, y, z_bottom, w, l, h, r, ...]`` -> canonical ``[N, 7]``.

    As ``box_utils.boxes3d_kitti_fakelidar_to_lidar`` (what ``waymo_dataset.py`` applies to ``gt_boxes_lidar`` under
    ``INFO_WITH_FAKELIDAR``): centre ``z = z_bottom + h / 2``, ``dx, dy, dz = l, w, h``, yaw ``-(r + pi / 2)``. Only
    the 7 box columns come back (upstream concatenates those and drops any velocity); yaw is not wrapped here.
    """
    b = np.asarray(boxes_fakelidar, dtype=np.float64)
    w, l, h, r = b[:, 3:4], b[:, 4:5], b[:, 5:6], b[:, 6:7]
    return np.concatenate([b[:, 0:2], b[:, 2:3] + h / 2, l, w, h, -(r + np.pi / 2)], axis=1)


# --------------------------------------------------------------------------------------------------------------------
# KITTI rectified camera <-> canonical
# --------------------------------------------------------------------------------------------------------------------
#
# KITTI labels (and KITTI-format predictions) are boxes in the rectified camera-2 frame: x right, y down, z forward,
# ``location`` the BOTTOM centre, ``dimensions`` (h, w, l) in the file, ``rotation_y`` about the camera's y axis.
# The calibration maps a LiDAR point to that frame: ``p_rect = R0_rect @ (Tr_velo_to_cam @ [p_lidar, 1])``.
# OpenPCDet's converter (pcdet/datasets/kitti/kitti_dataset.py::get_infos, pcdet/utils/box_utils.py
# ``boxes3d_kitti_camera_to_lidar`` / ``boxes3d_lidar_to_kitti_camera``, pcdet/utils/calibration_kitti.py) is
# reproduced operation by operation, float32 matrices included, so the boxes equal the ``gt_boxes_lidar`` of a
# ``kitti_infos_*.pkl`` written by ``create_kitti_infos`` bit for bit (before our yaw wrap).


def _kitti_matrices(r0_rect, tr_velo_to_cam) -> tuple[np.ndarray, np.ndarray]:
    """``R0_rect`` as float32 ``[3, 3]`` and ``Tr_velo_to_cam`` as float32 ``[3, 4]`` (the 4x4 forms of an info file
    are accepted too), as ``calibration_kitti.get_calib_from_file`` holds them."""
    r0 = np.asarray(r0_rect, dtype=np.float32)
    v2c = np.asarray(tr_velo_to_cam, dtype=np.float32)
    return np.ascontiguousarray(r0[:3, :3]), np.ascontiguousarray(v2c[:3, :4])


def kitti_rect_to_lidar(pts_rect: np.ndarray, r0_rect, tr_velo_to_cam) -> np.ndarray:
    """Rectified-camera points ``[N, 3]`` -> LiDAR points ``[N, 3]`` (float32), as ``Calibration.rect_to_lidar``:
    ``[p, 1] @ inv((R0_ext @ V2C_ext).T)`` with the 4x4 float32 extensions of both matrices."""
    r0, v2c = _kitti_matrices(r0_rect, tr_velo_to_cam)
    pts = np.asarray(pts_rect, dtype=np.float32).reshape(-1, 3)
    hom = np.hstack((pts, np.ones((pts.shape[0], 1), dtype=np.float32)))
    r0_ext = np.zeros((4, 4), dtype=np.float32)
    r0_ext[:3, :3] = r0
    r0_ext[3, 3] = 1
    v2c_ext = np.vstack((v2c, np.zeros((1, 4), dtype=np.float32)))
    v2c_ext[3, 3] = 1
    return np.dot(hom, np.linalg.inv(np.dot(r0_ext, v2c_ext).T))[:, 0:3]


def kitti_lidar_to_rect(pts_lidar: np.ndarray, r0_rect, tr_velo_to_cam) -> np.ndarray:
    """LiDAR points ``[N, 3]`` -> rectified camera ``[N, 3]``, as ``Calibration.lidar_to_rect``."""
    r0, v2c = _kitti_matrices(r0_rect, tr_velo_to_cam)
    pts = np.asarray(pts_lidar, dtype=np.float32).reshape(-1, 3)
    hom = np.hstack((pts, np.ones((pts.shape[0], 1), dtype=np.float32)))
    return np.dot(hom, np.dot(v2c.T, r0.T))


def kitti_camera_to_lidar_raw(location: np.ndarray, dimensions_lhw: np.ndarray, rotation_y: np.ndarray,
                              r0_rect, tr_velo_to_cam) -> np.ndarray:
    """KITTI camera boxes -> OpenPCDet LiDAR boxes ``[N, 7]`` float64, yaw NOT wrapped (what the info file holds).

    ``location [N, 3]`` bottom centre in the rectified camera frame, ``dimensions_lhw [N, 3]`` (l, h, w: OpenPCDet's
    ``annos['dimensions']`` order; the label file writes h, w, l), ``rotation_y [N]``. As ``get_infos``:
    the location goes through float32 (``Object3d.loc``), ``rect_to_lidar``; ``z += h / 2`` (bottom centre ->
    centre) in place on the float32 array; ``dx, dy, dz = l, w, h``; ``heading = -(pi / 2 + rotation_y)``. The
    rotation part of the calibration does not enter the heading (upstream ignores it; KITTI's R0_rect and
    Tr_velo_to_cam rotate by well under a degree about the vertical).
    """
    loc = np.asarray(location, dtype=np.float32).reshape(-1, 3)
    dims = np.asarray(dimensions_lhw, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    loc_lidar = kitti_rect_to_lidar(loc, r0_rect, tr_velo_to_cam)
    l, h, w = dims[:, 0:1], dims[:, 1:2], dims[:, 2:3]
    loc_lidar[:, 2] += h[:, 0] / 2
    return np.concatenate([loc_lidar, l, w, h, -(np.pi / 2 + ry[:, np.newaxis])], axis=1)


def kitti_camera_to_canonical(location: np.ndarray, dimensions_lhw: np.ndarray, rotation_y: np.ndarray,
                              r0_rect, tr_velo_to_cam) -> np.ndarray:
    """KITTI camera boxes -> canonical ``[N, 9]`` (`kitti_camera_to_lidar_raw`, yaw wrapped, velocity NaN)."""
    raw = kitti_camera_to_lidar_raw(location, dimensions_lhw, rotation_y, r0_rect, tr_velo_to_cam)
    out = np.full((raw.shape[0], BOX_DIM), np.nan)
    out[:, :7] = raw
    out[:, YAW] = wrap_yaw(raw[:, YAW])
    return out


def canonical_to_kitti_camera(boxes: np.ndarray, r0_rect, tr_velo_to_cam) -> dict[str, np.ndarray]:
    """Canonical ``[N, 7+]`` LiDAR boxes -> KITTI camera fields, as ``box_utils.boxes3d_lidar_to_kitti_camera``.

    Returns ``location [N, 3]`` (bottom centre, rectified camera, float32 like upstream), ``dimensions_lhw [N, 3]``
    and ``rotation_y [N]`` (``-yaw - pi / 2``, not wrapped, as upstream).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    xyz = boxes[:, 0:3].copy()
    xyz[:, 2] -= boxes[:, 5] / 2
    return {"location": kitti_lidar_to_rect(xyz, r0_rect, tr_velo_to_cam),
            "dimensions_lhw": boxes[:, [3, 5, 4]].copy(), "rotation_y": -boxes[:, YAW] - np.pi / 2}


def mmdet3d_camera_to_canonical(boxes_cam: np.ndarray, lidar2cam: np.ndarray) -> np.ndarray:
    """mmdetection3d ``CameraInstance3DBoxes`` -> canonical ``[N, 9]`` through the info's own ``lidar2cam``.

    ``boxes_cam [N, 7]``: ``x, y, z`` the bottom centre in the (rectified) camera frame, sizes ``(l, h, w)`` (camera
    x, y, z extents, mmdet3d's KITTI order), ``ry``. As ``Box3DMode.convert(CAM -> LIDAR, rt_mat=inv(lidar2cam))``
    with ``correct_yaw=False`` (what ``KittiDataset.parse_ann_info`` does): ``xyz = [xyz, 1] @ inv(lidar2cam).T``,
    sizes ``(l, w, h)``, ``yaw = limit_period(-ry - pi / 2)``; then bottom centre -> centre (`mmdet3d_to_canonical`).
    mmdet3d runs this in float32; here it is float64 (the results agree to float32 rounding). Velocity NaN.
    """
    b = np.asarray(boxes_cam, dtype=np.float64).reshape(-1, 7)
    rt = np.linalg.inv(np.asarray(lidar2cam, dtype=np.float64).reshape(4, 4))
    hom = np.hstack([b[:, :3], np.ones((b.shape[0], 1))])
    out = np.full((b.shape[0], BOX_DIM), np.nan)
    out[:, 0:3] = (hom @ rt.T)[:, :3]
    out[:, 3:6] = b[:, [3, 5, 4]]
    out[:, YAW] = wrap_yaw(-b[:, 6] - np.pi / 2)
    return mmdet3d_to_canonical(out)


# --------------------------------------------------------------------------------------------------------------------
# Argoverse 2 ego frame -> canonical
# --------------------------------------------------------------------------------------------------------------------


def av2_yaw(q_wxyz: np.ndarray) -> np.ndarray:
    """Heading of AV2 cuboid quaternions ``[N, 4]`` (w, x, y, z): ``atan2(2 (wz + xy), 1 - 2 (y^2 + z^2))``.

    The z angle of av2's ``mat_to_xyz(quat_to_mat(q))`` (scipy extrinsic ``xyz`` Euler angles; av2/geometry/
    geometry.py, used by av2/evaluation/detection/utils.py for the orientation error) and OpenPCDet's
    ``argo2_utils/so3.py::quat_to_yaw`` (same formula, as the info converter computes ``rotation_y``).
    """
    q = np.asarray(q_wxyz, dtype=np.float64).reshape(-1, 4)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def av2_ego_to_canonical(translation_m: np.ndarray, lwh_m: np.ndarray, q_wxyz: np.ndarray) -> np.ndarray:
    """AV2 ``annotations.feather`` cuboids -> canonical ``[N, 9]``.

    AV2 annotates every LiDAR sweep in the ego-vehicle frame at the sweep's timestamp (x forward, y left, z up; the
    sweep's points are in the same frame), with ``tx_m, ty_m, tz_m`` the cuboid CENTRE and ``length_m`` along the
    cuboid's x axis: already canonical up to the heading (`av2_yaw`, wrapped). The "LiDAR frame" of an AV2 frame is
    this ego frame. Velocity: AV2 annotations have none (NaN).
    """
    t = np.asarray(translation_m, dtype=np.float64).reshape(-1, 3)
    out = np.full((t.shape[0], BOX_DIM), np.nan)
    out[:, 0:3] = t
    out[:, 3:6] = np.asarray(lwh_m, dtype=np.float64).reshape(-1, 3)
    out[:, YAW] = wrap_yaw(av2_yaw(q_wxyz))
    return out
