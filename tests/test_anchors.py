"""OpenPCDet anchor generation: counts, float32 positions, z shift, flat orders, band tallies, bad layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assignaudit.assign import AnchorLayout, AnchorSet, generate_anchors
from assignaudit.bands import Bands
from assignaudit.errors import ConfigError

# (class, (dx, dy, dz), bottom z, matched, unmatched): assignment-semantics §11.1 table.
NUS_PP = [
    ("car", (4.63, 1.97, 1.74), -0.95, 0.6, 0.45),
    ("truck", (6.93, 2.51, 2.84), -0.6, 0.55, 0.4),
    ("construction_vehicle", (6.37, 2.85, 3.19), -0.225, 0.5, 0.35),
    ("bus", (10.5, 2.94, 3.47), -0.085, 0.55, 0.4),
    ("trailer", (12.29, 2.90, 3.87), 0.115, 0.5, 0.35),
    ("barrier", (0.50, 2.53, 0.98), -1.33, 0.55, 0.4),
    ("motorcycle", (2.11, 0.77, 1.47), -1.085, 0.5, 0.3),
    ("bicycle", (1.70, 0.60, 1.28), -1.18, 0.5, 0.35),
    ("pedestrian", (0.73, 0.67, 1.77), -0.935, 0.6, 0.4),
    ("traffic_cone", (0.41, 0.41, 1.07), -1.285, 0.6, 0.4),
]


def nus_layout(multihead: bool = True) -> AnchorLayout:
    sets = tuple(
        AnchorSet(n, (sz,), (0.0, 1.57), (b,), m, u, feature_map_stride=4) for n, sz, b, m, u in NUS_PP
    )
    return AnchorLayout((-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (0.2, 0.2, 8.0), sets, multihead=multihead)


def kitti_layout() -> AnchorLayout:
    sets = (
        AnchorSet("Car", ((3.9, 1.6, 1.56),), (0.0, 1.57), (-1.78,), 0.6, 0.45, feature_map_stride=2),
        AnchorSet("Pedestrian", ((0.8, 0.6, 1.73),), (0.0, 1.57), (-0.6,), 0.5, 0.35, feature_map_stride=2),
        AnchorSet("Cyclist", ((1.76, 0.6, 1.73),), (0.0, 1.57), (-0.6,), 0.5, 0.35, feature_map_stride=2),
    )
    return AnchorLayout((0.0, -39.68, -3.0, 69.12, 39.68, 1.0), (0.16, 0.16, 4.0), sets, multihead=False)


@pytest.fixture(scope="module")
def nus():
    return generate_anchors(nus_layout())


def arange_f32_reference(lo: float, hi: float, n: int, lane: int) -> np.ndarray:
    """An independent float32 arange: torch's CPU kernel rounds each SIMD chunk's base ``start + i0 * step`` to
    float32 and adds ``k * step`` in double to that float32 base, then rounds (see anchors.py docstring)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    step = float(hi32 - lo32) / (n - 1)
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        base = float(np.float32(float(lo32) + step * (i - i % lane)))
        out[i] = np.float32(base + (i % lane) * step)
    return out


def test_nuscenes_multihead_counts(nus):
    assert nus.num_anchors == 327_680
    assert nus.boxes.dtype == torch.float32 and nus.boxes.shape == (327_680, 7)
    assert nus.feature_map_sizes == tuple((128, 128) for _ in NUS_PP)
    np.testing.assert_array_equal(nus.set_counts(), np.full(10, 32_768))
    # multihead: each set is one contiguous block, in config order
    for s, sl in enumerate(nus.set_slices):
        assert sl == slice(s * 32_768, (s + 1) * 32_768)
        assert bool((nus.set_index[sl] == s).all())


