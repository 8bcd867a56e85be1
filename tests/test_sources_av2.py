"""Argoverse 2 annotations (``--av2-root``): frames, boxes and headings against the generator's independent
(scipy) computation, ``info`` against a pandas tally, bad input as one ``error:`` line with exit 2."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.conventions import av2_yaw
from assignaudit.sources.av2 import AV2Source

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _generator():
    spec = importlib.util.spec_from_file_location("make_av2_fixture", REPO / "fixtures" / "make_av2_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def av2(tmp_path_factory):
    root = tmp_path_factory.mktemp("av2")
    return root, _generator().make_av2_fixture(root)


@pytest.mark.parametrize("split", ["train", "val"])
def test_frames_match_the_generator(av2, split):
    root, manifest = av2
    src = AV2Source(root, split)
    expected = [(lg["log_id"], fr) for lg in manifest[split] for fr in lg["frames"]]
    assert src.sample_tokens() == [f"{log}/{fr['timestamp_ns']}" for log, fr in expected]
    assert src.info.kind == "av2" and src.info.num_scenes == len(manifest[split]) and len(src) == len(expected)
    empty = 0
    for f, (log, fr) in zip(src.frames(), expected):
        rows = fr["rows"]
        assert f.scene_name == log and f.extra["timestamp_ns"] == fr["timestamp_ns"]
        np.testing.assert_allclose(f.boxes_lidar[:, :7], fr["boxes"][:, :7], rtol=0, atol=1e-12)
        assert np.isnan(f.boxes_lidar[:, 7:]).all()
        assert f.category.tolist() == rows["category"].tolist() == f.detection_class.tolist()
        assert f.instance_token.tolist() == rows["track_uuid"].tolist()
        assert f.num_lidar_pts.tolist() == rows["num_interior_pts"].tolist()
        assert f.difficulty is None and f.global_SE3_lidar is None
        assert (f.extra["av2_lidar_feather"] is not None) == fr["lidar"]
        empty += len(f) == 0
    assert empty == sum(lg["frames"][0]["lidar"] for lg in manifest[split])  # the un-annotated sweep


@settings(max_examples=60, deadline=None)
@given(st.floats(-math.pi, math.pi), st.floats(-0.3, 0.3), st.floats(-0.3, 0.3))
def test_heading_is_avs_euler_z(yaw, pitch, roll):
    """av2_yaw == scipy's extrinsic-xyz z angle (av2's mat_to_xyz), for tilted cuboids too."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [roll, pitch, yaw])
    q = rot.as_quat()[[3, 0, 1, 2]]
    ref = rot.as_euler("xyz")[2]
    d = (av2_yaw(q[None])[0] - ref + math.pi) % (2 * math.pi) - math.pi
    assert abs(d) < 1e-9


