"""Cross-feature checks from the post-merge QA pass: features made in parallel (info / raw sources, --db-infos,
--workers, show, report) used together, as a user runs them from the CLI."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _report_bytes import report_bytes
from assignaudit.cli import app

runner = CliRunner()
DATA = Path(__file__).parent / "data"
INFOS = DATA / "infos"
PCDET_NUSC = DATA / "pcdet/tools/cfgs/nuscenes_models/cbgs_pp_multihead.yaml"
PCDET_KITTI = DATA / "pcdet/tools/cfgs/kitti_models/pointpillar.yaml"
NUSC_DB = INFOS / "pcdet_nuscenes_dbinfos_train.pkl"


def test_show_draws_from_the_db_infos_count_uses(tmp_path):
    # count --db-infos pastes objects from the user's file; show had no --db-infos, so it could not replay that frame
    from assignaudit.cli.app import SourceArgs
    from assignaudit.config import load_config
    from assignaudit.frame_detail import FrameQuery, find_frame_detail

    png = tmp_path / "s.png"
    src = ["--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl")]
    res = runner.invoke(app, ["show", *src, "--db-infos", str(NUSC_DB), "--sample", "0", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"

    res = runner.invoke(app, ["count", "--quiet", *src, "--db-infos", str(NUSC_DB), "--max-frames", "3",
                              "--out", str(tmp_path / "count")])
    assert res.exit_code == 0, res.output
    cfg = load_config(str(PCDET_NUSC))
    source = SourceArgs(infos=(INFOS / "pcdet_nuscenes_infos_train.pkl",)).open(cfg)
    detail = find_frame_detail(cfg, source, FrameQuery(sample="1"), max_frames=3, db_infos=(NUSC_DB,))
    pasted = detail.aug.source != "dataset"
    # the fixture's dbinfos count 3 * num_lidar_pts + 1 points per object: pasted rows come from the file
    assert pasted.any() and (detail.aug.num_lidar_pts[pasted] % 3 == 1).all()
    objects = pd.read_parquet(tmp_path / "count/objects.parquet")
    mine = objects[(objects.sample_token == detail.aug.sample_token) & (objects.replay == 0)].dropna(subset=["band"])
    assert sorted(mine.num_lidar_pts[mine.source != "dataset"]) == sorted(detail.aug.num_lidar_pts[pasted])
    assert int(mine.num_pos.sum()) == int(detail.tally.gt_num_pos.sum())


@pytest.fixture(scope="module")
def raw_roots(tmp_path_factory):
    import importlib.util

    roots = {}
    for name in ("make_kitti_fixture", "make_av2_fixture"):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "fixtures" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        root = tmp_path_factory.mktemp(name)
        getattr(mod, name)(root)
        roots[name] = root
    return roots


FCOS_YAML = """
name: fcos-bev
head: fcos
class_names: [car, truck, construction_vehicle, bus, trailer, barrier, motorcycle, bicycle, pedestrian, traffic_cone]
point_cloud_range: [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size: [0.2, 0.2, 8.0]
fcos: {variant: mmdet, strides: [4, 8, 16], regress_ranges: [[-1, 4.0], [4.0, 8.0], [8.0, null]],
       center_sampling: true}
"""


@pytest.mark.parametrize("kind", ["infos+db", "kitti-root", "av2-root", "fcos"])
def test_workers_2_equals_workers_1_on_every_source_kind(tmp_path, monkeypatch, raw_roots, kind):
    import assignaudit.count as count_mod
    import assignaudit.parallel as parallel

    # two-frame shards so that these small datasets really are split over the two workers
    monkeypatch.setattr(count_mod, "CountOptions", functools.partial(count_mod.CountOptions, shard_frames=2))
    calls = []
    real = parallel.count_sharded
    monkeypatch.setattr(parallel, "count_sharded", lambda *a, **k: calls.append(k["workers"]) or real(*a, **k))
    args = {"infos+db": ["--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl"),
                         "--db-infos", str(NUSC_DB), "--max-frames", "6"],
            "kitti-root": ["--config", str(PCDET_KITTI), "--kitti-root", str(raw_roots["make_kitti_fixture"]),
                           "--split", "train", "--replays", "2"],
            "av2-root": ["--config", "pcdet-kitti-pointpillars", "--av2-root", str(raw_roots["make_av2_fixture"]),
                         "--split", "train", "--class-map", "REGULAR_VEHICLE=Car,PEDESTRIAN=Pedestrian,BICYCLIST=Cyclist"],
            # the fcos head's tally had no merge: --workers > 1 (the default on several cores) crashed
            "fcos": ["--config", str(tmp_path / "fcos.yaml"), "--max-frames", "5"]}
    (tmp_path / "fcos.yaml").write_text(FCOS_YAML)
    outs = {}
    for w in ("1", "2"):
        res = runner.invoke(app, ["count", "--quiet", "--workers", w, "--out", str(tmp_path / w), *args[kind]])
        assert res.exit_code == 0, res.output
        outs[w] = report_bytes(tmp_path / w)
    assert calls == [2]
    assert outs["1"] == outs["2"]


def test_report_shows_the_positive_iou_distribution_of_a_quality_run(tmp_path):
    import re

    res = runner.invoke(app, ["count", "--quiet", "--quality", "--max-frames", "4", "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "q"), "--out", str(tmp_path / "q.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "q.html").read_text()
    iou = page[page.index('<section id="iou">'):page.index('<section id="zero-pos">')]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", iou)]
    table = {c[0]: c for c in cells if c}
    summary = pd.read_parquet(tmp_path / "q/summary.parquet")
    every = summary[(summary.band == "all") & (summary.num_pos_quality > 0)]
    assert len(every) >= 5 and set(every["class"]) == set(table)
    for _, row in every.iterrows():
        mine = table[row["class"]]
        assert int(mine[1]) == row.num_pos_quality
        # p50 from the 0.001-wide histogram bins vs the exact median of the summary
        assert abs(float(mine[3]) - row.iou_bev_p50) <= 0.0011, row["class"]
        assert float(mine[2]) <= float(mine[3]) <= float(mine[4])
    res = runner.invoke(app, ["count", "--quiet", "--only-summary", "--max-frames", "2", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "p"), "--out", str(tmp_path / "p.html")])
    assert res.exit_code == 0 and "run count --quality" in (tmp_path / "p.html").read_text()


@pytest.mark.parametrize("cmd", [["count", "--only-summary"], ["info"]])
def test_cache_dir_that_is_a_file_is_a_usage_error(tmp_path, cmd):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad, needle in ((afile, "is not a directory"), (afile / "sub", f"lies under {afile}")):
        extra = ["--out", str(tmp_path / "out")] if cmd[0] == "count" else []
        res = runner.invoke(app, [*cmd, "--cache-dir", str(bad), *extra])
        assert res.exit_code == 2, res.output
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0] and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
    nested = tmp_path / "new" / "cache"  # a directory that does not exist yet is created
    res = runner.invoke(app, [*cmd, "--cache-dir", str(nested), *(["--out", str(tmp_path / "o2")] if cmd[0] == "count"
                                                                  else [])])
    assert res.exit_code == 0, res.output
    assert [p.name.split("-")[0] for p in nested.iterdir()] == ["nuscenes"]


@pytest.mark.parametrize("source", [["--infos", str(INFOS / "pcdet_kitti_infos_train.pkl")],
                                    ["--kitti-root", "/nonexistent", "--split", "val"]])
def test_yaw_without_predictions_names_the_source_flags(tmp_path, source):
    res = runner.invoke(app, ["yaw", *source, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--predictions is required" in errors[0] and source[0] in errors[0]


def test_info_names_boxes_without_a_category(tmp_path):
    import json

    res = runner.invoke(app, ["info", "--json", "--infos", str(INFOS / "mmdet3d_nuscenes_infos_train.pkl")])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    # mmdet3d v2 instances with bbox_label_3d -1 have no category: listed as "(unnamed)", not "None"
    assert "None" not in info["none_categories"] and info["none_categories"]["(unnamed)"] == \
        info["classes"]["(none)"]["num_annotations"] > 0


def test_count_reruns_into_a_folder_that_report_and_gate_wrote_into(tmp_path):
    # README flow: count -> report assignaudit-out/ (writes report.html there) -> count again was refused
    out = tmp_path / "assignaudit-out"
    base = ["count", "--quiet", "--only-summary", "--max-frames", "2", "--out", str(out)]
    assert runner.invoke(app, base).exit_code == 0
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0 and (out / "report.html").is_file()
    res = runner.invoke(app, ["gate", str(out), str(out), "--json"])
    assert res.exit_code == 0
    (out / "gate.json").write_text(res.stdout)
    res = runner.invoke(app, ["show", "--sample", "0", "--max-frames", "2", "--out", str(out / "show.png")])
    assert res.exit_code == 0, res.output  # show's default output is assignaudit-out/show.png
    res = runner.invoke(app, [*base, "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "summary.parquet"]  # stale pages dropped
    (out / "notes.txt").write_text("mine")  # a file no command makes is still refused, never replaced
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and "notes.txt" in res.output and (out / "notes.txt").read_text() == "mine"


def test_report_on_a_compare_config_folder_says_what_to_run(tmp_path):
    res = runner.invoke(app, ["count", "--quiet", "--max-frames", "2", "--compare-config",
                              "mmdet3d-nuscenes-pointpillars-secfpn", "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "cmp")])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "compare.parquet" in errors[0] and "report --compare A B" in errors[0]