def test_nuscenes_positions_bit_exact(nus):
    x = nus.x_positions[0].numpy()
    assert x.shape == (128,)
    # endpoint aligned: first and last anchors sit on the range edges (float32 of +-51.2)
    assert x[0] == np.float32(-51.2) and x[-1] == np.float32(51.2)
    np.testing.assert_allclose(x, -51.2 + np.arange(128) * 0.806299, atol=1e-4)  # spec: "approx"
    refs = [arange_f32_reference(-51.2, 51.2, 128, lane) for lane in (8, 16)]
    assert any(np.array_equal(x, r) for r in refs)
    # ... which is the correctly rounded float32 of x_min + i * stride except for a few positions, off by at most
    # one ulp of the range end (the chunk base is rounded at |x| ~ 50 m)
    exact = np.float32(float(np.float32(-51.2)) + np.arange(128) * (float(np.float32(102.4)) / 127))
    assert 0 < int((x != exact).sum()) < 16
    assert np.max(np.abs(x.astype(np.float64) - exact)) <= np.spacing(np.float32(51.2))
    # the boxes carry the same numbers: anchor (size 0, rot 0, z 0, y 0, x i) of the car set
    np.testing.assert_array_equal(nus.boxes[:128, 0].numpy(), x)
    np.testing.assert_array_equal(nus.boxes[0:128 * 128:128, 1].numpy(), nus.y_positions[0].numpy())


def test_nuscenes_z_sizes_rotations(nus):
    for s, (_, (dx, dy, dz), bottom, _, _) in enumerate(NUS_PP):
        b = nus.boxes[s * 32_768 : (s + 1) * 32_768]
        z = np.float32(np.float32(bottom) + np.float32(dz) / np.float32(2))
        assert bool((b[:, 2] == torch.tensor(z)).all())
        assert bool((b[:, 3:6] == torch.tensor([dx, dy, dz], dtype=torch.float32)).all())
        # multihead order: [n_size, n_rot, nz, ny, nx]: the first half has rotation 0, the second 1.57
        assert bool((b[:16_384, 6] == 0).all()) and bool((b[16_384:, 6] == np.float32(1.57)).all())
    assert abs(float(nus.boxes[32_768 + 5, 2]) - 0.82) < 1e-6  # truck centre z = -0.6 + 2.84 / 2 (spec table)


