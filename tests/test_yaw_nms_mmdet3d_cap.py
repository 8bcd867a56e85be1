"""mmdet3d ``box3d_multiclass_nms``: ``max_num`` caps all classes together after per-class NMS (OpenPCDet caps per
class). Hand-made predictions: six boxes far apart (no suppression), two classes, scores known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assignaudit.yaw.matching import devkit_order
from assignaudit.yaw.nms import NmsSettings, apply_nms
from assignaudit.yaw.pipeline import NmsOverrides, resolve_nms


def _scene():
    boxes = np.zeros((6, 9))
    boxes[:, 0] = np.arange(6) * 10.0  # 10 m apart: nothing overlaps
    boxes[:, 3:6] = (4.0, 2.0, 1.5)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    cls = np.array([0, 0, 0, 1, 1, 1])
    return boxes, score, np.zeros(6, dtype=np.int64), cls


def test_max_num_over_all_classes_versus_per_class():
    boxes, score, sample, cls = _scene()
    order = devkit_order(score, np.arange(6))
    global_cap = apply_nms(boxes, score, sample, cls, order, NmsSettings(post_max=2, post_max_per_class=False))
    per_class = apply_nms(boxes, score, sample, cls, order, NmsSettings(post_max=2))
    assert np.flatnonzero(global_cap).tolist() == [0, 1]  # the two best of all: both class 0
    assert np.flatnonzero(per_class).tolist() == [0, 1, 3, 4]  # the two best of each class


def test_resolve_nms_takes_the_framework_cap_from_the_config():
    pytest.importorskip("mmengine")
    from assignaudit.config.loader import load_config
    from assignaudit.config.mmdet3d import load_mmdet3d_config

    mm = load_mmdet3d_config(Path(__file__).parent / "data" / "mmdet3d_cfgs" / "configs" / "second"
                             / "second_hv_secfpn_8xb6-80e_kitti-3d-3class.py")
    s = resolve_nms(NmsOverrides(), mm)
    assert (s.class_agnostic, s.post_max, s.post_max_per_class) == (False, 50, False)  # test_cfg max_num=50
    pc = resolve_nms(NmsOverrides(), load_config("pcdet-kitti-pointpillars"))
    assert pc.post_max_per_class is True


@pytest.mark.parametrize("per_class", [True, False])
def test_all_samples_at_once_equals_per_sample_with_either_cap(per_class):
    from assignaudit.yaw.nms import apply_nms_per_sample

    boxes, score, _, cls = _scene()
    boxes, score, cls = np.tile(boxes, (3, 1)), np.tile(score, 3), np.tile(cls, 3)
    sample = np.repeat(np.arange(3), 6)
    order = devkit_order(score, np.arange(18))
    settings = NmsSettings(post_max=2, post_max_per_class=per_class)
    got = apply_nms(boxes, score, sample, cls, order, settings)
    want = apply_nms_per_sample(boxes, score, sample, cls, order, settings)
    assert got.tolist() == want.tolist()
    assert int(got.sum()) == 3 * (4 if per_class else 2)
