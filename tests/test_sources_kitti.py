"""Raw KITTI (``--kitti-root``): the calibration path against boxes worked out by hand, the fixture against its
generator's own (independent, float64) conversion, difficulty and points-per-box against the rules as written
upstream, and bad input (one ``error:`` line, exit 2, nothing written)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.conventions import kitti_camera_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources.kitti import KittiSource, parse_kitti_objects, read_calib
from assignaudit.sources.points import count_points_in_boxes, points_in_boxes_mask

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "fixtures" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    manifest = _generator("make_kitti_fixture").make_kitti_fixture(root)
    return root, manifest


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(values, dtype=np.float64).reshape(-1))


def _write_dataset(root: Path, labels: dict[str, str], r0, v2c, split: str = "train") -> Path:
    for sub in ("ImageSets", "training/label_2", "training/calib"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / f"{split}.txt").write_text("".join(f"{k}\n" for k in labels))
    for k, text in labels.items():
        (root / "training" / "label_2" / f"{k}.txt").write_text(text)
        (root / "training" / "calib" / f"{k}.txt").write_text(
            f"P2: {_fmt(np.eye(3, 4))}\nR0_rect: {_fmt(r0)}\nTr_velo_to_cam: {_fmt(v2c)}\n")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# calibration path, by hand
# ---------------------------------------------------------------------------------------------------------------------

CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"


def test_axis_permutation_calibration_by_hand(tmp_path):
    """R0 = I, Tr_velo_to_cam = the bare axis swap plus a translation t:
    cam = (-y, -z, x) + t  =>  lidar = (z_c - t_z, -(x_c - t_x), -(y_c - t_y))."""
    t = (0.1, -0.2, -0.3)
    v2c = np.array([[0, -1, 0, t[0]], [0, 0, -1, t[1]], [1, 0, 0, t[2]]], dtype=np.float64)
    root = _write_dataset(tmp_path, {"000007": CAR}, np.eye(3), v2c)
    f = next(KittiSource(root).frames())
    x_c, y_c, z_c = -0.65, 1.71, 46.70
    h, w, l, ry = 1.65, 1.67, 3.64, -1.59
    expected = [z_c - t[2], -(x_c - t[0]), -(y_c - t[1]) + h / 2, l, w, h, -(ry + math.pi / 2)]
    # = [47.0, 0.75, -1.91 + 0.825, 3.64, 1.67, 1.65, 0.0192...]
    assert expected[:3] == pytest.approx([47.0, 0.75, -1.085])
    np.testing.assert_allclose(f.boxes_lidar[0, :7], expected, atol=2e-5)
    assert np.isnan(f.boxes_lidar[0, 7:]).all()
    assert f.detection_class.tolist() == ["Car"] and f.category.tolist() == ["Car"]
    assert f.difficulty.tolist() == [1]  # 2D height 200.12 - 173.33 + 1 = 27.79 px: Moderate, not Easy
    assert f.num_lidar_pts.tolist() == [-1] and f.lidar_path is None  # no velodyne/


def test_rectification_enters_the_centre_not_the_heading(tmp_path):
    """R0_rect = rotation about the camera x axis by a: rect = R0 cam, so cam = R0^T rect =
    (x, c*y + s*z, -s*y + c*z); then the axis swap (no translation). The heading stays -(ry + pi/2)."""
    a = 0.01
    c, s = math.cos(a), math.sin(a)
    r0 = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    v2c = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]], dtype=np.float64)
    root = _write_dataset(tmp_path, {"000001": CAR}, r0, v2c)
    f = next(KittiSource(root).frames())
    # r0 is written with 7 significant digits: use the numbers as the file holds them
    c, s = float(f"{c:.6e}"), float(f"{s:.6e}")
    x, y, z = -0.65, 1.71, 46.70
    cam = (x, c * y + s * z, -s * y + c * z)
    expected = [cam[2], -cam[0], -cam[1] + 1.65 / 2, 3.64, 1.67, 1.65, -(-1.59 + math.pi / 2)]
    np.testing.assert_allclose(f.boxes_lidar[0, :7], expected, atol=3e-5)


def test_yaw_is_wrapped_and_dontcare_dropped_by_name(tmp_path):
    """rotation_y = -pi/2 - 3 gives heading 3 - ... wrapped; a DontCare line in the middle is dropped."""
    text = ("Pedestrian 0.00 0 0.0 100 100 150 200 1.80 0.60 0.80 1.00 1.50 10.00 2.00\n"
            "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
            "Cyclist 0.00 0 0.0 100 100 150 200 1.70 0.60 1.80 -2.00 1.50 20.00 -3.10\n")
    v2c = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]], dtype=np.float64)
    f = next(KittiSource(_write_dataset(tmp_path, {"000000": text}, np.eye(3), v2c)).frames())
    assert f.detection_class.tolist() == ["Pedestrian", "Cyclist"]
    # heading -(2 + pi/2) = -3.5708 -> +2.7124; -(-3.1 + pi/2) = 1.5292
    np.testing.assert_allclose(f.boxes_lidar[:, 6], [-(2 + math.pi / 2) + 2 * math.pi, 3.1 - math.pi / 2],
                               atol=1e-12)
    assert np.all((f.boxes_lidar[:, 6] >= -math.pi) & (f.boxes_lidar[:, 6] < math.pi))
    assert f.ann_token.tolist() == ["000000_0", "000000_1"]


@settings(max_examples=40, deadline=None)
@given(st.floats(-20, 20), st.floats(-2, 2), st.floats(2, 70), st.floats(0.3, 8), st.floats(0.3, 3),
       st.floats(0.3, 3), st.floats(-math.pi, math.pi), st.tuples(*[st.floats(-1, 1)] * 3))
def test_box_corners_equal_the_kitti_camera_corners(x, y, z, l, h, w, ry, t):
    """Object3d.generate_corners3d (KITTI's own corner definition: R(ry) about y, y from 0 up to -h) mapped to the
    LiDAR frame in float64 gives the same 8 points as the canonical box's corners (R0 = I, V2C = axis swap + t)."""
    v2c = np.array([[0, -1, 0, t[0]], [0, 0, -1, t[1]], [1, 0, 0, t[2]]], dtype=np.float64)
    box = kitti_camera_to_canonical([[x, y, z]], [[l, h, w]], [ry], np.eye(3), v2c)[0]
    xc = [l / 2, l / 2, -l / 2, -l / 2, l / 2, l / 2, -l / 2, -l / 2]
    yc = [0, 0, 0, 0, -h, -h, -h, -h]
    zc = [w / 2, -w / 2, -w / 2, w / 2, w / 2, -w / 2, -w / 2, w / 2]
    rot = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    cam = (rot @ np.array([xc, yc, zc])).T + [np.float32(x), np.float32(y), np.float32(z)]
    lidar = (cam - np.asarray(t)) @ v2c[:, :3]  # inverse of the axis swap (orthonormal)
    cx, cy, cz, dx, dy, dz, yaw = box[:7]
    local = np.array([[sx * dx / 2, sy * dy / 2, sz * dz / 2] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)])
    c, s = math.cos(yaw), math.sin(yaw)
    ours = local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + [cx, cy, cz]
    d = np.linalg.norm(lidar[:, None, :] - ours[None, :, :], axis=2)
    assert d.min(axis=1).max() < 1e-4 * max(1.0, z)


