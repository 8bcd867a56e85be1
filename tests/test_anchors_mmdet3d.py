"""mmdetection3d anchor generators (assignment-semantics §6.4, §6.5, §11.3, §11.5): counts, float32 centres against
upstream's own torch.linspace recipe, bottom/centre z, FPN levels and scales, flat order against nested loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assignaudit.assign import AnchorLayout, AnchorSet, generate_anchors
from assignaudit.assign.params import AnchorLevel
from assignaudit.errors import ConfigError

NUS_PCR = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)
NUS_VOXEL = (0.25, 0.25, 8.0)
# §11.3 (b) SECFPN: (size slot, (x, y, z) size, bottom z, centre z from the spec table)
NUS_SECFPN = [
    ("car", (4.60718145, 1.95017717, 1.72270761), -1.80032795, -0.939),
    ("truck", (6.73778078, 2.4560939, 2.73004906), -1.74440365, -0.379),
    ("trailer", (12.01320693, 2.87427237, 3.81509561), -1.68526504, 0.222),
    ("bicycle", (1.68452161, 0.60058911, 1.27192197), -1.67339111, -1.037),
    ("pedestrian", (0.7256437, 0.66344886, 1.75748069), -1.61785072, -0.739),
    ("traffic_cone", (0.40359262, 0.39694519, 1.06232151), -1.80984986, -1.279),
    ("barrier", (0.48578221, 2.49008838, 0.98297065), -1.763965, -1.273),
]
# §11.3 (a) FPN: one range, four class-agnostic sizes
NUS_FPN_SIZES = [(2.5981, 0.8660, 1.0), (1.7321, 0.5774, 1.0), (1.0, 1.0, 1.0), (0.4, 0.4, 1.0)]
KITTI_PCR = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
KITTI_VOXEL = (0.16, 0.16, 4.0)
# mm3d 1.x KITTI 3-class (§11.5): (class, size, bottom z, pos, neg)
KITTI_3CLASS = [
    ("Pedestrian", (0.8, 0.6, 1.73), -0.6, 0.5, 0.35),
    ("Cyclist", (1.76, 0.6, 1.73), -0.6, 0.5, 0.35),
    ("Car", (3.9, 1.6, 1.56), -1.78, 0.6, 0.45),
]


def secfpn_layout() -> AnchorLayout:
    sets = tuple(
        AnchorSet(n, (sz,), (0.0, 1.57), (), 0.6, 0.3, feature_map_stride=2, min_pos_iou=0.3,
                  anchor_range=(-49.6, -49.6, b, 49.6, 49.6, b))
        for n, sz, b, _ in NUS_SECFPN
    )
    return AnchorLayout(NUS_PCR, NUS_VOXEL, sets, generator="mmdet3d_aligned")


def fpn_layout(one_set: bool = False) -> AnchorLayout:
    rng = (-50.0, -50.0, -1.8, 50.0, 50.0, -1.8)
    if one_set:  # size_per_range False: one range entry with all four sizes
        sets = (AnchorSet("all", tuple(NUS_FPN_SIZES), (0.0, 1.57), (), 0.6, 0.3, anchor_range=rng),)
    else:  # size_per_range True with the single range replicated per size (the importer's form)
        sets = tuple(AnchorSet(f"s{i}", (sz,), (0.0, 1.57), (), 0.6, 0.3, anchor_range=rng)
                     for i, sz in enumerate(NUS_FPN_SIZES))
    levels = (AnchorLevel(2, 1.0), AnchorLevel(4, 2.0), AnchorLevel(8, 4.0))
    return AnchorLayout(NUS_PCR, NUS_VOXEL, sets, generator="mmdet3d_aligned", levels=levels)


def kitti_layout(aligned: bool) -> AnchorLayout:
    x_max = 69.12 if aligned else 70.4  # mm3d <= 0.18 put the range end beyond the point cloud range
    sets = tuple(
        AnchorSet(n, (sz,), (0.0, 1.57), (), p, q, feature_map_stride=2, min_pos_iou=q,
                  anchor_range=(0.0, -39.68, b, x_max, 39.68, b))
        for n, sz, b, p, q in KITTI_3CLASS
    )
    return AnchorLayout(KITTI_PCR, KITTI_VOXEL, sets, generator="mmdet3d_aligned" if aligned else "mmdet3d")


def upstream_centres(lo: float, hi: float, n: int, aligned: bool, align_corner: bool = False) -> np.ndarray:
    """Centres the way anchor_3d_generator.py computes them: ``torch.tensor(range)`` (float32), ``linspace``, and for
    the aligned generator ``+ (c[1] - c[0]) / 2`` in place, first n."""
    r = torch.tensor([lo, hi])
    if not aligned:
        return torch.linspace(r[0], r[1], n).numpy()
    c = torch.linspace(r[0], r[1], n + 1)
    if not align_corner:
        c += (c[1] - c[0]) / 2
    return c[:n].numpy()


def linspace_f32_formula(lo: float, hi: float, n: int) -> np.ndarray:
    """An independent float32 linspace: ``start + i * step`` (first half) / ``end - (n - 1 - i) * step`` (second
    half), ``step = float32((end - start) / (n - 1))``, each rounded once to float32."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    step = float(np.float32((hi32 - lo32) / np.float32(n - 1)))
    i = np.arange(n)
    return np.where(i < n // 2, np.float32(float(lo32) + i * step), np.float32(float(hi32) - (n - 1 - i) * step))


@pytest.fixture(scope="module")
def secfpn():
    return generate_anchors(secfpn_layout())


def test_secfpn_counts_and_centres(secfpn):
    a = secfpn
    assert a.num_anchors == 560_000 and a.num_levels == 1
    assert a.feature_map_sizes == ((200, 200),) * 7
    np.testing.assert_array_equal(a.set_counts(), np.full(7, 80_000))
    x = a.x_positions[0].numpy()
    np.testing.assert_array_equal(x, upstream_centres(-49.6, 49.6, 200, aligned=True))
    np.testing.assert_allclose(x, -49.352 + 0.496 * np.arange(200), atol=2e-5)  # spec: -49.352 + 0.496 i
    np.testing.assert_array_equal(a.y_positions[6].numpy(), x)  # same range on y and for every size
    # flat order (z, y, x, size, rot): 14 anchors per location, size-major then rotation
    loc = a.boxes[:14]
    np.testing.assert_array_equal(a.set_index[:14].numpy(), np.repeat(np.arange(7), 2))
    np.testing.assert_array_equal(loc[:, 6].numpy(), np.tile(np.float32([0.0, 1.57]), 7))
    assert float(a.boxes[14, 0]) == float(x[1]) and float(a.boxes[14 * 200, 1]) == float(x[1])


def test_secfpn_z_and_sizes(secfpn):
    a = secfpn
    for s, (_, (dx, dy, dz), bottom, centre) in enumerate(NUS_SECFPN):
        b = a.boxes[a.set_index == s]
        # aligned z: linspace(b, b, 2) = [b, b], shift (b - b) / 2 = 0 -> bottom b; centre = b + dz / 2 in float32
        z = np.float32(np.float32(bottom) + np.float32(dz) / np.float32(2))
        assert bool((b[:, 2] == torch.tensor(z)).all())
        assert abs(float(z) - centre) < 6e-4  # the spec table rounds to 3 decimals
        assert bool((b[:, 3:6] == torch.tensor([dx, dy, dz], dtype=torch.float32)).all())


def test_secfpn_flat_index_matches_sampled_nested_order(secfpn):
    a = secfpn
    x = upstream_centres(-49.6, 49.6, 200, aligned=True)
    rng = np.random.default_rng(0)
    for _ in range(50):
        j, i, s, r = int(rng.integers(200)), int(rng.integers(200)), int(rng.integers(7)), int(rng.integers(2))
        f = ((j * 200 + i) * 7 + s) * 2 + r  # nested loops y, x, size, rot
        assert a.flat_index(s, 0, j, i, 0, r) == f
        box = a.boxes[f].numpy()
        assert box[0] == x[i] and box[1] == x[j] and box[6] == np.float32([0.0, 1.57][r])
        assert box[3] == np.float32(NUS_SECFPN[s][1][0]) and int(a.set_index[f]) == s


def test_fpn_levels_counts_centres_and_scales():
    a = generate_anchors(fpn_layout())
    assert a.num_anchors == 420_000 and a.num_levels == 3
    assert [sl.stop - sl.start for sl in a.level_slices] == [320_000, 80_000, 20_000]
    for lv, (n, c0, step, scale) in enumerate([(200, -49.75, 0.5, 1.0), (100, -49.5, 1.0, 2.0),
                                               (50, -49.0, 2.0, 4.0)]):
        assert a.level_feature_map_sizes[lv] == ((n, n),) * 4
        x = a.level_x_positions[lv][0].numpy()
        np.testing.assert_array_equal(x, upstream_centres(-50.0, 50.0, n, aligned=True))
        np.testing.assert_allclose(x, c0 + step * np.arange(n), atol=1e-5)
        block = a.boxes[a.level_slices[lv]]
        # per location 4 sizes x 2 rotations; sizes scaled x1 / x2 / x4 (float32 multiply)
        for s, sz in enumerate(NUS_FPN_SIZES):
            np.testing.assert_array_equal(block[2 * s, 3:6].numpy(), np.float32(sz) * np.float32(scale))
            # bottom z -1.8 (range z_min == z_max) -> centre -1.8 + dz / 2
            assert float(block[2 * s, 2]) == float(np.float32(-1.8) + np.float32(sz[2] * scale) / np.float32(2))
        f = a.flat_index(3, 0, 7, 5, 0, 1, level=lv)
        assert f == a.level_slices[lv].start + ((7 * n + 5) * 4 + 3) * 2 + 1
        assert float(a.boxes[f, 0]) == float(x[5]) and float(a.boxes[f, 1]) == float(x[7])
    assert int(a.set_first_index[3]) == 6  # lowest flat index of size slot 3: level 0, location 0, 3 * 2 rotations


def test_fpn_one_set_with_four_sizes_equals_four_sets():
    # size_per_range False (one ranges entry, four sizes) and True (range replicated) give the same tensor
    one, four = generate_anchors(fpn_layout(one_set=True)), generate_anchors(fpn_layout())
    assert torch.equal(one.boxes, four.boxes)
    assert one.combo_base.tolist() == four.combo_base.tolist()


def test_kitti_3class_aligned():
    a = generate_anchors(kitti_layout(aligned=True))
    assert a.num_anchors == 321_408 and a.feature_map_sizes == ((216, 248),) * 3
    x, y = a.x_positions[0].numpy(), a.y_positions[0].numpy()
    np.testing.assert_array_equal(x, upstream_centres(0.0, 69.12, 216, aligned=True))
    np.testing.assert_array_equal(y, upstream_centres(-39.68, 39.68, 248, aligned=True))
    np.testing.assert_allclose(x, 0.16 + 0.32 * np.arange(216), atol=2e-5)
    np.testing.assert_allclose(y, -39.52 + 0.32 * np.arange(248), atol=2e-5)
    # set order = ranges order = class order (Pedestrian, Cyclist, Car): size slot i <-> class i
    assert float(a.boxes[4, 2]) == float(np.float32(-1.78) + np.float32(1.56) / np.float32(2))
    assert float(a.boxes[0, 2]) == float(np.float32(-0.6) + np.float32(1.73) / np.float32(2))


def test_kitti_018_non_aligned_range_to_70_4():
    a = generate_anchors(kitti_layout(aligned=False))
    assert a.num_anchors == 321_408
    x, y = a.x_positions[0].numpy(), a.y_positions[0].numpy()
    np.testing.assert_array_equal(x, upstream_centres(0.0, 70.4, 216, aligned=False))
    np.testing.assert_array_equal(x, linspace_f32_formula(0.0, 70.4, 216))  # the single-rounding formula
    assert x[0] == 0 and x[-1] == np.float32(70.4)  # endpoints included: the last anchor lies beyond 69.12
    np.testing.assert_allclose(x, np.arange(216) * 0.32744186, atol=3e-5)  # 70.4 / 215
    np.testing.assert_array_equal(y, linspace_f32_formula(-39.68, 39.68, 248))


def small_layout(generator: str, align_corner: bool = False, levels=()) -> AnchorLayout:
    sets = (
        AnchorSet("a", ((2.0, 1.0, 1.0), (1.0, 1.0, 2.0)), (0.0, 1.57), (), 0.6, 0.45,
                  anchor_range=(0.0, 0.0, -1.0, 5.0, 4.0, -1.0)),
        AnchorSet("b", ((0.5, 0.5, 0.5),), (0.0,), (), 0.5, 0.3, anchor_range=(1.0, -1.0, -2.0, 4.0, 3.0, 0.0)),
        AnchorSet("c", ((0.7, 0.4, 1.5),), (0.3,), (), 0.5, 0.3),  # None -> the point cloud range
    )
    return AnchorLayout((0.0, 0.0, -5.0, 8.0, 8.0, 3.0), (1.0, 1.0, 8.0), sets, generator=generator,
                        align_corner=align_corner, levels=levels)


def reference_axis(lo: float, hi: float, n: int, generator: str, align_corner: bool) -> np.ndarray:
    """Written from §6.4 with the single-rounding linspace above (independent of the code under test)."""
    if generator == "mmdet3d":
        return linspace_f32_formula(lo, hi, n) if n > 1 else np.float32([lo])
    c = linspace_f32_formula(lo, hi, n + 1)
    if not align_corner:
        c = (c + np.float32((c[1] - c[0]) / np.float32(2))).astype(np.float32)
    return c[:n]


@pytest.mark.parametrize("generator,align_corner", [("mmdet3d", False), ("mmdet3d_aligned", False),
                                                    ("mmdet3d_aligned", True)])
def test_flat_order_matches_nested_loops(generator, align_corner):
    levels = (AnchorLevel(1, 1.0), AnchorLevel(2, 1.5))
    layout = small_layout(generator, align_corner, levels)
    a = generate_anchors(layout)
    expected = []
    for lv in levels:
        n = 8 // lv.feature_map_stride
        for j in range(n):
            for i in range(n):
                for s in layout.anchor_sets:
                    r = s.anchor_range or layout.point_cloud_range
                    x = reference_axis(r[0], r[3], n, generator, align_corner)[i]
                    y = reference_axis(r[1], r[4], n, generator, align_corner)[j]
                    bottom = reference_axis(r[2], r[5], 1, generator, align_corner)[0]
                    for sz in s.sizes:
                        dims = np.float32(sz) * np.float32(lv.scale)
                        for rot in s.rotations:
                            expected.append((x, y, np.float32(bottom + dims[2] / np.float32(2)), *dims, rot))
    np.testing.assert_array_equal(a.boxes.numpy(), np.asarray(expected, dtype=np.float32))
    assert a.num_anchors == (64 + 16) * 6  # per location: 2 sizes x 2 rotations + 1 + 1
    # the combo index arithmetic agrees with the order
    for lv, n in ((0, 8), (1, 4)):
        for si, s in enumerate(layout.anchor_sets):
            for isz in range(len(s.sizes)):
                for ir in range(len(s.rotations)):
                    f = a.flat_index(si, 0, n - 2, 1, isz, ir, level=lv)
                    assert float(a.boxes[f, 0]) == float(a.level_x_positions[lv][si][1])
                    assert float(a.boxes[f, 1]) == float(a.level_y_positions[lv][si][n - 2])
                    assert int(a.set_index[f]) == si and float(a.boxes[f, 6]) == np.float32(s.rotations[ir])
    np.testing.assert_array_equal(a.set_first_index.numpy(), [0, 4, 5])


def test_aligned_z_between_range_ends():
    # D = 1: Anchor3DRangeGenerator takes linspace(z0, z1, 1) = z0; the aligned one z0 + (z1 - z0) / 2, or z0 with
    # align_corner. Set "b" has bottom range -2 .. 0 and dz 0.5.
    for gen, corner, bottom in (("mmdet3d", False, -2.0), ("mmdet3d_aligned", False, -1.0),
                                ("mmdet3d_aligned", True, -2.0)):
        a = generate_anchors(small_layout(gen, corner))
        assert float(a.boxes[a.set_index == 1][0, 2]) == bottom + 0.25


def test_bad_mmdet3d_layouts_raise_config_error():
    base = small_layout("mmdet3d")
    import dataclasses

    with pytest.raises(ConfigError, match="generator"):
        generate_anchors(dataclasses.replace(base, generator="second"))
    strides = dataclasses.replace(base, anchor_sets=(
        base.anchor_sets[0], dataclasses.replace(base.anchor_sets[1], feature_map_stride=2)))
    with pytest.raises(ConfigError, match="feature_map_stride"):
        generate_anchors(strides)
    bad_range = dataclasses.replace(base, anchor_sets=(
        dataclasses.replace(base.anchor_sets[0], anchor_range=(5.0, 0.0, -1.0, 0.0, 4.0, -1.0)),))
    with pytest.raises(ConfigError, match="x_max > x_min"):
        generate_anchors(bad_range)
    pcdet_levels = AnchorLayout((0.0, 0.0, -5.0, 8.0, 8.0, 3.0), (1.0, 1.0, 8.0),
                                (AnchorSet("a", ((1.0, 1.0, 1.0),), (0.0,), (0.0,), 0.6, 0.4),),
                                levels=(AnchorLevel(2),))
    with pytest.raises(ConfigError, match="levels"):
        generate_anchors(pcdet_levels)
    with pytest.raises(ConfigError, match="feature map"):
        generate_anchors(dataclasses.replace(base, levels=(AnchorLevel(16),)))
