"""Benchmark: end-to-end ``assignaudit count`` as a user runs it (fresh interpreter, start-up included) on
replicated nuScenes-format frames, against a framework-style dense per-frame loop on the same frames.

What runs (each in a fresh subprocess, so start-up, imports and the source load are part of every figure):

* ``ours``: the CLI, ``python -m assignaudit count --config PRESET -q --only-summary --dataroot ...`` (default
  preset: OpenPCDet nuScenes PointPillars multihead, 327,680 anchors), with ``--no-augment`` and with the config's
  default augmentation (gt_sampling, flip, rotation, scaling). One torch thread (the CLI's default).
  Where the installed CLI has a frame cache (``--no-cache`` in ``count --help``) both ``cache off`` (``--no-cache``)
  and ``cached`` (a warm-up run builds the cache, the next one is measured) are run; where it has ``--workers``,
  the 2,000-frame no-augment run is repeated with ``--workers 1`` and ``--workers 2``.
* ``dense loop``: what a user who wants these counts without assignaudit writes today - a loop over the (same,
  filtered, un-augmented) frames that, like OpenPCDet's ``AxisAlignedTargetAssigner.assign_targets`` loop, builds
  per frame and per anchor set (class) the dense ``[anchors, GT]`` nearest-BEV IoU matrix (pure torch,
  ``assignaudit.ops.xyxy_iou``, the frameworks' op order), takes per-anchor max / argmax and per-GT max, forces
  every anchor tied at a GT's maximum, thresholds, and counts the positive anchors. It is our re-implementation of
  that loop structure (no OpenPCDet code or import; OpenPCDet's own op needs its CUDA extension for rotated IoU,
  but the nearest-BEV assigner is pure torch), run in the same kind of fresh process with the same source loader.
  Its positives per class are checked equal to ours (``--no-augment``), so both compute the same thing.

Printed: frames, wall s, CPU s (user + system of the child, ``getrusage``; steadier than wall time on a shared
machine), frames/s by wall and by CPU, peak RSS MB, and ratios ours / dense loop. Targets (issue 12, 2 idle cores,
default preset, 2,000 frames): >= 400 frames/s ``--no-augment`` on a cached source, >= 250 frames/s augmented.

Usage: ``python benchmarks/bench_e2e.py [--frames 400 2000] [--big] [--baseline-frames 400]
[--config PRESET]``; ``--big`` adds 6,000 frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_count import replicate_fixture  # noqa: E402  (same replicated dataroot as bench_count)

FIXTURE_FRAMES = 24

# Runs the CLI in this fresh interpreter and reports its own resource usage at exit (start-up included).
_CLI_CHILD = r"""
import atexit, json, os, resource, sys, time
t0 = time.perf_counter()
def _report():
    # CPU of this process plus its reaped children (the --workers processes); peak RSS of the largest of them.
    ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["BENCH_E2E_REPORT"], "w") as f:
        json.dump({"cpu": ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime,
                   "peak_mb": max(ru.ru_maxrss, rc.ru_maxrss) / 1024,
                   "wall_inside": time.perf_counter() - t0}, f)
atexit.register(_report)
sys.argv = ["assignaudit", *sys.argv[1:]]
from assignaudit.cli import main
main()
"""

# The framework-style dense loop (module docstring), in a fresh interpreter.
_DENSE_CHILD = r"""
import atexit, json, os, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
torch.set_num_threads(1)
from assignaudit import ops
from assignaudit.assign.anchors import generate_anchors
from assignaudit.config import load_config
from assignaudit.count import limited, make_replay
from assignaudit.sources.open import open_source

