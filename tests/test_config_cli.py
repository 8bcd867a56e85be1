"""`assignaudit config show|presets` through typer's CliRunner: output, JSON, YAML round trip, exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.config import load_config

NUS_PP = Path(__file__).parent / "data" / "pcdet" / "tools" / "cfgs" / "nuscenes_models" / "cbgs_pp_multihead.yaml"

runner = CliRunner()


def test_show_default_table():
    res = runner.invoke(app, ["config", "show"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "pcdet-nuscenes-pointpillars-multihead" in out
    assert "512 x 512 x 1" in out and "128x128/4" in out
    assert "327,680" in out  # 128 * 128 * 2 rotations * 10 classes


def test_show_json_equals_to_dict():
    res = runner.invoke(app, ["config", "show", "pcdet-kitti-pointpillars", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == load_config("pcdet-kitti-pointpillars").to_dict()


def test_show_set_before_and_after_positional():
    key = "MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold"
    for args in (["config", "show", str(NUS_PP), "--set", key, "0.7", "--json"],
                 ["config", "show", "--set", key, "0.7", str(NUS_PP), "--json"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["anchors"]["anchor_sets"][0]["matched_threshold"] == 0.7


def test_show_yaml_round_trip(tmp_path):
    res = runner.invoke(app, ["config", "show", str(NUS_PP), "--yaml"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "converted.yaml"
    path.write_text(res.stdout)
    original = load_config(NUS_PP)
    assert dataclasses.replace(load_config(path), source=original.source) == original


def test_presets():
    res = runner.invoke(app, ["config", "presets"])
    assert res.exit_code == 0
    assert [line.split()[0] for line in res.stdout.splitlines()] == [
        "mmdet3d-kitti-pointpillars-3class", "mmdet3d-nuscenes-centerpoint-voxel0075",
        "mmdet3d-nuscenes-pointpillars-secfpn", "pcdet-kitti-pointpillars", "pcdet-nuscenes-centerpoint-voxel0075",
        "pcdet-nuscenes-pointpillars-multihead"]
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in res.stdout.splitlines()}
    # family (framework) and assigner, as the README's preset table
    assert lines["pcdet-nuscenes-pointpillars-multihead"] == "(default) anchor (pcdet) OpenPCDet AxisAligned"
    assert lines["mmdet3d-nuscenes-pointpillars-secfpn"] == "anchor (mmdet3d) mmdet MaxIoU, class-agnostic"
    assert lines["mmdet3d-kitti-pointpillars-3class"] == "anchor (mmdet3d) mmdet MaxIoU, assign_per_class"
    assert lines["pcdet-nuscenes-centerpoint-voxel0075"] == "center (pcdet) OpenPCDet CenterHead"
    res = runner.invoke(app, ["config", "presets", "--json"])
    assert json.loads(res.stdout)["default"] == "pcdet-nuscenes-pointpillars-multihead"


@pytest.mark.parametrize("args,needle", [
    (["config", "show", "nope"], "unknown preset 'nope'; available presets: mmdet3d-kitti-pointpillars-3class"),
    (["config", "show", "--set", "anchors.0.matched_threshold", "high"],
     "anchors[0].matched_threshold: expected a number, got 'high'"),
    (["config", "show", "--set", "anchors.0.matched_threshold"], "--set needs a KEY and a VALUE"),
    (["config", "show", "a", "b"], "expected at most one CONFIG"),
    (["config", "show", "--frobnicate"], "unknown option '--frobnicate'"),
    (["config", "show", str(NUS_PP), "--set", "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.NAME", "ATSSTargetAssigner"],
     "'ATSSTargetAssigner' is not supported"),
])
def test_bad_input_exit_2_one_line(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in res.output


def test_malformed_yaml_cli(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("CLASS_NAMES: [car]\nMODEL: {DENSE_HEAD: [\n")
    res = runner.invoke(app, ["config", "show", str(path)])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {path}:") and "malformed YAML" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