# ---------------------------------------------------------------------------------------------------------------------
# difficulty and points per box, rules as written upstream
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trunc,occ,y1,y2,level", [
    (0.0, 0, 100.0, 139.0, 0),     # height 40: Easy
    (0.0, 0, 100.0, 138.99, 1),    # 39.99: Moderate
    (0.16, 0, 100.0, 200.0, 1),    # truncation above Easy
    (0.3, 1, 100.0, 124.0, 1),     # 25 px, 0.3, 1: Moderate
    (0.31, 1, 100.0, 124.0, 2),
    (0.5, 2, 100.0, 124.0, 2),
    (0.51, 2, 100.0, 200.0, -1),
    (0.0, 3, 100.0, 200.0, -1),
    (0.0, 0, 100.0, 123.99, -1),   # 24.99 px
])
def test_difficulty_thresholds(trunc, occ, y1, y2, level):
    from assignaudit.sources.kitti import kitti_difficulty

    line = f"Car {trunc} {occ} 0 10 {y1} 50 {y2} 1.5 1.6 3.9 0 1.5 20 0"
    assert kitti_difficulty(parse_kitti_objects(line, "t")).tolist() == [level]


def test_points_in_boxes_cpu_margins_by_hand():
    """|z - cz| > dz/2 is out (the faces are in); BEV has 1 cm of slack: |local| < d/2 + 0.01."""
    box = np.array([[10.0, 5.0, 1.0, 4.0, 2.0, 2.0, math.pi / 2]])  # heading +y: local x along +y
    pts = np.array([
        [10.0, 5.0, 2.0],          # top face: in
        [10.0, 5.0, 2.001],        # above: out
        [10.0, 7.0 + 0.009, 1.0],  # local x = 2.009 < 2.01: in
        [10.0, 7.0 + 0.011, 1.0],  # 2.011: out
        [11.0 + 0.009, 5.0, 1.0],  # local y = -1.009: in
        [11.02, 5.0, 1.0],         # out
        [0.0, 0.0, 0.0],           # far: out
    ], dtype=np.float32)
    assert points_in_boxes_mask(pts, box).tolist() == [[True, False, True, False, True, False, False]]
    assert count_points_in_boxes(pts, box).tolist() == [3]
    assert count_points_in_boxes(pts, np.zeros((0, 7))).tolist() == []


