"""The vectorised 1 cm-margin kernel (``margin_compat=True``) against a scalar, one-pair-at-a-time transcription of
the rules of OpenPCDet's ``box_overlap`` (corners, proper crossings, ``check_in_box2d`` with the margin, angular
sort around the mean, fan area), written here in plain Python floats. Covers the crossing computation that the
kernel evaluates only on the edge pairs that cross."""

from __future__ import annotations

import math

import torch

from assignaudit.ops import box_iou_bev_aligned
from assignaudit.ops.rotated import MARGIN


def _corners(b):
    x, y, dx, dy, yaw = b[0], b[1], b[3], b[4], b[6]
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(x - dx / 2, y - dy / 2), (x + dx / 2, y - dy / 2), (x + dx / 2, y + dy / 2), (x - dx / 2, y + dy / 2)]
    return [((px - x) * c - (py - y) * s + x, (px - x) * s + (py - y) * c + y) for px, py in pts]


def _inside(b, p):
    c, s = math.cos(-b[6]), math.sin(-b[6])
    rx = (p[0] - b[0]) * c - (p[1] - b[1]) * s
    ry = (p[0] - b[0]) * s + (p[1] - b[1]) * c
    return abs(rx) < b[3] / 2 + MARGIN and abs(ry) < b[4] / 2 + MARGIN


def _cross(p1, p2, p0):
    return (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p2[0] - p0[0]) * (p1[1] - p0[1])


def _crossing(p0, p1, q0, q1):
    if not (min(p0[0], p1[0]) <= max(q0[0], q1[0]) and min(q0[0], q1[0]) <= max(p0[0], p1[0])
            and min(p0[1], p1[1]) <= max(q0[1], q1[1]) and min(q0[1], q1[1]) <= max(p0[1], p1[1])):
        return None
    s1, s2 = _cross(q0, p1, p0), _cross(p1, q1, p0)
    s3, s4 = _cross(p0, q1, q0), _cross(q1, p1, q0)
    if not (s1 * s2 > 0 and s3 * s4 > 0):
        return None
    s5 = _cross(q1, p1, p0)
    t = s5 / (s5 - s1)  # the crossing as a point of segment q0 q1
    return (t * q0[0] + (1 - t) * q1[0], t * q0[1] + (1 - t) * q1[1])


def _inter_scalar(a, b):
    ca, cb = _corners(a), _corners(b)
    pts = [pt for i in range(4) for j in range(4)
           if (pt := _crossing(ca[i], ca[(i + 1) % 4], cb[j], cb[(j + 1) % 4])) is not None]
    pts += [cb[k] for k in range(4) if _inside(a, cb[k])] + [ca[k] for k in range(4) if _inside(b, ca[k])]
    if len(pts) < 3:
        return 0.0
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    pts.sort(key=lambda p: math.atan2(p[1] - my, p[0] - mx))
    return abs(sum(_cross(pts[k], pts[k + 1], pts[0]) for k in range(1, len(pts) - 1))) / 2


def test_margin_kernel_matches_scalar_transcription():
    g = torch.Generator().manual_seed(3)
    n = 300
    a = torch.rand(n, 7, generator=g, dtype=torch.float64)
    a[:, 0:2] = a[:, 0:2] * 3 + 20
    a[:, 3:5] = a[:, 3:5] * 3 + 0.4
    a[:, 6] = (a[:, 6] - 0.5) * 2 * math.pi
    b = a.clone()
    b[:, 0:2] += (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * 3
    b[:, 3:5] = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3 + 0.4
    b[:, 6] = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    b[:50, 6] = a[:50, 6] + math.pi / 2  # perpendicular, crosses with |s5 - s1| of every size
    b[50:80, 0] = a[50:80, 0] + (a[50:80, 3] + b[50:80, 3]) / 2 + 0.005  # 5 mm gap: corners within the margin
    a[50:80, 6] = b[50:80, 6] = 0.0
    b[50:80, 1] = a[50:80, 1]
    got = box_iou_bev_aligned(a, b, margin_compat=True)
    ref = []
    for i in range(n):
        ai, bi = a[i].tolist(), b[i].tolist()
        inter = _inter_scalar(ai, bi)
        ref.append(inter / max(ai[3] * ai[4] + bi[3] * bi[4] - inter, 1e-8))
    ref = torch.tensor(ref, dtype=torch.float64)
    assert (got - ref).abs().max().item() < 1e-9
    assert (got > 0).sum().item() > 150  # most pairs overlap: the crossings are exercised
