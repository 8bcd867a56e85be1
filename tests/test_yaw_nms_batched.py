"""Batched NMS over all samples (`yaw.nms.apply_nms`) equals the per-sample reference (`apply_nms_per_sample`)."""

import numpy as np
import pytest

from assignaudit.yaw.matching import devkit_order
from assignaudit.yaw.nms import NmsSettings, apply_nms, apply_nms_per_sample


def _clustered(seed: int, n_samples: int = 12, per_sample: int = 60):
    rng = np.random.default_rng(seed)
    n = n_samples * per_sample
    sample = np.repeat(rng.permutation(n_samples) * 7 + 3, per_sample)  # sparse, unsorted sample ids
    centres = rng.uniform(-30, 30, (n_samples, 6, 2))
    which = rng.integers(0, 6, n)
    boxes = np.zeros((n, 9))
    boxes[:, :2] = centres[np.repeat(np.arange(n_samples), per_sample), which] + rng.normal(0, 0.6, (n, 2))
    boxes[:, 3:6] = rng.uniform(0.5, 5, (n, 3))
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, n)
    score = np.round(rng.random(n), 2)  # ties on purpose
    cls = rng.integers(0, 3, n)
    order = devkit_order(score, np.arange(n))
    return boxes, score, sample, cls, order


SETTINGS = [
    NmsSettings(),
    NmsSettings(thresh=0.0),
    NmsSettings(thresh=0.5, class_agnostic=True),
    NmsSettings(thresh=0.1, pre_max=20, post_max=5),
    NmsSettings(thresh=0.2, class_agnostic=True, pre_max=30, post_max=8, score_thresh=0.3),
    NmsSettings(nms_type="circle", circle_radius_sq=1.0),
    NmsSettings(nms_type="circle", circle_radius_sq=4.0, class_agnostic=True, pre_max=25, post_max=6),
    NmsSettings(nms_type="circle", circle_radius_sq=0.25, score_thresh=0.5, post_max=3),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=range(len(SETTINGS)))
@pytest.mark.parametrize("seed, block, chunk", [(0, 1 << 17, 1 << 21), (1, 130, 7), (2, 50, 1)])
def test_batched_equals_per_sample(settings, seed, block, chunk, monkeypatch):
    import assignaudit.yaw.nms as nms_mod

    # small blocks (several samples, or one sample larger than a block) and pair chunks
    monkeypatch.setattr(nms_mod, "NMS_BLOCK_BOXES", block)
    monkeypatch.setattr(nms_mod, "NMS_PAIR_CHUNK", chunk)
    boxes, score, sample, cls, order = _clustered(seed)
    want = apply_nms_per_sample(boxes, score, sample, cls, order, settings)
    got = apply_nms(boxes, score, sample, cls, order, settings)
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(got, want)


def test_far_apart_samples_with_identical_boxes_do_not_suppress_each_other():
    # two samples with the very same boxes: a cross-sample edge would suppress one copy
    boxes = np.zeros((4, 9))
    boxes[:, 3:6] = 2.0
    boxes[1, 0] = boxes[3, 0] = 0.5
    score = np.array([0.9, 0.8, 0.9, 0.8])
    sample = np.array([0, 0, 1, 1])
    z = np.zeros(4, np.int64)
    kept = apply_nms(boxes, score, sample, z, devkit_order(score, np.arange(4)), NmsSettings(thresh=0.2))
    np.testing.assert_array_equal(kept, [True, False, True, False])


def test_nothing_eligible():
    boxes = np.zeros((3, 9))
    boxes[:, 3:6] = 1.0
    score = np.array([0.1, 0.2, 0.05])
    z = np.zeros(3, np.int64)
    kept = apply_nms(boxes, score, z, z, devkit_order(score, np.arange(3)), NmsSettings(score_thresh=0.5))
    assert not kept.any()
