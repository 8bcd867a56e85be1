"""The same input rules in every command (count, info, yaw) and source (nuScenes, box table): a GT quaternion of norm
2, a negative point count, a velocity column of strings are refused with one `error:` line, exit 2, no report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.sources import FIXTURE_DATAROOT, FIXTURE_VERSION

runner = CliRunner()


def _fails(args: list[str], *needles: str) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture()
def nusc(tmp_path) -> Path:
    dst = tmp_path / "nusc"
    shutil.copytree(FIXTURE_DATAROOT, dst)
    return dst


def _edit_first_annotation(root: Path, **fields) -> str:
    p = root / FIXTURE_VERSION / "sample_annotation.json"
    anns = json.loads(p.read_text())
    anns[0].update(fields)
    p.write_text(json.dumps(anns))
    return anns[0]["token"]


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> Path:
    """Any valid prediction table: yaw reads it before the GT, so the GT's error is the one reported."""
    p = tmp_path_factory.mktemp("pred") / "pred.csv"
    pd.DataFrame({"frame_id": ["f0"], "class": ["car"], "score": [0.5], "x": [1.0], "y": [0.0], "z": [0.0],
                  "dx": [4.0], "dy": [2.0], "dz": [1.5], "yaw": [0.0]}).to_csv(p, index=False)
    return p


def _run_all(source: list[str], out: Path, predictions: Path, *needles: str) -> None:
    for args in (["info", *source],
                 ["count", "--quiet", "--no-augment", "--out", str(out), *source],
                 ["yaw", "--quiet", "--out", str(out), "--predictions", str(predictions), *source]):
        _fails(args, *needles)
        assert not out.exists(), args  # nothing written


def test_nuscenes_quaternion_of_norm_2_is_refused(nusc, tmp_path, predictions):
    p = nusc / FIXTURE_VERSION / "sample_annotation.json"
    rot = json.loads(p.read_text())[0]["rotation"]
    token = _edit_first_annotation(nusc, rotation=[2 * v for v in rot])
    _run_all(["--dataroot", str(nusc), "--split", "fixture_all"], tmp_path / "out", predictions,
             token, "not a unit quaternion", "|q| = 2")


def test_nuscenes_negative_num_lidar_pts_is_refused(nusc, tmp_path, predictions):
    token = _edit_first_annotation(nusc, num_lidar_pts=-3)
    _run_all(["--dataroot", str(nusc), "--split", "fixture_all"], tmp_path / "out", predictions,
             token, "num_lidar_pts = -3")


def test_nuscenes_fractional_num_lidar_pts_is_refused(nusc, tmp_path, predictions):
    token = _edit_first_annotation(nusc, num_lidar_pts=2.5)
    _fails(["info", "--dataroot", str(nusc), "--split", "fixture_all"], token, "must be an integer")


def _table(tmp_path: Path, **cols) -> Path:
    base = {"frame_id": ["f0", "f0", "f1"], "class": ["car"] * 3, "x": [1.0, 5.0, 9.0], "y": [0.0] * 3,
            "z": [0.0] * 3, "dx": [4.0] * 3, "dy": [2.0] * 3, "dz": [1.5] * 3, "yaw": [0.0] * 3}
    base.update(cols)
    p = tmp_path / "boxes.csv"
    pd.DataFrame(base).to_csv(p, index=False)
    return p


def test_box_table_negative_num_lidar_pts_is_refused(tmp_path, predictions):
    p = _table(tmp_path, num_lidar_pts=[3, -2, 5])
    _run_all(["--boxes", str(p)], tmp_path / "out", predictions, "row 1", "num_lidar_pts = -2")


def test_box_table_velocity_of_strings_is_refused(tmp_path, predictions):
    p = _table(tmp_path, vx=["fast", "0.5", "1"])
    _run_all(["--boxes", str(p)], tmp_path / "out", predictions, "'vx'", "must be numeric", "'fast'")


def test_box_table_infinite_velocity_is_refused(tmp_path):
    p = _table(tmp_path, vy=[0.0, float("inf"), 1.0])
    _fails(["info", "--boxes", str(p)], "row 1", "infinite velocity")


def test_box_table_empty_counts_and_velocities_stay_unknown(tmp_path):
    p = _table(tmp_path, num_lidar_pts=[3, None, 5], vx=[None, 0.5, 1.0])
    from assignaudit.sources.table import TableSource

    src = TableSource(p)
    f0 = src.frame(0)
    assert f0.num_lidar_pts.tolist() == [3, -1]
    assert pd.isna(f0.boxes_lidar[0, 7]) and f0.boxes_lidar[1, 7] == 0.5