def test_points_count_matches_shapely_on_random_points():
    """Away from the 1 cm margin the count is plain containment: shapely polygon + z interval."""
    from shapely import contains_xy
    from shapely.geometry import Polygon

    rng = np.random.default_rng(3)
    boxes = np.column_stack([rng.uniform(-20, 20, (6, 2)), rng.uniform(-1, 1, 6), rng.uniform(1, 5, (6, 3)),
                             rng.uniform(-4, 4, 6)])
    pts = rng.uniform(-25, 25, (20000, 3)).astype(np.float32)
    pts[:, 2] = rng.uniform(-3, 3, 20000)
    ours = points_in_boxes_mask(pts, boxes)
    for i, b in enumerate(boxes):
        c, s = math.cos(b[6]), math.sin(b[6])
        corners = [(b[0] + c * u - s * v, b[1] + s * u + c * v) for u, v in
                   ((b[3] / 2, b[4] / 2), (-b[3] / 2, b[4] / 2), (-b[3] / 2, -b[4] / 2), (b[3] / 2, -b[4] / 2))]
        poly = Polygon(corners)
        ref = contains_xy(poly, pts[:, 0], pts[:, 1]) & (np.abs(pts[:, 2] - b[2]) <= b[5] / 2)
        near = contains_xy(poly.buffer(0.011), pts[:, 0], pts[:, 1]) & ~contains_xy(poly.buffer(-0.001), pts[:, 0],
                                                                                      pts[:, 1])
        assert np.array_equal(ours[i][~near], ref[~near])


# ---------------------------------------------------------------------------------------------------------------------
# the fixture against its generator
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_fixture_frames_match_the_generator(kitti, split):
    root, manifest = kitti
    src = KittiSource(root, split)
    assert src.sample_tokens() == manifest[split] and src.info.kind == "kitti" and src.info.split == split
    for f in src.frames():
        exp = manifest["frames"][f.sample_token]
        objs = exp["objects"]
        assert f.detection_class.tolist() == [o["name"] for o in objs]  # DontCare regions are not there
        box = np.array([o["box_lidar"] for o in objs])
        d = f.boxes_lidar[:, :7] - box
        d[:, 6] = (d[:, 6] + math.pi) % (2 * math.pi) - math.pi
        assert np.abs(d).max() < 0.011  # labels carry 2 decimals
        assert f.num_lidar_pts.tolist() == [o["num_points"] for o in objs]
        assert f.difficulty.tolist() == [o["difficulty"] for o in objs]
        assert (f.lidar_path is None) == (objs[0]["num_points"] == -1)
        assert np.allclose(f.extra["kitti_calib"].tr_velo_to_cam, exp["calib"]["Tr_velo_to_cam"], atol=1e-6)