def test_info_cli_on_av2(av2):
    root, manifest = av2
    res = runner.invoke(app, ["info", "--av2-root", str(root), "--split", "val", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = pd.concat([fr["rows"] for lg in manifest["val"] for fr in lg["frames"]])
    assert out["source"]["kind"] == "av2" and out["num_annotations"] == len(rows)
    assert out["num_samples"] == sum(len(lg["frames"]) for lg in manifest["val"])
    for cat, grp in rows.groupby("category"):
        c = out["classes"][cat]
        dist = np.hypot(grp["tx_m"], grp["ty_m"])
        assert c["num_annotations"] == len(grp)
        assert c["num_zero_lidar_pts"] == int((grp["num_interior_pts"] == 0).sum())
        assert c["by_band"]["0-20"] == int((dist < 20).sum()) and c["by_band"]["50+"] == int((dist >= 50).sum())


def test_count_runs_on_av2_with_a_class_map(av2, tmp_path):
    root, _ = av2
    res = runner.invoke(app, ["count", "--config", "pcdet-kitti-pointpillars", "--av2-root", str(root),
                              "--class-map", "REGULAR_VEHICLE=Car,PEDESTRIAN=Pedestrian,BICYCLIST=Cyclist",
                              "--no-augment", "--only-summary", "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = pd.read_parquet(tmp_path / "o" / "summary.parquet")
    assert int(summary[(summary["class"] == "Car") & (summary["band"] == "all")]["num_gt"].iloc[0]) > 0


def test_optional_columns_may_be_absent(av2, tmp_path):
    root = _copy(av2, tmp_path)
    path = next((root / "val").glob("*/annotations.feather"))
    t = feather.read_table(path)
    feather.write_feather(t.drop_columns(["num_interior_pts", "track_uuid"]), path)
    f = next(AV2Source(root, "val").frames())
    assert (f.num_lidar_pts == -1).all() and all(x is None for x in f.instance_token)


# ---------------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------------


def _copy(av2, tmp_path) -> Path:
    dst = tmp_path / "av2"
    shutil.copytree(av2[0], dst)
    return dst


def _fails(args, tmp_path, *needles) -> str:
    out = tmp_path / "out"
    res = runner.invoke(app, ["count", "--config", "pcdet-kitti-pointpillars", "--out", str(out), "--quiet", *args])
    assert res.exit_code == 2, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output and not out.exists()
    for n in needles:
        assert n in err, (n, err)
    return err


def _rewrite(path: Path, fn) -> None:
    df = feather.read_table(path).to_pandas()
    feather.write_feather(pa.Table.from_pandas(fn(df), preserve_index=False), path)


def test_bad_missing_required_column(av2, tmp_path):
    root = _copy(av2, tmp_path)
    path = next((root / "val").glob("*/annotations.feather"))
    _rewrite(path, lambda df: df.drop(columns=["qz"]))
    _fails(["--av2-root", str(root), "--split", "val"], tmp_path, "annotations.feather", "lack required column 'qz'")


def test_bad_non_unit_quaternion(av2, tmp_path):
    root = _copy(av2, tmp_path)
    path = next((root / "val").glob("*/annotations.feather"))

    def scale(df):
        df.loc[4, ["qw", "qx", "qy", "qz"]] *= 2
        return df

    _rewrite(path, scale)
    _fails(["--av2-root", str(root), "--split", "val"], tmp_path, "row 4", "not a unit quaternion")


def test_bad_string_in_a_number_column(av2, tmp_path):
    root = _copy(av2, tmp_path)
    path = next((root / "val").glob("*/annotations.feather"))

    def corrupt(df):
        df["length_m"] = df["length_m"].astype(str)  # a string column (as a CSV round trip would leave it)
        return df

    _rewrite(path, corrupt)
    _fails(["--av2-root", str(root), "--split", "val"], tmp_path, "row 0", "'length_m' must be numeric")


def test_bad_zero_size_and_corrupt_file(av2, tmp_path):
    root = _copy(av2, tmp_path)
    path = next((root / "val").glob("*/annotations.feather"))
    _rewrite(path, lambda df: df.assign(width_m=np.where(df.index == 1, 0.0, df["width_m"])))
    _fails(["--av2-root", str(root), "--split", "val"], tmp_path, "row 1", "size must be > 0")
    path.write_bytes(b"ARROW1\x00\x00garbage")
    _fails(["--av2-root", str(root), "--split", "val"], tmp_path, "cannot read AV2 annotations")


def test_bad_split_and_root(av2, tmp_path):
    root = av2[0]
    _fails(["--av2-root", str(root), "--split", "test"], tmp_path, "'test' has no annotations")
    _fails(["--av2-root", str(root), "--split", "valid"], tmp_path, "valid not found", "found: train, val")
    _fails(["--av2-root", str(tmp_path / "nope")], tmp_path, "AV2 root not found")
    (tmp_path / "empty" / "train" / "log").mkdir(parents=True)
    _fails(["--av2-root", str(tmp_path / "empty")], tmp_path, "no <log_id>/annotations.feather")
