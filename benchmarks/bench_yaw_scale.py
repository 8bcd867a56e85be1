#!/usr/bin/env python
"""Benchmark `assignaudit yaw` on a val-sized submission JSON, end to end, side by side with the devkit's DetectionEval.

Builds a nuScenes-format dataroot of ``--samples`` samples (the bundled fixture replicated with fresh tokens, as in
bench_count.py) and a submission JSON with ``--boxes`` raw boxes per sample (default 6,000 x 500 = 3 M boxes, the
devkit's maximum per sample): 60 % jittered copies of the sample's GT (what a detector emits before NMS), the rest
uniform false positives around the ego. Then runs, each in its own process on the same files:

* ``assignaudit yaw --predictions FILE --dataroot ... --split bench`` (defaults: centre matching at 2 m, AOE,
  duplicates before / after per-class rotated NMS at IoU 0.2), start-up and report writing included;
* nuscenes-devkit ``DetectionEval(...).main(render_curves=False)`` on the same dataroot, split and file (skip with
  ``--no-devkit``; ``--devkit-timeout`` seconds at most, reported as a lower bound when it runs out).

Prints wall and CPU seconds and the peak RSS of each process, and the ratio.

    python benchmarks/bench_yaw_scale.py                  # 6,000 x 500 (several minutes; DetectionEval longer)
    python benchmarks/bench_yaw_scale.py --samples 600    # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_count import replicate_fixture  # noqa: E402

_DEVKIT = r"""
import contextlib, io, sys
from nuscenes import NuScenes
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.detection.evaluate import DetectionEval
dataroot, version, split, result, out = sys.argv[1:6]
with contextlib.redirect_stdout(io.StringIO()):
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    DetectionEval(nusc, config_factory("detection_cvpr_2019"), result, eval_set=split, output_dir=out,
                  verbose=False).main(render_curves=False)
"""


def write_submission(dataroot: Path, version: str, boxes_per_sample: int, path: Path, seed: int = 0) -> int:
    from nuscenes.eval.detection.utils import category_to_detection_name

    tables = dataroot / version
    samples = json.loads((tables / "sample.json").read_text())
    anns = json.loads((tables / "sample_annotation.json").read_text())
    inst = {r["token"]: r for r in json.loads((tables / "instance.json").read_text())}
    cats = {r["token"]: r["name"] for r in json.loads((tables / "category.json").read_text())}
    by_sample: dict[str, list] = {}
    for a in anns:
        name = category_to_detection_name(cats[inst[a["instance_token"]]["category_token"]])
        if name is not None:
            by_sample.setdefault(a["sample_token"], []).append((a, name))
    rng = np.random.default_rng(seed)
    classes = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
               "traffic_cone", "barrier")
    n = 0
    with open(path, "w") as f:
        f.write('{"meta": {"use_camera": false, "use_lidar": true, "use_radar": false, "use_map": false, '
                '"use_external": false}, "results": {')
        for k, s in enumerate(samples):
            gt = by_sample.get(s["token"], [])
            m = boxes_per_sample
            centre = np.array([a["translation"] for a, _ in gt]).reshape(-1, 3) if gt else np.zeros((1, 3))
            src = rng.integers(0, len(centre), m)
            clustered = (rng.random(m) < 0.6) & bool(gt)
            tr = np.where(clustered[:, None], centre[src] + rng.normal(0, 0.3, (m, 3)) * [1, 1, 0.1],
                          centre.mean(0) + rng.uniform(-50, 50, (m, 3)) * [1, 1, 0.02])
            size = np.array([gt[i][0]["size"] for i in src]) if gt else np.ones((m, 3))
            size = np.where(clustered[:, None], size * rng.uniform(0.9, 1.1, (m, 3)), rng.uniform(0.5, 5, (m, 3)))
            yaw = rng.uniform(-np.pi, np.pi, m)
            names = [gt[i][1] if c else classes[int(rng.integers(0, 10))] for i, c in zip(src, clustered)]
            score = rng.random(m)
            recs = [{"sample_token": s["token"], "translation": tr[i].round(3).tolist(),
                     "size": size[i].round(3).tolist(),
                     "rotation": [float(np.cos(yaw[i] / 2)), 0.0, 0.0, float(np.sin(yaw[i] / 2))],
                     "velocity": [0.0, 0.0], "detection_name": names[i], "detection_score": float(score[i]),
                     "attribute_name": ""} for i in range(m)]
            f.write(("," if k else "") + json.dumps(s["token"]) + ":" + json.dumps(recs))
            n += m
        f.write("}}")
    return n


def measure(cmd: list[str], cwd: Path, timeout: float | None = None) -> dict:
    """Run one child process; its wall seconds (and whether it ran out of time)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        timed_out = True
    if proc.returncode != 0 and not timed_out:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err[-3000:]}")
    return {"wall": time.perf_counter() - t0, "timed_out": timed_out}


def run_measured(cmd: list[str], cwd: Path, timeout: float | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = measure(cmd, cwd, timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["peak_mb"] = after.ru_maxrss / 1024  # the largest child so far: run the smaller one first
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6000, help="multiple of 24 (the fixture's samples)")
    ap.add_argument("--boxes", type=int, default=500, help="raw boxes per sample (the devkit allows <= 500)")
    ap.add_argument("--no-devkit", action="store_true")
    ap.add_argument("--devkit-timeout", type=float, default=3600.0)
    ap.add_argument("--keep", type=Path, default=None, help="build the data here and keep it (reused if present)")
    args = ap.parse_args(argv)
    copies = max(1, args.samples // 24)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        dataroot = base / "nusc"
        result = base / "results_nusc.json"
        if not (dataroot / "v1.0-mini").is_dir():
            t0 = time.perf_counter()
            replicate_fixture(copies, dataroot)
            n = write_submission(dataroot, "v1.0-mini", args.boxes, result)
            print(f"built {copies * 24} samples, {n:,} boxes, {result.stat().st_size / 1e6:.0f} MB JSON in "
                  f"{time.perf_counter() - t0:.0f} s")
        print(f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
        out = base / "yaw-out"
        ours = run_measured([sys.executable, "-m", "assignaudit", "yaw", "--predictions", str(result),
                             "--dataroot", str(dataroot), "--version", "v1.0-mini", "--split", "bench", "--out",
                             str(out), "--quiet", "--no-cache"], ROOT)
        print(f"assignaudit yaw:  wall {ours['wall']:7.1f} s  CPU {ours['cpu']:7.1f} s  peak RSS "
              f"{ours['peak_mb']:7.0f} MB")
        if args.no_devkit:
            return 0
        dk = run_measured([sys.executable, "-c", _DEVKIT, str(dataroot), "v1.0-mini", "bench", str(result),
                           str(base / "devkit-out")], ROOT, timeout=args.devkit_timeout)
        bound = ">= " if dk["timed_out"] else ""
        print(f"DetectionEval:    wall {bound}{dk['wall']:7.1f} s  CPU {bound}{dk['cpu']:7.1f} s  peak RSS "
              f"{dk['peak_mb']:7.0f} MB (max of both runs)")
        print(f"ratio DetectionEval / assignaudit yaw: wall {bound}{dk['wall'] / ours['wall']:.2f}x, "
              f"CPU {bound}{dk['cpu'] / max(ours['cpu'], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