def test_info_cli_on_kitti(kitti):
    root, manifest = kitti
    res = runner.invoke(app, ["info", "--kitti-root", str(root), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    objs = [o for sid in manifest["train"] for o in manifest["frames"][sid]["objects"]]
    assert out["source"]["kind"] == "kitti" and out["num_samples"] == len(manifest["train"])
    assert out["num_annotations"] == len(objs)
    for name in {o["name"] for o in objs}:
        mine = [o for o in objs if o["name"] == name]
        assert out["classes"][name]["num_annotations"] == len(mine)
        assert out["classes"][name]["num_zero_lidar_pts"] == sum(o["num_points"] == 0 for o in mine)
        d = [math.hypot(*o["box_lidar"][:2]) for o in mine]
        assert sum(out["classes"][name]["by_band"].values()) == len(d)
        assert out["classes"][name]["by_band"]["0-20"] == sum(x < 20 for x in d)


def test_count_runs_on_kitti(kitti, tmp_path):
    root, _ = kitti
    res = runner.invoke(app, ["count", "--config", "pcdet-kitti-pointpillars", "--kitti-root", str(root),
                              "--no-augment", "--only-summary", "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    summary = pd.read_parquet(tmp_path / "o" / "summary.parquet")
    car = summary[(summary["class"] == "Car") & (summary["band"] == "all")]
    assert int(car["num_gt"].iloc[0]) > 0


# ---------------------------------------------------------------------------------------------------------------------
# bad input: one error line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------------------------------


def _fails(args: list[str], tmp_path: Path, *needles: str) -> str:
    out = tmp_path / "out"
    res = runner.invoke(app, ["count", "--config", "pcdet-kitti-pointpillars", "--out", str(out), "--quiet", *args])
    assert res.exit_code == 2, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output and not out.exists()
    for n in needles:
        assert n in err, (n, err)
    return err


def _copy(kitti, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "k"
    shutil.copytree(kitti[0], dst)
    return dst


def test_bad_label_line_with_14_fields(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    p = root / "training" / "label_2" / "000001.txt"
    lines = p.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[:14])
    p.write_text("\n".join(lines) + "\n")
    _fails(["--kitti-root", str(root)], tmp_path, "000001.txt", "line 2 has 14 fields", "15")


def test_bad_label_non_numeric(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    p = root / "training" / "label_2" / "000000.txt"
    lines = p.read_text().splitlines()
    fields = lines[0].split()
    fields[2] = "x"  # occluded
    lines[0] = " ".join(fields)
    p.write_text("\n".join(lines) + "\n")
    _fails(["--kitti-root", str(root)], tmp_path, "000000.txt", "line 1 field 3 (occluded) 'x' is not a number")


def test_bad_calib_missing_tr_velo_to_cam(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    p = root / "training" / "calib" / "000002.txt"
    p.write_text("".join(line + "\n" for line in p.read_text().splitlines() if not line.startswith("Tr_velo_to_cam")))
    _fails(["--kitti-root", str(root)], tmp_path, "000002.txt", "no Tr_velo_to_cam")


def test_bad_calib_short_matrix(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    p = root / "training" / "calib" / "000000.txt"
    p.write_text(p.read_text().replace("R0_rect: ", "R0_rect: 1.0 ", 1))
    _fails(["--kitti-root", str(root)], tmp_path, "R0_rect must hold 9 finite numbers, got 10")


def test_bad_missing_image_set(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    _fails(["--kitti-root", str(root), "--split", "trainval"], tmp_path, "ImageSets/trainval.txt not found",
           "found: test, train, val")


def test_bad_missing_label_file(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    (root / "training" / "label_2" / "000002.txt").unlink()
    _fails(["--kitti-root", str(root)], tmp_path, "label file not found", "000002.txt")


def test_bad_test_split_has_no_labels(kitti, tmp_path):
    _fails(["--kitti-root", str(kitti[0]), "--split", "test"], tmp_path, "'test' has no labels")


def test_bad_truncated_velodyne(kitti, tmp_path):
    root = _copy(kitti, tmp_path)
    p = root / "training" / "velodyne" / "000000.bin"
    p.write_bytes(p.read_bytes()[:-6])
    _fails(["--kitti-root", str(root)], tmp_path, "000000.bin", "not a whole number")


def test_bad_non_positive_size_names_the_line(tmp_path):
    text = "Car 0.00 0 0.0 100 100 150 200 1.50 0.00 3.90 1.00 1.50 10.00 0.00\n"
    root = _write_dataset(tmp_path / "k", {"000000": text}, np.eye(3), np.eye(3, 4))
    _fails(["--kitti-root", str(root)], tmp_path, "000000.txt", "line 1", "size must be > 0")


def test_bad_kitti_root_and_source_combination(kitti, tmp_path):
    _fails(["--kitti-root", str(tmp_path / "nope")], tmp_path, "KITTI root not found")
    _fails(["--kitti-root", str(kitti[0]), "--version", "v1.0-mini"], tmp_path, "--version is for nuScenes")


def test_parse_rejects_other_field_counts():
    with pytest.raises(DataError, match="line 1 has 17 fields"):
        parse_kitti_objects("Car " + "0 " * 16, "x")
    with pytest.raises(DataError, match="line 1 has 15 fields, a KITTI prediction line has 16"):
        parse_kitti_objects(CAR, "x", require_score=True)
    assert len(parse_kitti_objects("\n\n", "x")) == 0


def test_read_calib_accepts_tracking_keys(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(f"R_rect: {_fmt(np.eye(3))}\nTr_velo_cam: {_fmt(np.eye(3, 4))}\n")
    cal = read_calib(p)
    assert cal.r0_rect.dtype == np.float32 and cal.p2 is None and np.array_equal(cal.tr_velo_to_cam, np.eye(3, 4))
