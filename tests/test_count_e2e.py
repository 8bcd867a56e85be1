"""End-to-end `assignaudit count` on the bundled nuScenes fixture."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.report import read_report

PCDET_NUSC_YAML = Path(__file__).parent / "data/pcdet/tools/cfgs/nuscenes_models/cbgs_pp_multihead.yaml"
ANCHORS_PER_CLASS = 128 * 128 * 2  # spec §11.1
runner = CliRunner()


def count(tmp: Path, *args: str):
    result = runner.invoke(app, ["count", "--quiet", "--out", str(tmp), *args])
    return result


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    res = count(out, "--replays", "2", "--seed", "3")
    assert res.exit_code == 0, res.output + str(res.exception)
    return out


def test_counts_add_up_per_class(default_run):
    summary, meta = read_report(default_run / "summary.parquet")
    frames = meta["num_frames_assigned"]
    assert frames == 24 * 2 and meta["num_frames_skipped_empty"] == 0
    total = summary[summary.band == "all"].set_index("class")
    # every anchor of every assigned frame is exactly one of positive, negative, ignored
    np.testing.assert_array_equal(total.num_pos + total.num_neg + total.num_ignore, ANCHORS_PER_CLASS * frames)
    assert (total.num_gt > 0).all()  # the fixture has every class


def test_summary_is_the_groupby_of_objects_and_frames(default_run):
    summary, _ = read_report(default_run / "summary.parquet")
    objects, _ = read_report(default_run / "objects.parquet")
    frames, _ = read_report(default_run / "frames.parquet")
    assigned = objects[objects.band.notna()]
    by_band = assigned.groupby(["class", "band"]).agg(num_gt=("num_pos", "size"), num_pos=("num_pos", "sum"),
                                                      num_forced=("num_forced", "sum"),
                                                      zero=("num_pos", lambda s: int((s == 0).sum())))
    s = summary.set_index(["class", "band"])
    for (cls, band), row in by_band.iterrows():
        assert s.loc[(cls, band), "num_gt"] == row.num_gt
        assert s.loc[(cls, band), "num_pos"] == row.num_pos
        assert s.loc[(cls, band), "num_forced"] == row.num_forced
        assert s.loc[(cls, band), "num_gt_zero_pos"] == row.zero
    f = frames.groupby("class")[["num_gt", "num_pos", "num_neg", "num_ignore"]].sum()
    a = summary[summary.band == "all"].set_index("class")
    for col in ["num_gt", "num_pos", "num_neg", "num_ignore"]:
        np.testing.assert_array_equal(f.loc[a.index, col].to_numpy(), a[col].to_numpy())
    # every zero-positive GT has a reason, every other GT has none
    assert (assigned.zero_pos_reason.notna() == (assigned.num_pos == 0)).all()
    assert set(objects.source) == {"dataset", "gt_sampling"}
    assert objects.loc[objects.source == "gt_sampling", "ann_token"].isna().all()


def test_metadata_on_every_file(default_run):
    for name in ["summary.parquet", "objects.parquet", "frames.parquet"]:
        meta = json.loads(pq.read_schema(default_run / name).metadata[b"assignaudit"])
        assert meta["kind"] == "count" and meta["seed"] == 3 and meta["replays"] == 2
        assert meta["dataset"]["version"] == "v1.0-mini" and meta["dataset"]["split"] == "fixture_all"
        assert len(meta["config_sha256"]) == 64 and meta["config"]["class_names"][0] == "car"
        assert meta["device"] == "cpu" and meta["torch_version"]


def test_same_seed_identical_parquet_different_seed_differs(default_run, tmp_path):
    res = count(tmp_path / "again", "--replays", "2", "--seed", "3")
    assert res.exit_code == 0, res.output
    for name in ["summary.parquet", "objects.parquet", "frames.parquet"]:
        a = pq.read_table(default_run / name)
        b = pq.read_table(tmp_path / "again" / name)
        assert a.equals(b), name
    res = count(tmp_path / "other", "--replays", "2", "--seed", "4", "--only-summary")
    assert res.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["manifest.json", "summary.parquet"]
    assert not pq.read_table(default_run / "summary.parquet").equals(pq.read_table(tmp_path / "other/summary.parquet"))


def test_openpcdet_yaml_gives_the_same_counts_as_the_preset(tmp_path):
    a = count(tmp_path / "preset", "--seed", "1", "--only-summary")
    b = count(tmp_path / "yaml", "--seed", "1", "--only-summary", "--config", str(PCDET_NUSC_YAML))
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    sa, ma = read_report(tmp_path / "preset/summary.parquet")
    sb, mb = read_report(tmp_path / "yaml/summary.parquet")
    pd.testing.assert_frame_equal(sa, sb)
    assert ma["config_source"] != mb["config_source"]


def test_no_augment_cones_between_anchors_get_no_positive(tmp_path):
    res = count(tmp_path, "--no-augment")
    assert res.exit_code == 0
    objects, _ = read_report(tmp_path / "objects.parquet")
    cones = objects[(objects["class"] == "traffic_cone") & (objects.dx < 0.35) & objects.band.notna()]
    # The fixture places 0.3 m cones exactly between anchor centres: by spec §11.6 they overlap no anchor.
    assert len(cones) > 0
    assert (cones.num_pos == 0).all() and (cones.zero_pos_reason == "no_overlap").all()
    assert (cones.max_iou == 0).all()
    assert (objects.source == "dataset").all()


def test_json_output_and_bands(tmp_path):
    res = count(tmp_path, "--json", "--bands", "0,30", "--max-frames", "3", "--only-summary")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert {r["band"] for r in payload["summary"]} == {"0-30", "30+", "all"}
    assert payload["meta"]["num_frames_assigned"] == 3


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--config", "no-such-preset"], "no-such-preset"),
        (["--config", "pcdet-kitti-pointpillars"], "Car"),  # config classes absent from nuScenes
        (["--replays", "0"], "--replays"),
        (["--device", "tpu"], "--device"),
        (["--bands", "0,20,10"], "band edges"),
        (["--set", "anchors.0.matched_threshold", "high"], "matched_threshold"),
        (["--frobnicate"], "--frobnicate"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    res = count(tmp_path / "out", *args)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], res.stderr
    assert "Traceback" not in res.output
    assert not (tmp_path / "out" / "summary.parquet").exists()


def test_malformed_yaml_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("assignaudit: 1\nclass_names: [car\n")
    res = count(tmp_path / "out", "--config", str(bad))
    assert res.exit_code == 2 and "bad.yaml" in res.stderr


def test_class_with_no_gt_is_reported(tmp_path):
    boxes = pd.DataFrame({
        "frame_id": ["f0", "f0"], "class": ["car", "pedestrian"], "x": [10.0, 5.0], "y": [0.0, 3.0],
        "z": [-0.5, -0.3], "dx": [4.5, 0.7], "dy": [1.9, 0.7], "dz": [1.6, 1.7], "yaw": [0.1, 0.0],
        "num_lidar_pts": [50, 20],
    })
    # a table whose vocabulary has car and pedestrian, filtered so that no pedestrian survives
    boxes.loc[1, "num_lidar_pts"] = 0
    path = tmp_path / "boxes.parquet"
    boxes.to_parquet(path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "assignaudit: 1\nclass_names: [car, pedestrian]\npoint_cloud_range: [-51.2, -51.2, -5, 51.2, 51.2, 3]\n"
        "voxel_size: [0.2, 0.2, 8]\nanchors:\n"
        "  - {class_name: car, sizes: [[4.63, 1.97, 1.74]], rotations: [0, 1.57], bottom_heights: [-0.95],"
        " matched_threshold: 0.6, unmatched_threshold: 0.45, feature_map_stride: 4}\n"
        "  - {class_name: pedestrian, sizes: [[0.73, 0.67, 1.77]], rotations: [0, 1.57], bottom_heights: [-0.935],"
        " matched_threshold: 0.6, unmatched_threshold: 0.4, feature_map_stride: 4}\n"
    )
    res = count(tmp_path / "out", "--boxes", str(path), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "pedestrian (no GT)" in res.stdout and "no GT in this data: pedestrian" in res.stdout
    summary, _ = read_report(tmp_path / "out/summary.parquet")
    ped = summary[(summary["class"] == "pedestrian") & (summary.band == "all")].iloc[0]
    assert ped.num_gt == 0 and ped.num_pos == 0 and ped.num_neg == ANCHORS_PER_CLASS
    car = summary[(summary["class"] == "car") & (summary.band == "all")].iloc[0]
    assert car.num_gt == 1 and car.num_pos >= 1