dataroot, version, split, max_frames, preset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
cfg = load_config(None if preset == "-" else preset)
source = open_source(dataroot=dataroot, version=version, split=split)
replay = make_replay(cfg, source, seed=0, augment=False, max_frames=max_frames)
anchors = generate_anchors(cfg.anchors)
sets = cfg.anchors.anchor_sets
conv = cfg.assigner.nearest_convention
xyxy_all = anchors.xyxy[conv]
per_set = [xyxy_all[anchors.set_index == s] for s in range(len(sets))]  # each set's anchors (its own head)
pos_per_class = {s.class_name: 0 for s in sets}
frames = 0
for frame in limited(source.frames(), max_frames):
    aug = replay.apply(frame, 0, augment=False)
    if len(aug.boxes) == 0:
        continue
    frames += 1
    names = np.asarray(aug.class_name)
    gt_all = torch.as_tensor(aug.boxes[:, :7], dtype=torch.float32)
    for s, aset in enumerate(sets):  # the frameworks' loop over anchor sets / classes
        mask = torch.as_tensor(names == aset.class_name)
        if not bool(mask.any()):
            continue  # no GT of the class: every anchor of the set is negative
        gt_xyxy = ops.nearest_bev_xyxy(gt_all[mask], conv).to(torch.float32)
        iou = ops.xyxy_iou(per_set[s], gt_xyxy)  # dense [A_s, K_s]
        a_max, a_arg = iou.max(dim=1)
        g_max = iou.max(dim=0).values
        g_max = torch.where(g_max == 0, torch.full_like(g_max, -1.0), g_max)
        forced = (iou == g_max[None, :]).any(dim=1)
        pos = forced | (a_max >= aset.matched_threshold)
        pos_per_class[aset.class_name] += int(pos.sum())
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"frames": frames, "cpu": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024,
                  "wall_inside": time.perf_counter() - t0, "pos": pos_per_class}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def cli_help() -> str:
    proc = subprocess.run([sys.executable, "-m", "assignaudit", "count", "--help"], capture_output=True, text=True,
                          env={**_env(), "COLUMNS": "200"})
    return proc.stdout


def run_cli(args: list[str], tmp: Path) -> dict:
    report = tmp / f"report-{time.monotonic_ns()}.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CLI_CHILD, *args], capture_output=True, text=True,
                          env={**_env(), "BENCH_E2E_REPORT": str(report)}, cwd=tmp)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"count failed ({proc.returncode}): {proc.stderr[-2000:]}")
    r = json.loads(report.read_text())
    r["wall"] = wall
    return r


def run_dense(dataroot: Path, version: str, split: str, frames: int, preset: str, tmp: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _DENSE_CHILD, str(dataroot), version, split, str(frames), preset],
                          capture_output=True, text=True, env=_env(), cwd=tmp)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"dense loop failed: {proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["wall"] = wall
    return r


