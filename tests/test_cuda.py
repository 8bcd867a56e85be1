"""CPU and CUDA give the same counts (integers: equal, not close) on the bundled nuScenes fixture, for every target
family and the assigners with their own code paths. Runs only where torch sees a CUDA device; skipped elsewhere.

Float columns (IoU percentiles) come from histograms of float32 IoUs, which are computed with the same elementwise
arithmetic on both devices; they are compared exactly too, except where a CUDA fused multiply-add may move an IoU
across a 1e-4 histogram bin (then within one bin).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

INT_COLUMNS = ("num_gt", "num_pos", "num_neg", "num_ignore", "num_forced", "num_gt_zero_pos", "num_neg_reduced",
               "num_gt_collision", "num_gt_truncated", "num_gt_clamped", "num_gt_out_of_map", "num_gt_useless")

CASES = {
    "pcdet default (AxisAligned, 327,680 anchors)": ("pcdet-nuscenes-pointpillars-multihead", []),
    "mmdet3d 560k class-agnostic MaxIoU": ("mmdet3d-nuscenes-pointpillars-secfpn", []),
    "CenterPoint heatmaps (pcdet)": ("pcdet-nuscenes-centerpoint-voxel0075", []),
    "CenterPoint heatmaps (mmdet3d)": ("mmdet3d-nuscenes-centerpoint-voxel0075", []),
    "ATSS (rotated BEV IoU, margin kernel)": ("pcdet-nuscenes-pointpillars-multihead",
                                              [("assigner.framework", "atss"), ("assigner.iou", "bev")]),
}


def _count(config: str, overrides, device: str, augment: bool):
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    cfg = load_config(config, overrides)
    opts = CountOptions(seed=0, replays=1, augment=augment, device=device, max_frames=12)
    return run_count(cfg, open_source(), opts, None)


@pytest.mark.parametrize("augment", [False, True], ids=["no-augment", "augment"])
@pytest.mark.parametrize("case", list(CASES))
def test_cpu_and_cuda_counts_identical(case: str, augment: bool) -> None:
    config, overrides = CASES[case]
    cpu = _count(config, overrides, "cpu", augment)
    gpu = _count(config, overrides, "cuda", augment)
    assert cpu.num_frames_assigned == gpu.num_frames_assigned > 0
    assert gpu.metadata["device"].startswith("cuda")
    a, b = cpu.summary, gpu.summary
    assert list(a["class"]) == list(b["class"]) and list(a["band"]) == list(b["band"])
    for col in INT_COLUMNS:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy(), err_msg=f"{case}: {col}")
    assert int(a["num_gt"].sum()) > 0
    for col in ("iou_pos_p10", "iou_pos_p50", "radius_p50"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=0, atol=1.01e-4, equal_nan=True,
                                   err_msg=f"{case}: {col}")


def test_unique_scratch_on_cuda_equals_torch_unique() -> None:
    from assignaudit.assign.assigner import unique_scratch, unique_with_scratch

    g = torch.Generator().manual_seed(0)
    cand = torch.randint(0, 5000, (20000,), generator=g).cuda()
    scratch = unique_scratch(5000, torch.device("cuda"))
    for _ in range(2):
        u, i = unique_with_scratch(cand, scratch)
        want_u, want_i = torch.unique(cand, return_inverse=True)
        assert torch.equal(u, want_u) and torch.equal(i, want_i)
    assert bool((scratch == -1).all())
