"""The Parquet frame cache (assignaudit/sources/cache.py): exact frames, stale / corrupt caches rebuilt, reports equal."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from _report_bytes import report_bytes
from assignaudit.report import recorded_command_line
from assignaudit.sources.cache import CachedSource, cache_path, open_cached_source, source_key
from assignaudit.sources.open import open_source

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

FIELDS = ("sample_token", "boxes_lidar", "detection_class", "category", "ann_token", "instance_token",
          "num_lidar_pts", "num_radar_pts", "scene_name", "global_SE3_lidar", "ego_translation_global", "difficulty",
          "lidar_path", "extra")


def assert_frames_equal(got, want):
    got, want = list(got), list(want)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        for name in FIELDS:
            a, b = getattr(g, name), getattr(w, name)
            if isinstance(b, np.ndarray):
                assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, name
                # bit-exact, NaN included (velocities of single annotations are NaN)
                if b.dtype == object:
                    assert a.tolist() == b.tolist(), name
                else:
                    assert a.tobytes() == b.tobytes(), name
            else:
                assert type(a) is type(b) and a == b, (name, a, b)


@pytest.fixture()
def table(tmp_path):
    df = pd.DataFrame({"frame_id": ["f0", "f0", "f1", "f2"], "class": ["car", "pedestrian", "car", "bus"],
                       "x": [1.0, 2.0, 3.0, 40.0], "y": [0.5, -1.0, 2.0, 3.0], "z": [0.0, 0.1, 0.2, 0.3],
                       "dx": [4.0, 0.8, 4.2, 11.0], "dy": [1.8, 0.7, 1.9, 2.9], "dz": [1.5, 1.7, 1.6, 3.4],
                       "yaw": [0.1, -2.0, 3.0, 0.0], "vx": [1.0, np.nan, 0.0, 2.5], "num_lidar_pts": [10, 3, 0, 99]})
    path = tmp_path / "boxes.parquet"
    df.to_parquet(path)
    return path


def test_cached_nuscenes_frames_equal_uncached(tmp_path):
    first = open_cached_source(cache_dir=tmp_path)
    assert not isinstance(first, CachedSource)  # a miss: the real source, and the cache written
    files = list(tmp_path.glob("nuscenes-*.parquet"))
    assert len(files) == 1
    second = open_cached_source(cache_dir=tmp_path)
    assert isinstance(second, CachedSource)
    assert second.info == first.info and len(second) == len(first) == 24
    assert second.sample_tokens() == first.sample_tokens()
    assert_frames_equal(second.frames(), open_source().frames())
    assert_frames_equal([second.frame(5)], [first.frame(5)])


def test_cached_table_frames_equal_uncached(tmp_path, table):
    open_cached_source(cache_dir=tmp_path / "c", boxes=table)
    cached = open_cached_source(cache_dir=tmp_path / "c", boxes=table)
    assert isinstance(cached, CachedSource)
    assert_frames_equal(cached.frames(), open_source(boxes=table).frames())


def test_no_cache_reads_and_writes_nothing(tmp_path):
    src = open_cached_source(cache=False, cache_dir=tmp_path)
    assert not isinstance(src, CachedSource) and not list(tmp_path.iterdir())


def test_cache_hit_never_imports_the_devkit(tmp_path):
    open_cached_source(cache_dir=tmp_path)
    code = ("import sys\nfrom assignaudit.sources.cache import open_cached_source, CachedSource\n"
            f"s = open_cached_source(cache_dir={str(tmp_path)!r})\nassert isinstance(s, CachedSource)\n"
            "n = sum(len(f) for f in s.frames())\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'nuscenes'], 'devkit imported'\nprint(n)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == sum(len(f) for f in open_source().frames())


def test_truncated_cache_is_rebuilt_not_trusted(tmp_path, caplog):
    open_cached_source(cache_dir=tmp_path)
    (path,) = tmp_path.glob("nuscenes-*.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="assignaudit.sources.cache"):
        src = open_cached_source(cache_dir=tmp_path)
    assert not isinstance(src, CachedSource) and "unreadable" in caplog.text
    assert path.stat().st_size == len(data)  # rewritten whole
    assert isinstance(open_cached_source(cache_dir=tmp_path), CachedSource)


def test_corrupt_page_is_detected(tmp_path):
    open_cached_source(cache_dir=tmp_path)
    (path,) = tmp_path.glob("nuscenes-*.parquet")
    data = bytearray(path.read_bytes())
    mid = 4 + (len(data) - 4) // 3  # inside a data page, far from the footer
    data[mid:mid + 16] = bytes(16)
    path.write_bytes(bytes(data))
    assert not isinstance(open_cached_source(cache_dir=tmp_path), CachedSource)
    assert isinstance(open_cached_source(cache_dir=tmp_path), CachedSource)


def test_changed_mtime_or_content_makes_the_cache_stale(tmp_path, table):
    cache = tmp_path / "c"
    open_cached_source(cache_dir=cache, boxes=table)
    assert isinstance(open_cached_source(cache_dir=cache, boxes=table), CachedSource)
    st = table.stat()
    os.utime(table, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not isinstance(open_cached_source(cache_dir=cache, boxes=table), CachedSource)  # stale: rebuilt
    assert isinstance(open_cached_source(cache_dir=cache, boxes=table), CachedSource)
    # new content, same size and mtime restored: the identity still has the content's stat -> a new table with
    # another row count changes the size
    df = pd.read_parquet(table)
    df.loc[0, "x"] = 7.0
    df.to_parquet(table)
    src = open_cached_source(cache_dir=cache, boxes=table)
    assert not isinstance(src, CachedSource)
    assert next(iter(open_cached_source(cache_dir=cache, boxes=table).frames())).boxes_lidar[0, 0] == 7.0
    assert len(list(cache.iterdir())) == 1  # one file per source, rewritten in place


def test_other_kinds_and_bad_options_are_not_cached(tmp_path):
    assert source_key({"kitti_root": tmp_path}) is None
    assert source_key({"boxes": tmp_path / "missing.parquet"}) is None
    assert source_key({"dataroot": tmp_path / "nope"}) is None
    # a bad split still fails with open_source's own message
    from assignaudit.errors import DataError

    with pytest.raises(DataError, match="unknown split"):
        open_cached_source(cache_dir=tmp_path, split="nope")
    locator, _ = source_key({})
    assert cache_path(tmp_path, locator).name.startswith("nuscenes-")


def test_count_report_is_byte_identical_with_and_without_cache(tmp_path):
    outs = []
    for i, flags in enumerate((["--no-cache"], ["--cache-dir", str(tmp_path / "c")],
                               ["--cache-dir", str(tmp_path / "c")])):
        out = tmp_path / f"o{i}"
        res = runner.invoke(app, ["count", "--quiet", "--no-augment", "--out", str(out), *flags])
        assert res.exit_code == 0, res.output
        outs.append(out)
    assert len(list((tmp_path / "c").iterdir())) == 1
    names = sorted(p.name for p in outs[0].iterdir())
    assert "summary.parquet" in names and "objects.parquet" in names
    for out in outs[1:]:
        assert sorted(p.name for p in out.iterdir()) == names
        got, want = report_bytes(out), report_bytes(outs[0])
        for n in names:
            assert got[n] == want[n], n


def test_info_json_identical_with_cache(tmp_path):
    a = runner.invoke(app, ["info", "--json", "--no-cache"])
    runner.invoke(app, ["info", "--json", "--cache-dir", str(tmp_path)])
    b = runner.invoke(app, ["info", "--json", "--cache-dir", str(tmp_path)])
    assert a.exit_code == b.exit_code == 0
    assert json.loads(a.output) == json.loads(b.output)


def test_execution_options_are_left_out_of_the_recorded_command_line():
    argv = ["/x/assignaudit", "count", "--workers", "2", "--no-cache", "--cache-dir=/c", "--ray", "auto", "--seed",
            "3"]
    assert recorded_command_line(argv) == "assignaudit count --seed 3"
