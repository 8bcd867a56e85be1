"""Benchmark: CenterPoint heatmap targets, frames/s, vectorised vs a per-GT loop (the upstream way).

Layout: CenterPoint voxel0075 (PCR +-54 m, voxel 0.075 m, stride 8 -> 180 x 180, 6 heads, 10 classes), 40 GT per
frame with nuScenes-like sizes. Both sides produce the heatmaps; ours also produces the per-GT and per-class
stats. The loop is OpenPCDet's ``assign_target_of_single_head`` pattern: one numpy kernel + ``torch.max`` per GT.

Second pair of lines, the `count` path end to end per frame: targets + the class x band tallies of
`assignaudit.tally.heatmap.HeatmapTally` (what ``count`` runs for a ``head: center`` config, minus I/O), against
the per-GT loop followed by a straightforward tally over the dense maps (per channel and band masks). Target:
>= 1000 frames/s on 2 cores with 1 torch thread. The tallies of both sides are checked equal first.

Usage: ``python benchmarks/bench_heatmap.py [--frames 300] [--variant pcdet|mmdet3d] [--threads 1]``.
Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from assignaudit.assign.heatmap import HeatmapParams, gaussian_radius, heatmap_targets
from assignaudit.bands import Bands
from assignaudit.tally.base import GTBands
from assignaudit.tally.heatmap import HeatmapTally

CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle", "pedestrian",
           "traffic_cone")
HEADS = (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",), ("motorcycle", "bicycle"),
         ("pedestrian", "traffic_cone"))
SIZES = np.array([(4.63, 1.97), (6.93, 2.51), (6.37, 2.85), (10.5, 2.94), (12.29, 2.90), (0.50, 2.53), (2.11, 0.77),
                  (1.70, 0.60), (0.73, 0.67), (0.41, 0.41)])
MIX = np.array([0.43, 0.08, 0.013, 0.014, 0.02, 0.13, 0.011, 0.01, 0.19, 0.09])


def frames(n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cls = rng.choice(10, size=k, p=MIX / MIX.sum())
        xy = rng.uniform(-54, 54, (k, 2))
        dims = SIZES[cls] * rng.uniform(0.85, 1.15, (k, 1))
        b = np.concatenate([xy, np.zeros((k, 1)), dims, np.full((k, 1), 1.6), rng.uniform(-3, 3, (k, 1))], 1)
        out.append((torch.tensor(b, dtype=torch.float32), cls))
    return out


def _kernel(r: int) -> torch.Tensor:
    d = 2 * r + 1
    s = d / 6
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    g = np.exp(-(x * x + y * y) / (2 * s * s))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return torch.from_numpy(g).float()


def loop_targets(boxes: torch.Tensor, cls: np.ndarray, p: HeatmapParams):
    """pcdet-style reference: per head, per GT, crop and torch.max (monotone heads, so no relabelling)."""
    w, h = p.map_size
    out = []
    for names in p.heads:
        ids = [CLASSES.index(n) for n in names]
        sel = np.flatnonzero(np.isin(cls, ids))
        sub = boxes[sel]
        hm = torch.zeros(len(names), h, w)
        cx = torch.clamp((sub[:, 0] - p.point_cloud_range[0]) / p.voxel_size[0] / 8, 0, w - 0.5)
        cy = torch.clamp((sub[:, 1] - p.point_cloud_range[1]) / p.voxel_size[1] / 8, 0, h - 0.5)
        rad = torch.clamp_min(gaussian_radius(sub[:, 3] / 0.6, sub[:, 4] / 0.6, 0.1).int(), 2)
        for k in range(min(len(sel), p.num_max_objs)):
            r, x, y = int(rad[k]), int(cx[k]), int(cy[k])
            g = _kernel(r)
            left, right, top, bottom = min(x, r), min(w - x, r + 1), min(y, r), min(h - y, r + 1)
            m = hm[ids.index(int(cls[sel[k]]))][y - top : y + bottom, x - left : x + right]
            torch.max(m, g[r - top : r + bottom, r - left : r + right], out=m)
        out.append(hm)
    return out


def loop_tally(boxes: torch.Tensor, cls: np.ndarray, p: HeatmapParams, cell_band: np.ndarray, nb: int):
    """Reference tally: the per-GT loop's maps, then per channel and band: positive cells (hm == 1, by cell band
    here, as the owning GT's band needs the slot bookkeeping the loop does not keep) and cells with 0 < hm < 1."""
    pos = np.zeros((len(CLASSES), nb), np.int64)
    red = np.zeros((len(CLASSES), nb), np.int64)
    for names, hm in zip(p.heads, loop_targets(boxes, cls, p)):
        for j, name in enumerate(names):
            m = hm[j].numpy().reshape(-1)
            c = CLASSES.index(name)
            pos[c] = np.bincount(cell_band[m == 1.0], minlength=nb)
            red[c] = np.bincount(cell_band[(m > 0) & (m < 1)], minlength=nb)
    return pos, red


