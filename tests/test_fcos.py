"""FCOS-style centre sampling (assign/fcos.py): a hand case, a dense per-point loop reference written from the
upstream rule (mmdet FCOSHead._get_targets_single / mmdet3d FCOSMono3DHead._get_target_single), refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assignaudit import schema
from assignaudit.assign.fcos import FcosParams, fcos_assign
from assignaudit.errors import ConfigError

PCR = (0.0, 0.0, -3.0, 12.8, 12.8, 1.0)
VOX = (0.2, 0.2, 4.0)  # grid 64 x 64


def params(**kw):
    base = dict(point_cloud_range=PCR, voxel_size=VOX, strides=(2, 4), regress_ranges=((-1, 2.0), (2.0, math.inf)))
    base.update(kw)
    return FcosParams(**base)


def dense_reference(boxes, p: FcosParams):
    """Every point x every GT with plain loops; returns {flat point: gt}."""
    out = {}
    offset = 0
    mm3d = p.variant == "mmdet3d"
    for lvl, ((w, h), s) in enumerate(zip(p.map_sizes, p.strides)):
        lo, hi = p.regress_ranges[lvl]
        rad = s * p.center_sample_radius * VOX[0]
        for iy in range(h):
            for ix in range(w):
                px = PCR[0] + (ix + p.point_offset) * VOX[0] * s
                py = PCR[1] + (iy + p.point_offset) * VOX[1] * s
                best, best_key = None, math.inf
                for gi, b in enumerate(boxes):
                    x, y, dx, dy, yaw = b[0], b[1], b[3], b[4], b[6]
                    if p.box_frame == "axis_aligned":
                        c, sn = abs(math.cos(yaw)), abs(math.sin(yaw))
                        dx, dy, yaw = dx * c + dy * sn, dx * sn + dy * c, 0.0
                    u = math.cos(yaw) * (px - x) + math.sin(yaw) * (py - y)
                    v = -math.sin(yaw) * (px - x) + math.cos(yaw) * (py - y)
                    ltrb = (u + dx / 2, v + dy / 2, dx / 2 - u, dy / 2 - v)
                    if p.sampling:
                        if mm3d:
                            reg = (-rad, -rad, rad, rad)
                        else:
                            reg = (max(-rad, -dx / 2), max(-rad, -dy / 2), min(rad, dx / 2), min(rad, dy / 2))
                        inside = min(u - reg[0], v - reg[1], reg[2] - u, reg[3] - v) > 0
                    else:
                        inside = min(ltrb) > 0
                    if not inside or not (lo <= max(ltrb) <= hi):
                        continue
                    key = math.hypot(px - x, py - y) if mm3d else dx * dy
                    if key < best_key:  # strict: the lowest index wins ties
                        best, best_key = gi, key
                if best is not None:
                    out[offset + iy * w + ix] = best
        offset += w * h
    return out


def random_boxes(rng, k):
    b = np.zeros((k, 7))
    b[:, 0] = rng.uniform(0.5, 12.3, k)
    b[:, 1] = rng.uniform(0.5, 12.3, k)
    b[:, 3] = rng.uniform(0.3, 5.0, k)
    b[:, 4] = rng.uniform(0.3, 2.5, k)
    b[:, 5] = 1.5
    b[:, 6] = rng.uniform(-math.pi, math.pi, k)
    return b


@pytest.mark.parametrize("kw", [
    dict(), dict(center_sampling=True), dict(variant="mmdet3d"), dict(box_frame="axis_aligned"),
    dict(box_frame="axis_aligned", center_sampling=True, center_sample_radius=2.5),
])
def test_fcos_matches_dense_loop(kw):
    p = params(**kw)
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 14)
    boxes[1, :7] = boxes[0, :7]  # an exact duplicate: ties go to the lower index
    res = fcos_assign(torch.from_numpy(boxes), p)
    ref = dense_reference(boxes, p)
    got = dict(zip(res.pos_point.tolist(), res.pos_gt.tolist()))
    assert got == ref and len(ref) > 20
    assert res.gt_num_pos[1] == 0 and res.gt_zero_pos_reason[1] == schema.REASON_TAKEN
    np.testing.assert_array_equal(res.gt_num_pos, np.bincount(list(ref.values()), minlength=len(boxes)))
    assert (res.gt_zero_pos_reason[res.gt_num_pos > 0] == None).all()  # noqa: E711


def test_fcos_hand_case():
    # Level 0: 0.4 m cells, points at (i + 0.5) * 0.4. A 1.0 x 1.0 box centred at (2.0, 2.0), yaw 0, covers the
    # points 1.8 and 2.2 on each axis (|u| = 0.2 < 0.5): 4 points; max(l, t, r, b) = 0.7 <= 2.0: in level 0's range.
    # Level 1 (0.8 m cells, points at 0.4, 1.2, 2.0, ...): points 2.0 (|u| = 0 < 0.5): 1 point, max distance 0.5,
    # outside [2, inf). So 4 positives, all on level 0.
    b = torch.tensor([[2.0, 2.0, 0.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    res = fcos_assign(b, params())
    assert res.gt_num_pos.tolist() == [4] and set(res.pos_level.tolist()) == {0}
    np.testing.assert_allclose(sorted(map(tuple, res.pos_xy.tolist())), [(1.8, 1.8), (1.8, 2.2), (2.2, 1.8),
                                                                          (2.2, 2.2)])
    # Centre sampling, radius 0.1 (stride 2 x 0.2 m x 0.25 = 0.1 m): no point strictly within 0.1 m of (2, 2) on
    # level 0; on level 1 the point (2.0, 2.0) is, but max distance 0.5 is out of range -> outside_regress_ranges.
    res = fcos_assign(b, params(center_sampling=True, center_sample_radius=0.25))
    assert res.gt_num_pos.tolist() == [0] and res.gt_zero_pos_reason[0] == schema.REASON_OUTSIDE_REGRESS_RANGES
    # A 0.1 m box at (2.1, 2.1), between points: the nearest are 0.1 m away on each axis (> 0.05): none inside.
    tiny = torch.tensor([[2.1, 2.1, 0.0, 0.1, 0.1, 1.0, 0.0]], dtype=torch.float64)
    assert fcos_assign(tiny, params()).gt_zero_pos_reason[0] == schema.REASON_NO_POINT_INSIDE
    # mmdet3d: the centre square is not clipped to the box. Level 0 radius 2 x 0.2 x 1.5 = 0.6 m: points 1.8, 2.2,
    # 2.6 per axis (|d| = 0.3, 0.1, 0.5 < 0.6), max distance to the box sides <= 0.55, in [-1, 2]: 9 positives.
    # Level 1 radius 1.2 m: points 1.2, 2.0, 2.8 per axis, max distance <= 0.95, outside [2, inf).
    r3 = fcos_assign(tiny, params(variant="mmdet3d"))
    assert r3.gt_num_pos.tolist() == [9] and set(r3.pos_level.tolist()) == {0}


def test_fcos_refusals():
    with pytest.raises(ConfigError, match="regress_ranges"):
        params(regress_ranges=((-1, 2.0),))
    with pytest.raises(ConfigError, match="asserts"):
        params(variant="mmdet3d", center_sampling=False)
    with pytest.raises(ConfigError, match="variant"):
        params(variant="fcaf3d")
    with pytest.raises(ConfigError, match="empty"):
        params(regress_ranges=((3.0, 2.0), (2.0, math.inf)))
    from assignaudit.errors import DataError

    with pytest.raises(DataError):
        fcos_assign(torch.zeros((2, 5)), params())


# ------------------------------------------------------------------------------------------------------------------
# Config, count, refusals of configs that would need an unsupported variant
# ------------------------------------------------------------------------------------------------------------------

FCOS_YAML = """\
assignaudit: 1
name: fcos-bev
head: fcos
class_names: [car, truck, construction_vehicle, bus, trailer, barrier, motorcycle, bicycle, pedestrian, traffic_cone]
point_cloud_range: [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size: [0.2, 0.2, 8.0]
fcos:
  variant: mmdet
  strides: [4, 8, 16]
  regress_ranges: [[-1, 4.0], [4.0, 8.0], [8.0, null]]
  center_sampling: true
"""


def test_fcos_yaml_config_round_trip(tmp_path):
    from assignaudit.config import load_config
    from assignaudit.config.schema import config_from_dict, config_to_dict

    path = tmp_path / "fcos.yaml"
    path.write_text(FCOS_YAML)
    cfg = load_config(path)
    assert cfg.head == "fcos" and cfg.fcos.strides == (4, 8, 16) and cfg.fcos.regress_ranges[2] == (8.0, math.inf)
    assert cfg.fcos.sampling and cfg.fcos.map_sizes == ((128, 128), (64, 64), (32, 32))
    back = config_from_dict(config_to_dict(cfg), "round trip", default_name=cfg.name, source=cfg.source)
    assert back == cfg
    for bad, msg in [("  strides: [4, 8]\n", "regress_ranges"), ("  variant: fcaf3d\n", "variant"),
                     ("  box_frame: obb\n", "box_frame"), ("  extra: 1\n", "unknown key")]:
        key = bad.split(":")[0].strip()
        text = "\n".join(ln for ln in FCOS_YAML.splitlines() if not ln.strip().startswith(key + ":")) + "\n" + bad
        path.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            load_config(path)


def test_fcos_count_matches_direct_assignment(tmp_path):
    import dataclasses

    from assignaudit.augment.replay import AugmentationReplay
    from assignaudit.bands import ALL_BANDS
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    path = tmp_path / "fcos.yaml"
    path.write_text(FCOS_YAML)
    cfg = load_config(path)
    res = run_count(cfg, open_source(), CountOptions(augment=False, max_frames=3, device="cpu"), tmp_path / "o")
    a = res.summary[res.summary.band == ALL_BANDS].set_index("class")
    replay = AugmentationReplay(dataclasses.replace(cfg, augmentations=()), None, seed=0)
    pos = {c: 0 for c in cfg.class_names}
    zero = {c: 0 for c in cfg.class_names}
    neg = 0
    for i, fr in enumerate(open_source().frames()):
        if i >= 3:
            break
        aug = replay.apply(fr, 0, augment=False)
        r = fcos_assign(torch.tensor(aug.boxes[:, :7]), cfg.fcos)
        for c, n in zip(aug.class_name, r.gt_num_pos):
            pos[c] += int(n)
            zero[c] += int(n == 0)
        neg += cfg.fcos.num_points - len(r.pos_point)
    assert a.num_pos.to_dict() == pos and a.num_gt_zero_pos.to_dict() == zero
    assert (a.num_neg == neg).all() and res.metadata["counting"]["family"] == "fcos"
    from assignaudit.report import read_report

    o, _ = read_report(tmp_path / "o" / "objects.parquet")
    assigned = o[o.band.notna()]  # rows of GT that reached the assigner (filtered GT are ledgered too)
    assert set(assigned.zero_pos_reason.dropna()) <= {schema.REASON_TAKEN, schema.REASON_NO_POINT_INSIDE,
                                                       schema.REASON_OUTSIDE_REGRESS_RANGES}
    assert len(assigned.zero_pos_reason.dropna()) == sum(zero.values())


@pytest.mark.parametrize("head", ["FCOSMono3DHead", "FCAF3DHead"])
def test_mmdet3d_fcos_like_heads_are_refused_with_a_reason(head):
    pytest.importorskip("mmengine")
    from pathlib import Path

    from assignaudit.config import load_config

    pp = (Path(__file__).parent / "data" / "mmdet3d" / "configs" / "pointpillars"
          / "pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py")
    with pytest.raises(ConfigError, match=rf"'{head}' is not supported: .*(image|camera|monocular|network)"):
        load_config(pp, cfg_options=[f"model.pts_bbox_head.type={head}"])
