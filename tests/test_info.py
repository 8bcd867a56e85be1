"""`assignaudit info` counts against an independent tally through nuscenes-devkit."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.bands import Bands
from assignaudit.cli import app
from assignaudit.info import dataset_info
from assignaudit.sources import FIXTURE_DATAROOT, open_source

runner = CliRunner()


def _devkit_tally(split_scenes: set[str], edges: list[float]):
    """(per (class, band name) count, per class zero-lidar count, none categories) from the devkit alone."""
    import contextlib
    import io

    from nuscenes import NuScenes
    from nuscenes.eval.detection.utils import category_to_detection_name

    with contextlib.redirect_stdout(io.StringIO()):
        nusc = NuScenes("v1.0-mini", str(FIXTURE_DATAROOT), verbose=False)
    names = [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]:g}+"]
    per, zero, none_cats, n_samples = Counter(), Counter(), Counter(), 0
    for s in nusc.sample:
        if nusc.get("scene", s["scene_token"])["name"] not in split_scenes:
            continue
        n_samples += 1
        _, boxes, _ = nusc.get_sample_data(s["data"]["LIDAR_TOP"])
        for b in boxes:
            rec = nusc.get("sample_annotation", b.token)
            cls = category_to_detection_name(rec["category_name"]) or "(none)"
            if cls == "(none)":
                none_cats[rec["category_name"]] += 1
            d = (b.center[0] ** 2 + b.center[1] ** 2) ** 0.5
            band = names[sum(d >= e for e in edges) - 1]
            per[(cls, band)] += 1
            zero[cls] += rec["num_lidar_pts"] == 0
    return per, zero, none_cats, n_samples, names


@pytest.mark.parametrize("split,scenes,edges", [
    ("fixture_all", {"scene-0061", "scene-0553", "scene-0103", "scene-0916"}, [0, 20, 30, 40, 50]),
    ("mini_val", {"scene-0103", "scene-0916"}, [0, 10, 35]),
])
def test_counts_match_devkit(split, scenes, edges):
    per, zero, none_cats, n_samples, names = _devkit_tally(scenes, edges)
    info = dataset_info(open_source(split=split), Bands(tuple(float(e) for e in edges)))
    assert info["bands"] == names
    assert info["num_samples"] == n_samples and info["num_scenes"] == len(scenes)
    assert info["num_annotations"] == sum(per.values())
    assert list(info["classes"]) == ["car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                                     "motorcycle", "bicycle", "traffic_cone", "barrier", "(none)"]
    for cls, row in info["classes"].items():
        assert row["by_band"] == {n: per[(cls, n)] for n in names}, cls
        assert row["num_annotations"] == sum(per[(cls, n)] for n in names)
        assert row["num_zero_lidar_pts"] == zero[cls]
        assert row["num_unknown_lidar_pts"] == 0
    assert info["none_categories"] == dict(sorted(none_cats.items()))


def test_cli_json_is_parseable_and_equals_the_dict():
    res = runner.invoke(app, ["info", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == dataset_info(open_source())


def test_cli_table_output_default_fixture():
    res = runner.invoke(app, ["info", "--bands", "0,25"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    for s in ("fixture_all", "24 samples", "0-25 m", "25+ m", "traffic_cone", "construction_vehicle", "(none)",
              "static_object.bicycle_rack"):
        assert s in res.stdout, s
    assert res.stderr == ""


def test_cli_split_alias_and_table_source(tmp_path):
    res = runner.invoke(app, ["info", "--eval_set", "mini_train", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["num_samples"] == 12
    p = tmp_path / "t.csv"
    pd.DataFrame({"frame_id": ["f", "f", "g"], "class": ["car", "robot", "car"], "x": [3.0, 0.0, 45.0],
                  "y": [4.0, 25.0, 0.0], "z": 0.0, "dx": 1.0, "dy": 1.0, "dz": 1.0, "yaw": 0.0,
                  "num_lidar_pts": [0, None, 5]}).to_csv(p, index=False)
    res = runner.invoke(app, ["info", "--boxes", str(p), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["num_samples"] == 2 and info["num_annotations"] == 3
    # BEV distances 5, 25 and 45 m by hand
    assert info["classes"]["car"] == {"num_annotations": 2, "by_band": {"0-20": 1, "20-30": 0, "30-40": 0,
                                                                        "40-50": 1, "50+": 0},
                                      "num_zero_lidar_pts": 1, "num_unknown_lidar_pts": 0}
    assert info["classes"]["robot"]["by_band"]["20-30"] == 1
    assert info["classes"]["robot"]["num_unknown_lidar_pts"] == 1
    assert list(info["classes"]) == ["car", "robot"]
