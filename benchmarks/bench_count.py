"""Benchmark: end-to-end `assignaudit count` on a nuScenes-format dataset, and memory vs number of frames.

The bundled fixture (24 samples) is replicated K times with fresh tokens into a temporary nuScenes-format dataroot
(tables only: `count` reads no point clouds), so the real path runs: nuscenes-devkit loading, vectorised frame
conversion, augmentation replay with gt_sampling, assignment (default preset, 327,680 anchors), streamed tallies and
the three Parquet reports.

Printed in one run: frames/s end to end for two dataset sizes, and the pipeline's peak memory above the memory held
after the devkit loaded its tables (each size in a fresh subprocess), so flat memory shows as equal numbers.

``--family center`` runs the same on the CenterPoint voxel0075 heatmap layout (180 x 180, 6 heads, 10 classes;
spec §11.2) instead of the anchor preset, ``--family query`` a 900-query head without a dump (K per frame).

Usage: ``python benchmarks/bench_count.py [--copies 10 40] [--threads 1] [--family anchor|center|query]``. Timings
on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Copied tables and the token-valued fields in them; category, attribute, sensor, visibility, calibrated_sensor and
# map are shared by every copy.
_COPIED = ("log", "scene", "sample", "sample_data", "ego_pose", "sample_annotation", "instance")
_TOKEN_KEYS = {"token", "prev", "next", "log_token", "scene_token", "sample_token", "ego_pose_token",
               "first_sample_token", "last_sample_token", "instance_token", "first_annotation_token",
               "last_annotation_token"}


def _remap(token: str, copy: int) -> str:
    if not token:
        return token
    return hashlib.md5(f"{token}/{copy}".encode()).hexdigest()


def replicate_fixture(copies: int, out: Path) -> tuple[Path, str, str]:
    from assignaudit.sources.open import FIXTURE_DATAROOT, FIXTURE_VERSION

    src = Path(FIXTURE_DATAROOT) / FIXTURE_VERSION
    dst = out / FIXTURE_VERSION
    dst.mkdir(parents=True)
    for item in Path(FIXTURE_DATAROOT).iterdir():
        if item.name != FIXTURE_VERSION and item.is_dir() and item.name == "maps":
            shutil.copytree(item, out / item.name)
    tables = {p.stem: json.loads(p.read_text()) for p in src.glob("*.json") if p.stem != "splits"}
    out_tables = {k: v for k, v in tables.items() if k not in _COPIED}
    for name in _COPIED:
        rows = []
        for c in range(copies):
            for rec in tables[name]:
                new = dict(rec)
                for key in _TOKEN_KEYS & rec.keys():
                    new[key] = _remap(rec[key], c)
                if name == "scene":
                    new["name"] = f"{rec['name']}-c{c}"
                rows.append(new)
        out_tables[name] = rows
    log_tokens = [r["token"] for r in out_tables["log"]]
    for m in out_tables["map"]:
        m["log_tokens"] = log_tokens
    for name, rows in out_tables.items():
        (dst / f"{name}.json").write_text(json.dumps(rows))
    (dst / "splits.json").write_text(json.dumps({"bench": [s["name"] for s in out_tables["scene"]]}))
    return out, FIXTURE_VERSION, "bench"


_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
from assignaudit.config import load_config
from assignaudit.count import CountOptions, run_count
from assignaudit.sources.open import open_source
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
t0 = time.perf_counter()
source = open_source(dataroot=sys.argv[1], version=sys.argv[2], split=sys.argv[3])
cfg = load_config()
family = sys.argv[6]
if family == "center":
    import dataclasses
    from assignaudit.assign.heatmap import HeatmapParams
    heads = (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",), ("motorcycle", "bicycle"),
             ("pedestrian", "traffic_cone"))
    pcr = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
    hp = HeatmapParams(pcr, (0.075, 0.075, 0.2), 8, heads, cfg.class_names)
    cfg = dataclasses.replace(cfg, head="center", heatmap=hp, anchors=None, assigner=None, point_cloud_range=pcr)
elif family == "query":
    import dataclasses
    from assignaudit.assign.params import QueryParams
    cfg = dataclasses.replace(cfg, head="query", query=QueryParams(), anchors=None, assigner=None)
t_load = time.perf_counter() - t0
rss_after_load = rss_mb()
t1 = time.perf_counter()
res = run_count(cfg, source, CountOptions(seed=0), sys.argv[5])
t_run = time.perf_counter() - t1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"frames": res.num_frames_assigned + res.num_frames_skipped_empty, "t_load": t_load,
                  "t_run": t_run, "rss_after_load_mb": rss_after_load, "peak_mb": peak}))
"""


def run_child(dataroot: Path, version: str, split: str, threads: int, out: Path, family: str = "anchor") -> dict:
    env = dict(os.environ, MALLOC_ARENA_MAX="2")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(dataroot), version, split, str(threads), str(out),
                           family],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[10, 40], help="fixture copies (24 frames each)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--family", default="anchor", choices=["anchor", "center", "query"],
                    help="target family: the default anchor preset, CenterPoint voxel0075 heatmaps, or 900 queries")
    args = ap.parse_args()
    layout = {"anchor": "default preset (327,680 anchors)", "center": "CenterPoint voxel0075 heatmaps (10 x 180 x 180)",
              "query": "900 queries, no dump"}[args.family]
    print(f"end-to-end count, {layout}, gt_sampling on, torch threads {args.threads}")
    print(f"{'frames':>7} {'load s':>7} {'count s':>8} {'frames/s':>9} {'RSS after load MB':>18} "
          f"{'peak MB':>8} {'pipeline MB':>12}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for copies in args.copies:
            root, version, split = replicate_fixture(copies, Path(tmp) / f"nusc{copies}")
            r = run_child(root, version, split, args.threads, Path(tmp) / f"out{copies}", args.family)
            rows.append(r)
            print(f"{r['frames']:>7} {r['t_load']:>7.2f} {r['t_run']:>8.2f} {r['frames'] / r['t_run']:>9.1f} "
                  f"{r['rss_after_load_mb']:>18.0f} {r['peak_mb']:>8.0f} {r['peak_mb'] - r['rss_after_load_mb']:>12.0f}")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"frames x{b['frames'] / a['frames']:.1f}: pipeline memory x"
              f"{(b['peak_mb'] - b['rss_after_load_mb']) / max(a['peak_mb'] - a['rss_after_load_mb'], 1):.2f} "
              f"(flat = about 1); throughput target >= 150 frames/s")


if __name__ == "__main__":
    main()
