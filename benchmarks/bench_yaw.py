#!/usr/bin/env python
"""Benchmark `assignaudit yaw`'s analysis (matching + residuals + AOE + duplicates + NMS) against nuscenes-devkit.

Synthetic nuScenes-scale raw (pre-NMS) predictions: ``--samples`` samples (full nuScenes val: 6,019; default
6,000) with ~40 GT of the 10 classes each and ``--boxes`` raw boxes per sample (default 500): clusters of jittered
boxes around the GT (what a detector emits before NMS) plus uniform false positives.

Prints predictions/s for `assignaudit.yaw.analysis.analyse` with the default options (centre matching at 2 m,
nuScenes AOE, distance duplicates before and after per-class rotated NMS at IoU 0.2), and, on the same boxes, the
time of nuscenes-devkit's ``accumulate`` for the 10 classes at the single 2 m threshold (DetectionEval runs it for 4
thresholds, plus loading and filtering, so this is a lower bound of its time). The devkit is slow, so by default it
runs on the first ``--devkit-samples`` samples and its rate is extrapolated linearly (it is linear in samples).

    python benchmarks/bench_yaw.py                 # full scale (6,000 x 500)
    python benchmarks/bench_yaw.py --scale 0.05    # 300 samples, for a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assignaudit.yaw.analysis import EvalData, EvalGT, EvalPreds, YawOptions, analyse  # noqa: E402

CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
           "traffic_cone", "barrier")
SIZES = np.array([[4.6, 1.9, 1.7], [6.9, 2.5, 2.8], [11.0, 2.9, 3.5], [12.0, 2.9, 3.9], [6.4, 2.8, 3.2],
                  [0.7, 0.7, 1.8], [2.1, 0.8, 1.5], [1.7, 0.6, 1.3], [0.4, 0.4, 1.1], [0.5, 2.5, 1.0]])


def synthetic(n_samples: int, boxes_per_sample: int, seed: int = 0) -> EvalData:
    rng = np.random.default_rng(seed)
    n_gt_per = rng.integers(20, 60, n_samples)
    g_sample = np.repeat(np.arange(n_samples), n_gt_per)
    n_gt = g_sample.size
    g_cls = rng.choice(10, n_gt, p=[.3, .1, .03, .03, .03, .2, .04, .04, .13, .1])
    g = np.zeros((n_gt, 9))
    r = rng.uniform(2, 60, n_gt)
    a = rng.uniform(-np.pi, np.pi, n_gt)
    g[:, 0], g[:, 1] = r * np.cos(a), r * np.sin(a)
    g[:, 3:6] = SIZES[g_cls]
    g[:, 6] = rng.uniform(-np.pi, np.pi, n_gt)
    # Raw boxes: 60 % in clusters around GT, the rest uniform.
    n_pred = n_samples * boxes_per_sample
    p_sample = np.repeat(np.arange(n_samples), boxes_per_sample)
    first_gt = np.r_[0, np.cumsum(n_gt_per)[:-1]]
    src = first_gt[p_sample] + (rng.random(n_pred) * n_gt_per[p_sample]).astype(np.int64)
    clustered = rng.random(n_pred) < 0.6
    p = np.zeros((n_pred, 9))
    p_cls = np.where(clustered, g_cls[src], rng.integers(0, 10, n_pred))
    p[:, :2] = np.where(clustered[:, None], g[src, :2] + rng.normal(0, 0.4, (n_pred, 2)),
                        rng.uniform(-60, 60, (n_pred, 2)))
    p[:, 3:6] = SIZES[p_cls] * (1 + rng.normal(0, 0.05, (n_pred, 3)))
    flip = rng.random(n_pred) < 0.05
    p[:, 6] = np.where(clustered, g[src, 6] + rng.normal(0, 0.1, n_pred) + np.pi * flip,
                       rng.uniform(-np.pi, np.pi, n_pred))
    p[:, 6] = (p[:, 6] + np.pi) % (2 * np.pi) - np.pi
    score = np.round(np.where(clustered, rng.uniform(0.1, 1.0, n_pred), rng.uniform(0.0, 0.4, n_pred)), 3)
    return EvalData(
        sample_tokens=tuple(f"s{i}" for i in range(n_samples)), classes=CLASSES,
        gt=EvalGT(sample=g_sample, class_id=g_cls, boxes_lidar=g, xy_eval=g[:, :2].copy(), yaw_eval=g[:, 6].copy(),
                  ann_token=np.arange(n_gt).astype(object)),
        preds=EvalPreds(sample=p_sample, class_id=p_cls, score=score, index=np.arange(n_pred), boxes_lidar=p,
                        xy_eval=p[:, :2].copy(), yaw_eval=p[:, 6].copy()),
    )


def devkit_accumulate_seconds(data: EvalData, n_samples: int) -> tuple[float, int]:
    """Time nuscenes-devkit ``accumulate`` (10 classes, 2 m) on the first ``n_samples`` samples."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate
    from nuscenes.eval.detection.data_classes import DetectionBox

    from assignaudit.conventions import yaw_to_quaternion

    gt, pr = EvalBoxes(), EvalBoxes()
    g, p = data.gt, data.preds
    qg, qp = yaw_to_quaternion(g.yaw_eval), yaw_to_quaternion(p.yaw_eval)
    n_pred = 0
    for s in range(n_samples):
        tok = data.sample_tokens[s]
        gi = np.flatnonzero(g.sample == s)
        pi = np.flatnonzero(p.sample == s)
        n_pred += pi.size
        gt.add_boxes(tok, [DetectionBox(sample_token=tok, translation=(*g.xy_eval[j], 0.0),
                                        size=tuple(g.boxes_lidar[j, [4, 3, 5]]), rotation=tuple(qg[j]),
                                        detection_name=CLASSES[g.class_id[j]]) for j in gi])
        pr.add_boxes(tok, [DetectionBox(sample_token=tok, translation=(*p.xy_eval[i], 0.0),
                                        size=tuple(p.boxes_lidar[i, [4, 3, 5]]), rotation=tuple(qp[i]),
                                        detection_name=CLASSES[p.class_id[i]],
                                        detection_score=float(p.score[i])) for i in pi])
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for c in CLASSES:
            accumulate(gt, pr, c, center_distance, 2.0)
    return time.perf_counter() - t0, n_pred


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--boxes", type=int, default=500, help="raw boxes per sample")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply --samples by this (quick runs)")
    ap.add_argument("--devkit-samples", type=int, default=100, help="samples given to the devkit (extrapolated)")
    ap.add_argument("--no-devkit", action="store_true")
    args = ap.parse_args(argv)
    n_samples = max(1, int(round(args.samples * args.scale)))

    t0 = time.perf_counter()
    data = synthetic(n_samples, args.boxes)
    t_gen = time.perf_counter() - t0
    n_pred = len(data.preds.score)
    print(f"synthetic data: {n_samples} samples x {args.boxes} raw boxes = {n_pred:,} predictions, "
          f"{len(data.gt.sample):,} GT ({t_gen:.1f} s to generate); torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")

    t0 = time.perf_counter()
    tables = analyse(data, YawOptions())
    t_ours = time.perf_counter() - t0
    s = tables.summary[tables.summary.band == "all"]
    print(f"assignaudit analyse: {t_ours:.2f} s  -> {n_pred / t_ours:,.0f} predictions/s "
          f"(matched {int(s.num_matched.sum()):,}, kept by NMS {int(s.num_kept_nms.sum()):,}, "
          f"duplicates {int(s.num_dup_pre_nms.sum()):,} -> {int(s.num_dup_post_nms.sum()):,})")
    if n_samples < 6019:
        print(f"  extrapolated to nuScenes val (6,019 samples): {t_ours * 6019 / n_samples:.1f} s")

    if not args.no_devkit:
        k = min(args.devkit_samples, n_samples)
        t_dev, n_dev = devkit_accumulate_seconds(data, k)
        rate = n_dev / t_dev
        print(f"nuscenes-devkit accumulate (10 classes, 2 m only) on {k} samples: {t_dev:.2f} s -> {rate:,.0f} "
              f"predictions/s; extrapolated to these {n_samples} samples: {n_pred / rate:.1f} s "
              f"(DetectionEval runs 4 thresholds: ~{4 * n_pred / rate:.1f} s)")
        print(f"ratio DetectionEval matching (4 x accumulate) / assignaudit full analysis: "
              f"{4 * (n_pred / rate) / t_ours:.1f}x; one accumulate / assignaudit: {(n_pred / rate) / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
