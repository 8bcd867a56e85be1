"""Rotated BEV and 3D IoU against shapely (float64 GEOS), hypothesis properties, OpenPCDet's 1 cm margin."""

import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assignaudit.errors import DataError
from assignaudit.ops import (
    box_iou_3d,
    box_iou_3d_aligned,
    box_iou_bev,
    box_iou_bev_aligned,
    box_iou_bev_sparse,
)

# ---------------------------------------------------------------------------------------------------------------
# Independent reference: shapely polygons built in float64 from the (float32) box values
# ---------------------------------------------------------------------------------------------------------------


def polygons(boxes: np.ndarray):
    b = np.asarray(boxes, dtype=np.float64)
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    hx, hy = b[:, 3] / 2, b[:, 4] / 2
    signs = np.array([(1, 1), (-1, 1), (-1, -1), (1, -1)], dtype=np.float64)
    lx = signs[None, :, 0] * hx[:, None]
    ly = signs[None, :, 1] * hy[:, None]
    px = b[:, 0:1] + c[:, None] * lx - s[:, None] * ly
    py = b[:, 1:2] + s[:, None] * lx + c[:, None] * ly
    return shapely.polygons(np.stack((px, py), axis=2))


def shapely_bev_inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return shapely.area(shapely.intersection(polygons(a), polygons(b)))


def shapely_bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = shapely_bev_inter(a, b)
    return inter / np.maximum(a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter, 1e-8)


def box(x, y, dx, dy, yaw, z=0.0, dz=1.0):
    return [x, y, z, dx, dy, dz, yaw]