def _row(label: str, frames: int, r: dict) -> str:
    fps_wall = frames / r["wall"]
    fps_cpu = frames / max(r["cpu"], 1e-9)
    return (f"{label:<44} {frames:>6} {r['wall']:>7.2f} {r['cpu']:>7.2f} {fps_wall:>9.1f} {fps_cpu:>9.1f} "
            f"{r['peak_mb']:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[400, 2000])
    ap.add_argument("--big", action="store_true", help="also 6,000 frames")
    ap.add_argument("--baseline-frames", type=int, nargs="*", default=[400, 2000],
                    help="frame counts to run the dense loop on (it is slow)")
    ap.add_argument("--config", default="-", help="preset (default: the CLI's default preset)")
    a = ap.parse_args()
    sizes = sorted(set(a.frames + ([6000] if a.big else [])))
    help_text = cli_help()
    has_cache, has_workers = "--no-cache" in help_text, "--workers" in help_text
    cfg_args = [] if a.config == "-" else ["--config", a.config]
    print(f"end-to-end count, fresh process per run (start-up included), preset "
          f"{'default' if a.config == '-' else a.config}, 1 torch thread; cache in this CLI: "
          f"{'yes' if has_cache else 'no'}; --workers: {'yes' if has_workers else 'no'}")
    print(f"{'run':<44} {'frames':>6} {'wall s':>7} {'CPU s':>7} {'f/s wall':>9} {'f/s CPU':>9} {'peak MB':>8}")
    results: dict[tuple, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for n in sizes:
            copies = math.ceil(n / FIXTURE_FRAMES)
            root, version, split = replicate_fixture(copies, tmp / f"nusc{n}")
            src = ["--dataroot", str(root), "--version", version, "--split", split, "--max-frames", str(n)]
            base = ["count", *cfg_args, *src, "-q", "--only-summary"]
            for aug_label, aug_args in (("--no-augment", ["--no-augment"]), ("augment", [])):
                variants = [("", [])]
                if has_cache:
                    variants = [("cache off", ["--no-cache"]), ("cached", ["--cache-dir", str(tmp / f"cache{n}")])]
                for var_label, var_args in variants:
                    out = tmp / f"out-{n}-{aug_label}-{var_label}".replace(" ", "_")
                    args = [*base, *aug_args, *var_args, "--out", str(out)]
                    if var_label == "cached":
                        run_cli(args, tmp)  # warm-up: builds the cache
                    r = run_cli(args, tmp)
                    results[(n, aug_label, var_label)] = r
                    label = f"ours {aug_label}" + (f", {var_label}" if var_label else "")
                    print(_row(label, n, r), flush=True)
                if aug_label == "--no-augment" and n in a.baseline_frames:
                    d = run_dense(root, version, split, n, a.config, tmp)
                    results[(n, "dense", "")] = d
                    print(_row("dense loop (framework-style, --no-augment)", d["frames"], d), flush=True)
                    _check_same_positives(d, tmp / f"out-{n}---no-augment-{variants[0][0]}".replace(" ", "_"))
            if has_workers and n >= 2000:
                for w in (1, 2):
                    args = [*base, "--no-augment", "--workers", str(w), "--out", str(tmp / f"w{w}")]
                    r = run_cli(args, tmp)
                    results[(n, "workers", w)] = r
                    print(_row(f"ours --no-augment --workers {w}", n, r), flush=True)
        print()
        for n in sizes:
            d = results.get((n, "dense", ""))
            plain = [k for k in results if k[0] == n and k[1] == "--no-augment"]
            for k in plain:
                r = results[k]
                if d is not None:
                    print(f"{n} frames --no-augment{', ' + k[2] if k[2] else ''}: ours / dense loop = "
                          f"{d['wall'] / r['wall']:.1f}x wall, {d['cpu'] / r['cpu']:.1f}x CPU")
            na = results.get((n, "--no-augment", "cached" if has_cache else ""))
            au = results.get((n, "augment", "cached" if has_cache else ""))
            if na and au:
                print(f"{n} frames: {n / na['wall']:.0f} f/s wall ({n / na['cpu']:.0f} f/s CPU) --no-augment "
                      f"[target >= 400 at 2,000 cached]; {n / au['wall']:.0f} f/s wall ({n / au['cpu']:.0f} f/s "
                      f"CPU) augmented [target >= 250]")
            if (n, "workers", 1) in results:
                w1, w2 = results[(n, "workers", 1)], results[(n, "workers", 2)]
                print(f"{n} frames: --workers 2 / --workers 1 = {w1['wall'] / w2['wall']:.2f}x wall")
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            k = "cached" if has_cache else ""
            # Marginal CPU per frame (start-up and fixed costs cancel): the steady-state speed of each loop.
            for label, key in (("ours --no-augment", (None, "--no-augment", k)), ("ours augmented", (None, "augment", k)),
                               ("dense loop", (None, "dense", ""))):
                r_lo, r_hi = results.get((lo, *key[1:])), results.get((hi, *key[1:]))
                if r_lo and r_hi:
                    per = (r_hi["cpu"] - r_lo["cpu"]) / (hi - lo)
                    print(f"marginal CPU per frame {lo} -> {hi}, {label}: {per * 1e3:.2f} ms ({1 / per:.0f} f/s "
                          f"after start-up)")
            a_, b_ = results[(lo, "augment", k)], results[(hi, "augment", k)]
            print(f"peak memory {lo} -> {hi} frames (augmented): {a_['peak_mb']:.0f} -> {b_['peak_mb']:.0f} MB "
                  f"(x{b_['peak_mb'] / a_['peak_mb']:.2f}; the source's tables grow with the frames, the pipeline "
                  f"does not)")


def _check_same_positives(dense: dict, out_dir: Path) -> None:
    import pyarrow.parquet as pq

    summary = pq.read_table(out_dir / "summary.parquet").to_pandas()
    ours = summary[summary.band == "all"].set_index("class")["num_pos"].to_dict()
    theirs = dense["pos"]
    bad = {c: (int(ours.get(c, 0)), v) for c, v in theirs.items() if int(ours.get(c, 0)) != v}
    if bad:
        print(f"  MISMATCH positives ours vs dense loop: {bad}")
    else:
        print(f"  positives per class equal to the dense loop ({sum(theirs.values())} in all)")


if __name__ == "__main__":
    main()
