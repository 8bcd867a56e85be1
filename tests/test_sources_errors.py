"""Bad datasets and box tables: `assignaudit info` exits 2 with one stderr line naming the problem, no traceback.

Broken datasets are copies of the bundled fixture in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.errors import DataError
from assignaudit.sources import FIXTURE_DATAROOT, FIXTURE_VERSION
from assignaudit.sources.nuscenes import NuScenesSource

runner = CliRunner()


def _run_fails(args: list[str], *needles: str) -> str:
    res = runner.invoke(app, ["info", *args])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output and res.stdout == ""
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture()
def root(tmp_path) -> Path:
    dst = tmp_path / "nusc"
    shutil.copytree(FIXTURE_DATAROOT, dst)
    return dst


def _tables(root: Path) -> Path:
    return root / FIXTURE_VERSION


def test_missing_dataroot(tmp_path):
    _run_fails(["--dataroot", str(tmp_path / "nope"), "--version", "v1.0-mini"], "dataroot not found", "nope")


def test_wrong_version(root):
    _run_fails(["--dataroot", str(root), "--version", "v1.0-trainval"], "'v1.0-trainval' not found",
               "found: v1.0-mini")


def test_unknown_split_lists_available(root):
    _run_fails(["--dataroot", str(root), "--split", "nope"], "unknown split 'nope'", "mini_val", "fixture_all")


def test_split_version_mismatch(root):
    _run_fails(["--dataroot", str(root), "--split", "train"], "'train' needs a version ending in 'trainval'")


def test_split_selecting_no_scene(root):
    (_tables(root) / "splits.json").write_text(json.dumps({"empty": ["scene-9999"]}))
    _run_fails(["--dataroot", str(root), "--split", "empty"], "selects none")


def test_missing_table(root):
    (_tables(root) / "ego_pose.json").unlink()
    _run_fails(["--dataroot", str(root), "--version", FIXTURE_VERSION], "ego_pose.json")


def test_malformed_table_json(root):
    p = _tables(root) / "instance.json"
    p.write_text(p.read_text()[:-40])
    _run_fails(["--dataroot", str(root)], "malformed JSON", "instance.json")


def test_malformed_splits_json(root):
    (_tables(root) / "splits.json").write_text("{not json")
    _run_fails(["--dataroot", str(root), "--split", "fixture_all"], "malformed JSON", "splits.json")


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -1.0])
def test_bad_box_size_names_the_annotation(root, bad):
    p = _tables(root) / "sample_annotation.json"
    anns = json.loads(p.read_text())
    scenes = {s["token"]: s["name"] for s in json.loads((_tables(root) / "scene.json").read_text())}
    samples = {s["token"]: scenes[s["scene_token"]] for s in json.loads((_tables(root) / "sample.json").read_text())}
    victim = next(a for a in anns if samples[a["sample_token"]] in ("scene-0103", "scene-0916"))  # mini_val
    victim["size"][1] = bad
    p.write_text(json.dumps(anns))  # json writes NaN as the (non-standard, devkit-readable) literal NaN
    _run_fails(["--dataroot", str(root), "--split", "mini_val"], victim["token"], victim["sample_token"], "size")
    # a bad box outside the requested split is not this split's problem
    res = runner.invoke(app, ["info", "--dataroot", str(root), "--split", "mini_train", "--json"])
    assert res.exit_code == 0, res.output


def test_missing_map_file(root):
    m = _tables(root) / "map.json"
    maps = json.loads(m.read_text())
    maps[0]["filename"] = "maps/missing.png"  # MapMask asserts the file exists
    m.write_text(json.dumps(maps))
    _run_fails(["--dataroot", str(root)], "map file", "missing.png", "does not exist")


def test_devkit_assertion_becomes_data_error(root):
    # An annotation pointing at a sample that does not exist: the devkit's reverse index raises KeyError.
    p = _tables(root) / "sample_annotation.json"
    anns = json.loads(p.read_text())
    anns[0]["sample_token"] = "0" * 32
    p.write_text(json.dumps(anns))
    _run_fails(["--dataroot", str(root)], "nuscenes-devkit could not load", "KeyError")
    with pytest.raises(DataError):
        NuScenesSource(root, FIXTURE_VERSION, "mini_val")


def test_dangling_log_map_link(root):
    m = _tables(root) / "map.json"
    maps = json.loads(m.read_text())
    maps[0]["log_tokens"] = maps[0]["log_tokens"][:1]  # the devkit's reverse index raises KeyError
    m.write_text(json.dumps(maps))
    _run_fails(["--dataroot", str(root)], "is in no map record's log_tokens")


def test_table_missing_required_column(tmp_path):
    p = tmp_path / "boxes.csv"
    pd.DataFrame({"frame_id": ["a"], "class": ["car"], "x": [1.0], "y": [2.0], "z": [0.0], "dx": [4.0],
                  "dy": [2.0], "yaw": [0.0]}).to_csv(p, index=False)
    _run_fails(["--boxes", str(p)], "'dz'", "boxes.csv")


def test_table_bad_size_and_missing_file(tmp_path):
    p = tmp_path / "boxes.parquet"
    pd.DataFrame({"frame_id": ["f0", "f1"], "class": ["car", "car"], "x": [1.0, 1.0], "y": [2.0, 2.0],
                  "z": [0.0, 0.0], "dx": [4.0, -4.0], "dy": [2.0, 2.0], "dz": [1.5, 1.5],
                  "yaw": [0.0, 0.0]}).to_parquet(p)
    _run_fails(["--boxes", str(p)], "row 1", "frame f1", "non-positive size")
    _run_fails(["--boxes", str(tmp_path / "absent.parquet")], "not found", "absent.parquet")
    (tmp_path / "boxes.txt").write_text("x")
    _run_fails(["--boxes", str(tmp_path / "boxes.txt")], ".parquet or .csv")


def test_boxes_with_dataroot_is_rejected(tmp_path):
    _run_fails(["--boxes", str(tmp_path / "b.csv"), "--dataroot", str(tmp_path)], "--boxes cannot be combined")


def test_bad_bands():
    _run_fails(["--bands", "0,30,20"], "strictly increasing")
