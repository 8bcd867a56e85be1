"""Nearest-BEV IoU: the pi/4 snap rule per framework, hand-derived values, bit-identity of dense/aligned forms."""

import math

import numpy as np
import pytest
import torch

from assignaudit.errors import DataError
from assignaudit.ops import (
    box_iou_nearest_bev,
    box_iou_nearest_bev_aligned,
    nearest_bev_xyxy,
    xyxy_iou,
    xyxy_iou_aligned,
)


def boxes(*rows, dtype=torch.float32):
    return torch.tensor([[x, y, 0.0, dx, dy, 1.0, yaw] for x, y, dx, dy, yaw in rows], dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_yaw_exactly_pi_over_4_snaps_differently(dtype):
    # A 4 x 2 box at yaw pi/4 (as the dtype rounds it): r = |limit_period(pi/4, 0.5, pi)| = pi/4 exactly.
    # OpenPCDet keeps (dx, dy) only if r < pi/4 -> swapped: [-1, -2, 1, 2].
    # mmdet3d swaps only if r > pi/4 -> kept: [-2, -1, 2, 1].
    b = boxes((0, 0, 4, 2, math.pi / 4), dtype=dtype)
    assert nearest_bev_xyxy(b, "pcdet").tolist() == [[-1.0, -2.0, 1.0, 2.0]]
    assert nearest_bev_xyxy(b, "mmdet3d").tolist() == [[-2.0, -1.0, 2.0, 1.0]]
    # Against the same box at yaw 0: pcdet overlap 2 x 2 = 4, union 8 + 8 - 4 = 12 -> 1/3; mmdet3d identical -> 1.
    ref = boxes((0, 0, 4, 2, 0.0), dtype=dtype)
    assert box_iou_nearest_bev(b, ref, "pcdet").item() == pytest.approx(1 / 3, rel=1e-6)
    assert box_iou_nearest_bev(b, ref, "mmdet3d").item() == 1.0
    # -pi/4 and 3 pi/4 fold onto the same r.
    for yaw in (-math.pi / 4, 3 * math.pi / 4):
        bb = boxes((0, 0, 4, 2, yaw), dtype=dtype)
        assert nearest_bev_xyxy(bb, "pcdet").tolist() == [[-1.0, -2.0, 1.0, 2.0]]


def test_rotation_1_57_and_neighbours_of_pi_over_4():
    # 1.57 (the configs' "90 degrees") -> r = |1.57 - pi| = 1.5716 > pi/4: swapped in both conventions.
    b = boxes((10, -5, 4, 2, 1.57), (0, 0, 4, 2, 0.7853), (0, 0, 4, 2, 0.7854), (0, 0, 4, 2, math.pi))
    for conv in ("pcdet", "mmdet3d"):
        xyxy = nearest_bev_xyxy(b, conv).tolist()
        assert xyxy[0] == [9.0, -7.0, 11.0, -3.0]
        assert xyxy[1] == [-2.0, -1.0, 2.0, 1.0]  # just below pi/4: kept
        assert xyxy[2] == [-1.0, -2.0, 1.0, 2.0]  # just above: swapped
        assert xyxy[3] == [-2.0, -1.0, 2.0, 1.0]  # heading flipped: r = 0


def test_spec_worked_numbers_half_pitch_offset():
    # Spec §11.6: GT identical to its anchor, axis-aligned, centre half a pitch (0.8063 / 2) away in x and y.
    # IoU = (dx - p)(dy - p) / (2 dx dy - (dx - p)(dy - p)), p = 0.40315.
    p = 0.8063 / 2
    for (dx, dy), expected in (((4.63, 1.97), 0.570), ((0.73, 0.67), 0.098)):
        inter = (dx - p) * (dy - p)
        by_hand = inter / (2 * dx * dy - inter)
        assert by_hand == pytest.approx(expected, abs=1e-3)
        anchor = boxes((0, 0, dx, dy, 0.0))
        gt = boxes((p, p, dx, dy, 0.0))
        assert box_iou_nearest_bev(gt, anchor).item() == pytest.approx(by_hand, abs=1e-6)


def numpy_pcdet_reference(a: np.ndarray, b: np.ndarray, swap_at_equal: bool) -> np.ndarray:
    """Independent float32 numpy transcription of the upstream formulas (OpenPCDet box_utils /
    mmdet3d nearest_bev + mmdet bbox_overlaps), dense [N, M]."""

    def xyxy(bx):
        r = np.abs(bx[:, 6] - np.floor(bx[:, 6] / np.float32(np.pi) + np.float32(0.5)) * np.float32(np.pi))
        q = np.float32(np.pi / 4)
        swap = r >= q if swap_at_equal else r > q
        ex = np.where(swap, bx[:, 4], bx[:, 3])
        ey = np.where(swap, bx[:, 3], bx[:, 4])
        half_x, half_y = ex / np.float32(2), ey / np.float32(2)
        return np.stack((bx[:, 0] - half_x, bx[:, 1] - half_y, bx[:, 0] + half_x, bx[:, 1] + half_y), axis=1)

    pa, pb = xyxy(a), xyxy(b)
    w = np.maximum(np.minimum(pa[:, None, 2], pb[None, :, 2]) - np.maximum(pa[:, None, 0], pb[None, :, 0]),
                   np.float32(0))
    h = np.maximum(np.minimum(pa[:, None, 3], pb[None, :, 3]) - np.maximum(pa[:, None, 1], pb[None, :, 1]),
                   np.float32(0))
    inter = w * h
    area_a = (pa[:, 2] - pa[:, 0]) * (pa[:, 3] - pa[:, 1])
    area_b = (pb[:, 2] - pb[:, 0]) * (pb[:, 3] - pb[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, np.float32(1e-6))


def grid_anchors_and_gt():
    # A pcdet-like anchor grid (pitch 0.8063, rotations 0 and 1.57, one size) and GT with ties by construction.
    xs = -8 + 0.8063 * np.arange(20, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    n = gx.size
    anchors = []
    for rot in (0.0, 1.57):
        a = np.zeros((n, 7), dtype=np.float32)
        a[:, 0], a[:, 1] = gx.ravel(), gy.ravel()
        a[:, 3:6] = (4.63, 1.97, 1.74)
        a[:, 6] = rot
        anchors.append(a)
    anchors = np.concatenate(anchors)
    rng = np.random.default_rng(3)
    gt = np.zeros((60, 7), dtype=np.float32)
    gt[:, 0:2] = rng.uniform(-8, 8, (60, 2))
    gt[:20, 0:2] = anchors[rng.integers(0, n, 20), 0:2] + np.float32(0.8063 / 2)  # symmetric between anchors
    gt[:, 3:6] = rng.uniform(0.4, 6, (60, 3))
    gt[:, 6] = rng.uniform(-math.pi, math.pi, 60)
    gt[50:, 6] = np.float32(math.pi / 4)
    return torch.from_numpy(anchors), torch.from_numpy(gt)


@pytest.mark.parametrize("conv", ["pcdet", "mmdet3d"])
def test_dense_aligned_xyxy_bit_identical_and_match_numpy_transcription(conv):
    anchors, gt = grid_anchors_and_gt()
    dense = box_iou_nearest_bev(gt, anchors, conv)  # [K, N]
    ref = numpy_pcdet_reference(gt.numpy(), anchors.numpy(), swap_at_equal=(conv == "pcdet"))
    assert np.array_equal(dense.numpy(), ref)  # bit for bit
    k, n = dense.shape
    gi = torch.arange(k).repeat_interleave(n)
    ai = torch.arange(n).repeat(k)
    aligned = box_iou_nearest_bev_aligned(gt[gi], anchors[ai], conv).reshape(k, n)
    assert torch.equal(dense, aligned)
    anchor_xyxy = nearest_bev_xyxy(anchors, conv)  # precomputed once, as the assigner does
    gt_xyxy = nearest_bev_xyxy(gt, conv)
    assert torch.equal(xyxy_iou_aligned(gt_xyxy[gi], anchor_xyxy[ai]).reshape(k, n), dense)
    assert torch.equal(xyxy_iou(gt_xyxy, anchor_xyxy), dense)
    # Forced matches compare with ==: the tie structure must survive (several anchors tie on a GT's max).
    ties = (dense == dense.max(dim=1, keepdim=True).values).sum(dim=1)
    assert (ties[:20] >= 2).any()


def test_conventions_differ_only_at_exact_pi_over_4():
    _, gt = grid_anchors_and_gt()
    a, b = nearest_bev_xyxy(gt, "pcdet"), nearest_bev_xyxy(gt, "mmdet3d")
    differs = (a != b).any(dim=1)
    assert differs[50:].all() and not differs[:50].any()  # rows 50.. have yaw = float32(pi/4), and dx != dy


def test_nearest_inputs_not_mutated_and_bad_input():
    b = boxes((0, 0, 4, 2, 0.4))
    b0 = b.clone()
    box_iou_nearest_bev(b, b)
    assert torch.equal(b, b0)
    with pytest.raises(DataError, match="unknown nearest-BEV convention 'openpcdet'"):
        nearest_bev_xyxy(b, "openpcdet")
    with pytest.raises(DataError, match=r"a_xyxy: expected a floating tensor of shape \[N, 4\]"):
        xyxy_iou_aligned(torch.zeros(3, 5), torch.zeros(3, 4))