def test_kitti_single_head_counts_and_positions():
    a = generate_anchors(kitti_layout())
    assert a.num_anchors == 321_408
    assert a.feature_map_sizes == ((216, 248),) * 3
    x, y = a.x_positions[0].numpy(), a.y_positions[0].numpy()
    assert x[0] == 0 and x[-1] == np.float32(69.12) and y[0] == np.float32(-39.68) and y[-1] == np.float32(39.68)
    np.testing.assert_allclose(x, np.arange(216) * 0.321488, atol=1e-4)
    np.testing.assert_allclose(y, -39.68 + np.arange(248) * 0.321296, atol=2e-4)  # spec rounds the stride
    # single head flat order (z, y, x, set, size, rot): 6 anchors per location, set-major then rotation
    loc = a.boxes[:6]
    assert loc[:, 0].eq(0).all() and loc[:, 1].eq(np.float32(-39.68)).all()
    np.testing.assert_array_equal(a.set_index[:6].numpy(), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(loc[:, 6].numpy(), np.float32([0, 1.57, 0, 1.57, 0, 1.57]))
    assert float(a.boxes[6, 0]) == float(x[1])  # next location: x + 1
    assert float(a.boxes[6 * 216, 1]) == float(y[1])  # next row: y + 1
    assert all(sl is None for sl in a.set_slices)


def small_layout(multihead: bool, align_center: bool = False) -> AnchorLayout:
    sets = (
        AnchorSet("a", ((2.0, 1.0, 1.0), (1.0, 1.0, 2.0)), (0.0, 1.57), (-1.0, 0.5), 0.6, 0.45,
                  align_center=align_center),
        AnchorSet("b", ((0.5, 0.5, 0.5),), (0.0,), (-1.0, 0.0), 0.5, 0.3, align_center=align_center),
    )
    return AnchorLayout((0.0, 0.0, -5.0, 5.0, 4.0, 3.0), (1.0, 1.0, 8.0), sets, multihead=multihead)


@pytest.mark.parametrize("multihead", [True, False])
def test_flat_order_matches_independent_enumeration(multihead):
    layout = small_layout(multihead)
    a = generate_anchors(layout)
    nx, ny = 5, 4
    xs = [np.float32((5.0 / 4) * i) for i in range(nx)]
    ys = [np.float32((4.0 / 3) * j) for j in range(ny)]
    expected = []  # (flat position, box) built by nested loops in the framework's documented order
    if multihead:
        for s in layout.anchor_sets:
            for sz in s.sizes:
                for r in s.rotations:
                    for zb in s.bottom_heights:
                        for j in range(ny):
                            for i in range(nx):
                                expected.append((xs[i], ys[j], np.float32(zb) + np.float32(sz[2]) / 2, *sz, r))
    else:
        for zi in range(2):
            for j in range(ny):
                for i in range(nx):
                    for s in layout.anchor_sets:
                        for sz in s.sizes:
                            for r in s.rotations:
                                zb = s.bottom_heights[zi]
                                expected.append((xs[i], ys[j], np.float32(zb) + np.float32(sz[2]) / 2, *sz, r))
    np.testing.assert_array_equal(a.boxes.numpy(), np.asarray(expected, dtype=np.float32))
    # the combo index arithmetic agrees with the order
    for si, s in enumerate(layout.anchor_sets):
        for isz in range(len(s.sizes)):
            for ir in range(len(s.rotations)):
                for iz in range(2):
                    f = a.flat_index(si, iz, 2, 3, isz, ir)
                    box = a.boxes[f]
                    assert float(box[0]) == xs[3] and float(box[1]) == ys[2]
                    assert float(box[3]) == np.float32(s.sizes[isz][0]) and float(box[6]) == np.float32(s.rotations[ir])
                    assert int(a.set_index[f]) == si


def test_align_center_positions_are_cell_centres():
    a = generate_anchors(small_layout(True, align_center=True))
    np.testing.assert_allclose(a.x_positions[0].numpy(), (np.arange(5) + 0.5) * 1.0, atol=1e-6)
    np.testing.assert_allclose(a.y_positions[0].numpy(), (np.arange(4) + 0.5) * 1.0, atol=1e-6)


def test_band_counts_static(nus):
    xy = nus.boxes[:, :2].double().numpy()
    d = np.sqrt(xy[:, 0] ** 2 + xy[:, 1] ** 2)
    edges = np.array([0, 20, 30, 40, 50.0])
    band = np.digitize(d, edges) - 1
    sets = nus.set_index.numpy()
    for s in (0, 9):
        np.testing.assert_array_equal(nus.band_counts[s], np.bincount(band[sets == s], minlength=5))
    assert nus.band_counts.sum() == 327_680
    other = nus.with_bands(Bands((0.0, 10.0)))
    assert other.band_counts.shape == (10, 2)
    assert other.band_counts[0, 0] == int(((d < 10) & (sets == 0)).sum())


def test_bad_layouts_raise_config_error():
    one_cell = AnchorLayout((0.0, 0.0, -1.0, 1.0, 8.0, 1.0), (1.0, 1.0, 2.0),
                            (AnchorSet("a", ((1.0, 1.0, 1.0),), (0.0,), (0.0,), 0.6, 0.4),))
    with pytest.raises(ConfigError, match="feature map has 1 cell"):
        generate_anchors(one_cell)
    mixed = AnchorLayout((0.0, 0.0, -1.0, 8.0, 8.0, 1.0), (1.0, 1.0, 2.0), (
        AnchorSet("a", ((1.0, 1.0, 1.0),), (0.0,), (0.0,), 0.6, 0.4, feature_map_stride=1),
        AnchorSet("b", ((1.0, 1.0, 1.0),), (0.0,), (0.0,), 0.6, 0.4, feature_map_stride=2),
    ), multihead=False)
    with pytest.raises(ConfigError, match="single-head"):
        generate_anchors(mixed)
    empty = AnchorLayout((0.0, 0.0, -1.0, 8.0, 8.0, 1.0), (1.0, 1.0, 2.0),
                         (AnchorSet("a", (), (0.0,), (0.0,), 0.6, 0.4),))
    with pytest.raises(ConfigError, match="'a'"):
        generate_anchors(empty)
