"""The bundled nuScenes fixture: deterministic, devkit-valid, and the content the other tests rely on.

Every check goes through nuscenes-devkit itself (tables, get_sample_data, points_in_box, box_velocity, splits).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from _json_tolerance import assert_same_json
from assignaudit.sources.open import FIXTURE_DATAROOT, FIXTURE_SPLIT, FIXTURE_VERSION

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "fixtures" / "make_nuscenes_fixture.py"
DETECTION_CLASSES = {"car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
                     "traffic_cone", "barrier"}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def nusc():
    from nuscenes import NuScenes

    with contextlib.redirect_stdout(io.StringIO()):
        return NuScenes(FIXTURE_VERSION, str(FIXTURE_DATAROOT), verbose=False)


@pytest.fixture(scope="module")
def lidar_boxes(nusc):
    """Per sample: (sample, devkit boxes in the LiDAR frame, LiDAR points [3, P])."""
    from nuscenes.utils.data_classes import LidarPointCloud

    out = []
    for s in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(s["data"]["LIDAR_TOP"])
        out.append((s, boxes, LidarPointCloud.from_file(path).points[:3]))
    return out


def test_generator_is_deterministic_and_matches_the_committed_fixture(tmp_path):
    spec = importlib.util.spec_from_file_location("make_nuscenes_fixture", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(gen)
    finally:
        sys.modules.pop(spec.name, None)
    gen.build(tmp_path / "a")
    gen.build(tmp_path / "b")
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert a == b
    committed = _tree_digest(FIXTURE_DATAROOT)
    assert sorted(a) == sorted(committed), "committed fixture is stale: rerun fixtures/make_nuscenes_fixture.py"
    for name in sorted(a):
        if a[name] == committed[name]:
            continue
        # The generator's pose/rotation products go through the CPU's BLAS kernel, whose last-digit rounding
        # differs between kernels (OPENBLAS_CORETYPE): JSON tables are compared as numbers, 1e-12 relative.
        assert name.endswith(".json"), f"committed fixture is stale ({name}): rerun fixtures/make_nuscenes_fixture.py"
        assert_same_json(json.loads((tmp_path / "a" / name).read_text()),
                         json.loads((FIXTURE_DATAROOT / name).read_text()), path=name)
    size = sum(p.stat().st_size for p in FIXTURE_DATAROOT.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


def test_all_tables_splits_and_map_present(nusc):
    from nuscenes.utils.splits import create_splits_scenes, get_scenes_of_split

    for t in ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
              "sample_annotation", "sample_data", "scene", "sensor", "visibility"):
        assert len(getattr(nusc, t)) > 0
    assert (FIXTURE_DATAROOT / nusc.map[0]["filename"]).is_file()
    names = [s["name"] for s in nusc.scene]
    pre = create_splits_scenes()
    assert {n for n in names if n in pre["mini_train"]} == {"scene-0061", "scene-0553"}
    assert {n for n in names if n in pre["mini_val"]} == {"scene-0103", "scene-0916"}
    assert sorted(get_scenes_of_split(FIXTURE_SPLIT, nusc)) == sorted(names)
    assert len(nusc.sample) == 24
    assert 35 <= len(nusc.sample_annotation) / len(nusc.sample) <= 45


def test_lidar_calibration_and_ego_poses_are_non_trivial(nusc):
    from pyquaternion import Quaternion

    cs = nusc.calibrated_sensor[0]
    assert abs(math.degrees(Quaternion(cs["rotation"]).yaw_pitch_roll[0]) + 90) < 1
    assert 1.7 < cs["translation"][2] < 1.9
    ypr = np.array([Quaternion(p["rotation"]).yaw_pitch_roll for p in nusc.ego_pose])
    assert np.ptp(ypr[:, 0]) > 1.0 and np.abs(ypr[:, 1:]).max() > 1e-3


def test_every_box_holds_exactly_its_lidar_points_and_no_point_is_in_two_boxes(nusc, lidar_boxes):
    from nuscenes.utils.geometry_utils import points_in_box

    for s, boxes, pts in lidar_boxes:
        inside = np.stack([points_in_box(b, pts) for b in boxes])
        expected = [nusc.get("sample_annotation", b.token)["num_lidar_pts"] for b in boxes]
        assert inside.sum(axis=1).tolist() == expected, s["token"]
        assert inside.sum(axis=0).max() <= 1
        assert (inside.sum(axis=0) == 0).sum() > 0  # some background points


def test_every_class_in_train_and_val_scenes_with_enough_points(nusc):
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.utils.splits import create_splits_scenes

    pre = create_splits_scenes()
    for split in ("mini_train", "mini_val"):
        rich = Counter()
        for a in nusc.sample_annotation:
            scene = nusc.get("scene", nusc.get("sample", a["sample_token"])["scene_token"])["name"]
            name = category_to_detection_name(a["category_name"])
            if scene in pre[split] and name is not None and a["num_lidar_pts"] >= 5:
                rich[name] += 1
        assert set(rich) == DETECTION_CLASSES and min(rich.values()) >= 6, (split, rich)


def test_special_content(nusc, lidar_boxes):
    from nuscenes.eval.common.utils import quaternion_yaw
    from nuscenes.utils.geometry_utils import points_in_box

    cats = Counter(a["category_name"] for a in nusc.sample_annotation)
    for c in ("animal", "vehicle.emergency.ambulance", "static_object.bicycle_rack", "vehicle.bus.bendy",
              "vehicle.bus.rigid", "human.pedestrian.child"):
        assert cats[c] > 0, c
    anns = nusc.sample_annotation
    assert any(a["num_lidar_pts"] == 0 and a["num_radar_pts"] > 0 for a in anns)
    assert any(a["num_lidar_pts"] == 0 and a["num_radar_pts"] == 0 for a in anns)
    vel = np.array([nusc.box_velocity(a["token"])[:2] for a in anns])
    single = np.array([a["prev"] == "" and a["next"] == "" for a in anns])
    assert np.isnan(vel[single]).all() and single.sum() > 20
    assert np.isfinite(vel).all(axis=1).mean() > 0.8
    assert (np.isnan(vel).any(axis=1) & ~single).any()  # the 2 s gap

    pitch = 102.4 / 127
    dists, yaws, cones_on_grid, bikes_in_rack = [], [], 0, 0
    for s, boxes, _ in lidar_boxes:
        racks = [b for b in boxes if b.name == "static_object.bicycle_rack"]
        for b in boxes:
            dists.append(math.hypot(b.center[0], b.center[1]))
            yaw = quaternion_yaw(b.orientation)
            yaws.append(yaw)
            if b.name == "movable_object.trafficcone" and abs(b.wlh[0] - 0.3) < 1e-9:
                # midway between anchors i and i+1 in both x and y, yaw 0, all in this sample's LiDAR frame
                fx = (b.center[0] + 51.2) / pitch - 0.5
                fy = (b.center[1] + 51.2) / pitch - 0.5
                assert abs(fx - round(fx)) < 1e-4 and abs(fy - round(fy)) < 1e-4
                assert abs(yaw) < 1e-9
                cones_on_grid += 1
            if b.name == "vehicle.bicycle":
                bikes_in_rack += any(points_in_box(r, b.center[:, None])[0] for r in racks)
    assert cones_on_grid == 3 * len(nusc.sample)
    assert bikes_in_rack == 2 * len(nusc.sample)
    assert min(dists) < 1.5 and 70 < max(dists) <= 80
    yaws = np.array(yaws)
    assert np.histogram(yaws, bins=8, range=(-math.pi, math.pi))[0].min() > 20
    for axis in (0.0, math.pi / 2, -math.pi / 2):
        assert (np.abs(yaws - axis) < 1e-9).sum() >= 5
    assert (np.abs(np.abs(yaws) - math.pi) < 1e-9).sum() >= 5