def adversarial_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Hand-picked hard cases (each also mirrored, rotated and translated below)."""
    q = math.pi / 4
    cases = [
        (box(0, 0, 4, 2, 0), box(0, 0, 4, 2, 0)),  # identical
        (box(10, -3, 4.2, 1.8, 0.3), box(10, -3, 4.2, 1.8, 0.3)),  # identical, rotated
        (box(0, 0, 2, 2, 0), box(2, 0, 2, 2, 0)),  # shared edge (touching)
        (box(0, 0, 2, 2, 0), box(2, 2, 2, 2, 0)),  # touching corner
        (box(0, 0, 2, 2, 0), box(1, 0.5, 2, 1, 0)),  # partially shared edge, collinear top
        (box(0, 0, 10, 10, 0.2), box(1, 1, 1, 2, 1.1)),  # contained
        (box(0, 0, 4, 2, 0), box(0, 0, 2, 1, 0)),  # contained, shared centre, parallel
        (box(0, 0, 4, 2, 0), box(0, 0, 4, 1, 0)),  # contained with two shared edges
        (box(5, 5, 1e-3, 2e-3, 0.4), box(5, 5, 2e-3, 1e-3, 1.0)),  # tiny
        (box(5, 5, 1e-3, 2e-3, 0.4), box(5.0005, 5, 2e-3, 1e-3, 0)),  # tiny, offset
        (box(0, 0, 200, 150, 0.1), box(30, -20, 180, 160, -0.3)),  # huge
        (box(0, 0, 200, 150, 0.1), box(60, 50, 0.5, 0.5, 0.7)),  # huge vs small
        (box(0, 0, 2, 2, q), box(0, 0, 2, 2, 0)),  # 45 deg: octagon
        (box(0, 0, 4, 1, q), box(0.5, 0.5, 4, 1, -q)),  # 45 vs -45 (perpendicular)
        (box(0, 0, 4, 2, 0), box(0, 0, 4, 2, 1e-6)),  # near-parallel, same place
        (box(0, 0, 4, 2, 0), box(0.3, 0.1, 4, 2, 1e-4)),  # near-parallel, offset
        (box(0, 0, 4, 2, 0), box(0, 1.999, 4, 2, 1e-5)),  # near-parallel, almost touching
        (box(0, 0, 4, 2, 0), box(4.0001, 0, 4, 2, 0)),  # gap of 0.1 mm
        (box(0, 0, 4, 2, math.pi), box(0, 0, 4, 2, 0)),  # heading flipped: same rectangle
        (box(0, 0, 4, 2, math.pi / 2), box(0, 0, 2, 4, 0)),  # 90 deg with swapped dims: same rectangle
        (box(0, 0, 4, 2, 0.5), box(1000, 1000, 4, 2, 0.5)),  # far apart
        (box(-80, 45, 4.6, 1.9, 2.9), box(-80.4, 45.3, 4.5, 2.0, 2.85)),  # far from the origin
        (box(0, 0, 0, 2, 0), box(0, 0, 2, 2, 0)),  # degenerate (zero length)
    ]
    return np.array([c[0] for c in cases]), np.array([c[1] for c in cases])


def random_pairs(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((n, 7))
    a[:, 0:2] = rng.uniform(-60, 60, (n, 2))
    a[:, 2] = rng.uniform(-2, 1, n)
    a[:, 3:6] = rng.uniform(0.3, 8, (n, 3))
    a[:, 6] = rng.uniform(-math.pi, math.pi, n)
    b = a.copy()
    b[:, 0:2] += rng.normal(0, 1.5, (n, 2))
    b[:, 2] += rng.normal(0, 0.5, n)
    b[:, 3:6] *= rng.uniform(0.5, 1.5, (n, 3))
    b[:, 6] += rng.normal(0, 0.6, n)
    return a, b


def augmented_adversarial(rng) -> tuple[np.ndarray, np.ndarray]:
    """Each hand-picked pair under 60 random common rigid motions (rotation + translation), both orders."""
    a0, b0 = adversarial_pairs()
    out_a, out_b = [a0, b0], [b0, a0]
    for _ in range(60):
        th, t = rng.uniform(-math.pi, math.pi), rng.uniform(-50, 50, 2)
        for src, dst in ((a0, out_a), (b0, out_b)):
            m = src.copy()
            c, s = math.cos(th), math.sin(th)
            m[:, 0], m[:, 1] = c * src[:, 0] - s * src[:, 1] + t[0], s * src[:, 0] + c * src[:, 1] + t[1]
            m[:, 6] = src[:, 6] + th
            dst.append(m)
    return np.concatenate(out_a), np.concatenate(out_b)


@pytest.fixture(scope="module")
def pairs32():
    rng = np.random.default_rng(1234)
    ra, rb = random_pairs(rng, 10_000)
    aa, ab = augmented_adversarial(rng)
    a = torch.tensor(np.concatenate((ra, aa)), dtype=torch.float32)
    b = torch.tensor(np.concatenate((rb, ab)), dtype=torch.float32)
    return a, b


def test_bev_iou_matches_shapely_on_random_and_adversarial_pairs(pairs32):
    a, b = pairs32
    assert a.shape[0] >= 10_000 + 1000
    iou = box_iou_bev_aligned(a, b)
    assert iou.dtype == torch.float32
    # The reference sees exactly the float32 box values the kernel saw.
    ref = shapely_bev_iou(a.double().numpy(), b.double().numpy())
    err = np.abs(iou.double().numpy() - ref)
    assert err.max() <= 1e-5, (err.max(), a[err.argmax()], b[err.argmax()])
    # Sanity of the test set: many overlaps, many zeros, some identical.
    assert (ref > 0.5).sum() > 1000 and (ref == 0).sum() > 500


def test_adversarial_values_by_hand():
    a, b = adversarial_pairs()
    iou = box_iou_bev_aligned(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert iou[0] == 1.0  # identical axis-aligned: exactly 1
    assert iou[2] == 0.0 and iou[3] == 0.0  # touching edge / corner: exactly 0
    assert iou[4] == pytest.approx(1.0 / 5.0, abs=1e-6)  # inter 1x1, union 4 + 2 - 1
    # Octagon: the rotated square's four corners stick out by sqrt(2) - 1; each cut triangle has area
    # (sqrt(2) - 1)^2, so inter = 4 - 4 (sqrt(2) - 1)^2.
    octagon = 4 - 4 * (math.sqrt(2) - 1) ** 2
    assert iou[12] == pytest.approx(octagon / (8 - octagon), abs=1e-6)
    assert iou[17] == 0.0 and iou[20] == 0.0 and iou[22] == 0.0
    assert iou[18] == pytest.approx(1.0, abs=1e-6) and iou[19] == pytest.approx(1.0, abs=1e-6)


def test_bev_iou_float64_is_tighter(pairs32):
    a, b = (torch.cat((t[:2000], t[10_000:])) for t in pairs32)  # random subset + every adversarial pair
    iou = box_iou_bev_aligned(a.double(), b.double())
    ref = shapely_bev_iou(a.double().numpy(), b.double().numpy())
    assert np.abs(iou.numpy() - ref).max() <= 1e-9


def test_iou_3d_matches_shapely_area_times_height(pairs32):
    a, b = (t[:3000] for t in pairs32)
    an, bn = a.double().numpy(), b.double().numpy()
    h = np.clip(np.minimum(an[:, 2] + an[:, 5] / 2, bn[:, 2] + bn[:, 5] / 2)
                - np.maximum(an[:, 2] - an[:, 5] / 2, bn[:, 2] - bn[:, 5] / 2), 0, None)
    inter = shapely_bev_inter(an, bn) * h
    vol_a, vol_b = an[:, 3] * an[:, 4] * an[:, 5], bn[:, 3] * bn[:, 4] * bn[:, 5]
    ref = inter / np.maximum(vol_a + vol_b - inter, 1e-6)
    got = box_iou_3d_aligned(a, b).double().numpy()
    assert np.abs(got - ref).max() <= 1e-5
    assert (h == 0).sum() > 10 and (ref > 0.3).sum() > 100  # both regimes present


def test_iou_3d_hand_case():
    # Same footprint 2x2, heights [0, 2] and [1, 3] (centre z 1 and 2): inter 4 * 1, union 8 + 8 - 4.
    a = torch.tensor([box(0, 0, 2, 2, 0.3, z=1.0, dz=2.0)])
    b = torch.tensor([box(0, 0, 2, 2, 0.3, z=2.0, dz=2.0)])
    assert box_iou_3d_aligned(a, b).item() == pytest.approx(4 / 12, abs=1e-6)
    assert box_iou_3d(a, b)[0, 0].item() == pytest.approx(4 / 12, abs=1e-6)


def test_dense_equals_aligned_and_sparse():
    g = torch.Generator().manual_seed(7)
    n, m = 100, 120
    a = torch.zeros(n, 7)
    b = torch.zeros(m, 7)
    for t in (a, b):
        t[:, 0:2] = (torch.rand(t.shape[0], 2, generator=g) * 2 - 1) * 12
        t[:, 3:6] = torch.rand(t.shape[0], 3, generator=g) * 4 + 0.3
        t[:, 6] = (torch.rand(t.shape[0], generator=g) * 2 - 1) * math.pi
    dense = box_iou_bev(a, b)
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
    aligned = box_iou_bev_aligned(a[ii.flatten()], b[jj.flatten()]).reshape(n, m)
    assert torch.equal(dense, aligned)
    ref = shapely_bev_iou(np.repeat(a.double().numpy(), m, 0), np.tile(b.double().numpy(), (n, 1))).reshape(n, m)
    assert np.abs(dense.double().numpy() - ref).max() <= 1e-5
    ia, ib, v = box_iou_bev_sparse(a, b)
    nz = torch.nonzero(dense > 0, as_tuple=True)
    assert torch.equal(ia, nz[0]) and torch.equal(ib, nz[1]) and torch.equal(v, dense[nz])
    ia2, ib2, v2 = box_iou_bev_sparse(a, b, min_iou=0.3)
    nz = torch.nonzero(dense > 0.3, as_tuple=True)
    assert torch.equal(ia2, nz[0]) and torch.equal(ib2, nz[1]) and torch.equal(v2, dense[nz])
    dense3 = box_iou_3d(a, b)
    aligned3 = box_iou_3d_aligned(a[ii.flatten()], b[jj.flatten()]).reshape(n, m)
    assert torch.equal(dense3, aligned3)


def test_inputs_not_mutated():
    a = torch.tensor([box(0, 0, 4, 2, 0.3)] * 3)
    b = torch.tensor([box(1, 0, 4, 2, -0.3)] * 3)
    a0, b0 = a.clone(), b.clone()
    box_iou_bev(a, b)
    box_iou_bev_aligned(a, b, margin_compat=True)
    box_iou_3d(a, b)
    assert torch.equal(a, a0) and torch.equal(b, b0)


# ---------------------------------------------------------------------------------------------------------------
# OpenPCDet margin mode
# ---------------------------------------------------------------------------------------------------------------


def test_margin_mode_counts_5mm_gap_as_overlap():
    # 2x2 boxes with a 5 mm gap along x. Exact: 0. OpenPCDet's kernel: A's right corners lie 1.005 m from B's
    # centre (< 1 + 0.01) and B's left corners 1.005 m from A's, so all four count as "inside": the overlap is the
    # 5 mm x 2 m gap, area 0.01, IoU 0.01 / (4 + 4 - 0.01).
    a = torch.tensor([box(0, 0, 2, 2, 0)])
    b = torch.tensor([box(2.005, 0, 2, 2, 0)])
    assert box_iou_bev_aligned(a, b).item() == 0.0
    assert box_iou_bev(a, b).item() == 0.0
    m = box_iou_bev_aligned(a, b, margin_compat=True).item()
    assert m == pytest.approx(0.01 / 7.99, rel=1e-3)
    assert box_iou_bev(a, b, margin_compat=True).item() == m  # the sparse path widens its AABBs for the margin
    # 2 cm apart: outside the margin on both sides -> 0 in both modes.
    far = torch.tensor([box(2.02, 0, 2, 2, 0)])
    assert box_iou_bev_aligned(a, far, margin_compat=True).item() == 0.0


def test_margin_mode_close_to_exact_on_generic_pairs(pairs32):
    a, b = (t[:3000] for t in pairs32)
    exact = box_iou_bev_aligned(a, b)
    margin = box_iou_bev_aligned(a, b, margin_compat=True)
    d = (exact - margin).abs()
    # The kernel's 1 cm margin moves IoU by at most ~1e-2 and leaves most pairs (within float32 noise) unchanged.
    assert d.max() < 2e-2 and (d < 1e-5).float().mean() > 0.9


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

coord = st.floats(-30, 30, allow_nan=False)
size = st.floats(0.2, 8, allow_nan=False)
ang = st.floats(-math.pi, math.pi, allow_nan=False)
box_st = st.tuples(coord, coord, size, size, ang)


def _t(*bs):
    return torch.tensor([box(x, y, dx, dy, t) for x, y, dx, dy, t in bs], dtype=torch.float32)


@settings(max_examples=150, deadline=None)
@given(box_st, box_st, ang, st.floats(-50, 50), st.floats(-50, 50))
def test_iou_properties(p, q, th, tx, ty):
    a, b = _t(p), _t(q)
    iou_ab = box_iou_bev_aligned(a, b).item()
    iou_ba = box_iou_bev_aligned(b, a).item()
    assert 0.0 <= iou_ab <= 1.0
    assert iou_ab == pytest.approx(iou_ba, abs=1e-5)  # symmetric (each is computed in the other box's frame)
    assert box_iou_bev_aligned(a, a).item() == pytest.approx(1.0, abs=1e-6)

    def move(bx):
        x, y = bx[0], bx[1]
        c, s = math.cos(th), math.sin(th)
        return (c * x - s * y + tx, s * x + c * y + ty, bx[2], bx[3], bx[4] + th)

    moved = box_iou_bev_aligned(_t(move(p)), _t(move(q))).item()
    # Common rigid motion. The moved float32 inputs are re-rounded: at |x| ~ 80 m one ulp is ~8e-6 m, which moves the
    # IoU of a 0.2 m box by ~1e-4 at worst.
    assert moved == pytest.approx(iou_ab, abs=2e-4)


def test_bad_input_raises_one_line_data_error():
    a = torch.zeros(3, 5)
    with pytest.raises(DataError, match=r"^a: expected boxes of shape \[N, 7\+\]"):
        box_iou_bev(a, torch.zeros(2, 7))
    with pytest.raises(DataError, match="same number of rows"):
        box_iou_bev_aligned(torch.zeros(3, 7), torch.zeros(2, 7))
    with pytest.raises(DataError, match="different dtypes"):
        box_iou_bev(torch.zeros(3, 7), torch.zeros(2, 7, dtype=torch.float64))
    with pytest.raises(DataError) as ei:
        box_iou_3d(torch.zeros(3, 7, dtype=torch.int64), torch.zeros(2, 7))
    assert "\n" not in str(ei.value)
