"""TableSource: Parquet and CSV box tables as canonical frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from assignaudit.errors import DataError
from assignaudit.sources import open_source
from assignaudit.sources.table import TableSource

ROWS = pd.DataFrame({
    "frame_id": ["b", "a", "b", "c", "a"],
    "class": ["car", "pedestrian", "truck", "car", "my_robot"],
    "x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [0.5, -1.0, 2.0, 0.0, 9.0], "z": [0.0, 0.1, 0.2, 0.3, 0.4],
    "dx": [4.5, 0.7, 7.0, 4.4, 1.0], "dy": [1.9, 0.6, 2.5, 1.8, 1.0], "dz": [1.6, 1.7, 3.0, 1.5, 1.0],
    "yaw": [0.0, math.pi, 3 * math.pi / 2, -math.pi, 0.25],
})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_frames_grouped_in_first_appearance_order(tmp_path, fmt):
    df = ROWS.assign(vx=[1.0, 0.0, np.nan, 2.0, 0.5], vy=[0.0, 0.0, 1.0, -2.0, 0.5],
                     num_lidar_pts=[10, 0, 3, 7, 1])
    p = tmp_path / f"boxes.{fmt}"
    df.to_parquet(p) if fmt == "parquet" else df.to_csv(p, index=False)
    src = open_source(boxes=p)
    assert isinstance(src, TableSource) and src.info.kind == "table" and len(src) == 3
    assert src.sample_tokens() == ["b", "a", "c"]
    frames = list(src.frames())
    b, a, c = frames
    np.testing.assert_array_equal(b.boxes_lidar[:, 0], [1.0, 3.0])  # file order within a frame
    np.testing.assert_array_equal(a.boxes_lidar[:, 0], [2.0, 5.0])
    assert b.detection_class.tolist() == b.category.tolist() == ["car", "truck"]
    assert a.detection_class.tolist() == ["pedestrian", "my_robot"]
    # yaw wrapped to [-pi, pi): pi -> -pi, 3pi/2 -> -pi/2
    np.testing.assert_allclose(a.boxes_lidar[0, 6], -math.pi)
    np.testing.assert_allclose(b.boxes_lidar[1, 6], -math.pi / 2)
    np.testing.assert_allclose(c.boxes_lidar[0, 6], -math.pi)
    np.testing.assert_array_equal(b.boxes_lidar[:, 7], [1.0, np.nan])
    np.testing.assert_array_equal(c.boxes_lidar[0, 7:9], [2.0, -2.0])
    assert b.num_lidar_pts.tolist() == [10, 3] and a.num_lidar_pts.tolist() == [0, 1]
    assert b.num_lidar_pts.dtype == np.int64
    assert b.ann_token.tolist() == [None, None]
    np.testing.assert_allclose(b.dist_bev_m, [math.hypot(1.0, 0.5), math.hypot(3.0, 2.0)])


def test_optional_columns_missing(tmp_path):
    p = tmp_path / "boxes.csv"
    ROWS.to_csv(p, index=False)
    frames = list(TableSource(p).frames())
    allb = np.concatenate([f.boxes_lidar for f in frames])
    assert allb.shape == (5, 9) and np.isnan(allb[:, 7:9]).all()
    assert all((f.num_lidar_pts == -1).all() and (f.num_radar_pts == -1).all() for f in frames)
    np.testing.assert_array_equal(np.sort(allb[:, 3]), np.sort(ROWS["dx"].to_numpy()))


def test_numeric_frame_ids_stay_strings(tmp_path):
    p = tmp_path / "boxes.csv"
    ROWS.assign(frame_id=["007", "10", "007", "3", "10"]).to_csv(p, index=False)
    assert TableSource(p).sample_tokens() == ["007", "10", "3"]


def test_errors(tmp_path):
    p = tmp_path / "b.csv"
    ROWS.drop(columns=["class"]).to_csv(p, index=False)
    with pytest.raises(DataError, match="'class'"):
        TableSource(p)
    ROWS.assign(x=[1.0, np.inf, 0, 0, 0]).to_csv(p, index=False)
    with pytest.raises(DataError, match="row 1 .frame a."):
        TableSource(p)
    ROWS.assign(dz=[1.0, 1.0, 1.0, 0.0, 1.0]).to_csv(p, index=False)
    with pytest.raises(DataError, match="row 3 .frame c.*non-positive"):
        TableSource(p)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read box table"):
        TableSource(tmp_path / "broken.parquet")
