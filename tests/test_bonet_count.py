"""3D-BoNet as a `count` path: the frame's points reach the cost (sources), the query tally replays the match with
``query.cost: bonet``, and the refusals (no points, dump missing frames)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from assignaudit.sources.infos import open_infos
from assignaudit.sources.open import open_source
from assignaudit.sources.points import NUSCENES_POINTS_KEY, frame_points_path, read_frame_points

INFOS = Path(__file__).parent / "data" / "infos"


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("mkf", Path(__file__).parents[1] / "fixtures/make_kitti_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path_factory.mktemp("kitti")
    mod.make_kitti_fixture(root)
    return root


def test_frames_carry_their_points(kitti_root):
    nus = next(iter(open_source().frames()))
    path, cols = frame_points_path(nus)
    assert cols == 5 and path == nus.extra[NUSCENES_POINTS_KEY] and path.endswith(".pcd.bin")
    pts = read_frame_points(nus)
    assert pts.shape[1] == 5 and pts.shape[0] == Path(path).stat().st_size // 20
    raw = next(iter(open_source(kitti_root=kitti_root).frames()))
    assert frame_points_path(raw) == (str(kitti_root.resolve() / "training/velodyne/000000.bin"), 4)
    for name in ("mmdet3d_kitti_infos_train.pkl", "pcdet_kitti_infos_train.pkl"):
        frames = list(open_infos([INFOS / name], data_path=kitti_root).frames())
        assert [Path(f.lidar_path).name for f in frames] == ["000000.bin", "000001.bin", "000002.bin"]
        np.testing.assert_array_equal(read_frame_points(frames[0]), read_frame_points(raw))
    # Without the velodyne files (info files alone) there are no points.
    assert all(read_frame_points(f) is None for f in open_infos([INFOS / "mmdet3d_kitti_infos_train.pkl"]).frames())