def tally_config(p: HeatmapParams):
    import dataclasses

    from assignaudit.config import load_config

    return dataclasses.replace(load_config(None), head="center", heatmap=p, anchors=None, assigner=None,
                               point_cloud_range=p.point_cloud_range, class_names=CLASSES)


def run_tally(tally: HeatmapTally, bands: Bands, b: torch.Tensor, c: np.ndarray) -> None:
    """One frame as `count` does it: GT bands, targets, tallies."""
    bn = b.numpy()
    gtb = GTBands(c, np.hypot(bn[:, 0], bn[:, 1]), bands, len(CLASSES))
    tally.add_frame(bn, np.array(CLASSES, dtype=object)[c], gtb, "bench")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--gt", type=int, default=40)
    ap.add_argument("--variant", default="pcdet", choices=["pcdet", "mmdet3d"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = HeatmapParams((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2), 8, HEADS, CLASSES,
                      variant=a.variant)
    data = frames(a.frames, a.gt)
    # correctness first (pcdet variant only: the loop is pcdet's)
    if a.variant == "pcdet":
        for b, c in data[:5]:
            ours = heatmap_targets(b, c, p)
            assert all(torch.equal(o.heatmap, r) for o, r in zip(ours.heads, loop_targets(b, c, p)))
    for b, c in data[:5]:  # warm-up
        heatmap_targets(b, c, p)
        loop_targets(b, c, p)
    t0 = time.perf_counter()
    for b, c in data:
        heatmap_targets(b, c, p)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b, c in data:
        loop_targets(b, c, p)
    t_loop = time.perf_counter() - t0
    fv, fl = a.frames / t_vec, a.frames / t_loop
    print(f"layout 180x180, 6 heads, 10 classes, {a.gt} GT/frame, {a.frames} frames, variant {a.variant}, "
          f"threads {a.threads}")
    print(f"vectorised (heatmaps + per-GT + per-class stats): {fv:8.1f} frames/s ({1e3 / fv:.3f} ms/frame)")
    print(f"per-GT loop (heatmaps only):                      {fl:8.1f} frames/s ({1e3 / fl:.3f} ms/frame)")
    print(f"ratio: {fv / fl:.1f}x")

    # End to end per frame: targets + class x band tallies.
    bands = Bands()
    nb = len(bands)
    cfg = tally_config(p)
    check = HeatmapTally(cfg, bands, torch.device("cpu"))
    cell_band = check.cell_band
    if a.variant == "pcdet":  # the tallies agree with the dense-map reference (positives by cell band)
        for b, c in data[:5]:
            before_red = check.tallies.num_neg_reduced[:, :nb].copy()
            res = check.targets(b.numpy(), np.array(CLASSES, dtype=object)[c])
            gtb = GTBands(c, np.hypot(b[:, 0].numpy(), b[:, 1].numpy()), bands, len(CLASSES))
            check.tally(res, gtb)
            _, red = loop_tally(b, c, p, cell_band, nb)
            assert np.array_equal(check.tallies.num_neg_reduced[:, :nb] - before_red, red)
    tally = HeatmapTally(cfg, bands, torch.device("cpu"))
    for b, c in data[:5]:  # warm-up
        run_tally(tally, bands, b, c)
    t0 = time.perf_counter()
    for b, c in data:
        run_tally(tally, bands, b, c)
    t_tv = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b, c in data:
        loop_tally(b, c, p, cell_band, nb)
    t_tl = time.perf_counter() - t0
    tv, tl = a.frames / t_tv, a.frames / t_tl
    print(f"count path, targets + tallies (HeatmapTally):          {tv:8.1f} frames/s ({1e3 / tv:.3f} ms/frame)"
          f"  [target >= 1000]")
    print(f"per-GT loop + dense-map tallies (reference):           {tl:8.1f} frames/s ({1e3 / tl:.3f} ms/frame)")
    print(f"ratio: {tv / tl:.1f}x")


if __name__ == "__main__":
    main()
