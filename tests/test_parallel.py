"""`count --workers N` / `--ray` (assignaudit/parallel.py): sharded counts merge exactly; the report files are
byte-identical whatever the number of workers."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assignaudit.bands import Bands
from assignaudit.cli import app
from assignaudit.config import load_config
from assignaudit.count import CountOptions, run_count
from _report_bytes import report_bytes
from assignaudit.parallel import resolve_workers
from assignaudit.sources.open import open_source
from assignaudit.tally.base import IOU_HIST_BINS, Tallies

runner = CliRunner()


def _files(out: Path) -> dict[str, bytes]:
    return report_bytes(out)


def _run(tmp: Path, name: str, config: str | None, **opts) -> dict[str, bytes]:
    out = tmp / name
    run_count(load_config(config), open_source(), CountOptions(**opts), out)
    return _files(out)


@pytest.mark.parametrize("config, extra", [
    (None, {"replays": 2, "seed": 3}),  # pcdet anchors, gt_sampling + world augmentation, 2 replays
    ("pcdet-nuscenes-centerpoint-voxel0075", {"seed": 1}),  # heatmap: phantom slots, radius.parquet
    ("mmdet3d-nuscenes-pointpillars-secfpn", {"augment": False, "max_frames": 9}),  # class-agnostic, a partial shard
])
def test_reports_are_byte_identical_whatever_the_worker_count(tmp_path, config, extra):
    serial = _run(tmp_path, "w1", config, workers=1, **extra)
    assert {"summary.parquet", "objects.parquet", "frames.parquet"} <= set(serial)
    two = _run(tmp_path, "w2", config, workers=2, shard_frames=4, **extra)
    assert two.keys() == serial.keys()
    for name in serial:
        assert two[name] == serial[name], name


def test_three_workers_uneven_shards_and_flushes(tmp_path, monkeypatch):
    # row groups flushed every 5 assigned frames: the sharded run must flush after the same frames
    import assignaudit.count as count_mod
    import assignaudit.parallel as parallel

    monkeypatch.setattr(count_mod, "_FLUSH_EVERY_FRAMES", 5)
    # the multi-thread workers' start method (a preloading forkserver) instead of fork
    monkeypatch.setattr(parallel, "start_method", lambda threads: "forkserver")
    serial = _run(tmp_path, "w1", None, workers=1, replays=2)
    three = _run(tmp_path, "w3", None, workers=3, shard_frames=5, replays=2)
    assert three == serial
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "w1" / "objects.parquet").num_row_groups > 3


def test_tallies_merge_is_the_sum_and_pickles_sparse():
    rng = np.random.default_rng(0)
    a, b = Tallies(3, 4), Tallies(3, 4)
    for t in (a, b):
        t.num_pos += rng.integers(0, 9, t.num_pos.shape)
        idx = rng.integers(0, t.iou_hist.size, 50)
        np.add.at(t.iou_hist.reshape(-1), idx, 1)
    b.grow_radius(7)
    b.radius_hist[1, 2, 7] = 4
    a.radius_hist[0, 0, 0] = 1
    want_pos = a.num_pos + b.num_pos
    want_hist = a.iou_hist + b.iou_hist
    blob = pickle.dumps(b)
    assert len(blob) < 20_000 < b.iou_hist.nbytes  # sparse on the wire
    b2 = pickle.loads(blob)
    assert np.array_equal(b2.iou_hist, b.iou_hist) and b2.iou_hist.shape == (3, 4, IOU_HIST_BINS)
    a.merge(b2)
    assert np.array_equal(a.num_pos, want_pos) and np.array_equal(a.iou_hist, want_hist)
    assert a.radius_hist.shape == (3, 4, 8) and a.radius_hist[1, 2, 7] == 4 and a.radius_hist[0, 0, 0] == 1
    with pytest.raises(ValueError):
        a.merge(Tallies(2, 4))


def test_resolve_workers():
    assert resolve_workers(4, 10, 64) == 1  # one shard: counted in process
    assert resolve_workers(4, 200, 64) == 4
    assert resolve_workers(8, 200, 64) == 4  # no more workers than shards
    assert resolve_workers(None, 10**6, 64) >= 1


def test_bad_worker_count_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["count", "--quiet", "--out", str(tmp_path), "--workers", "0"])
    assert res.exit_code == 2 and "--workers must be >= 1" in res.output


def test_cli_workers_option_gives_the_same_bytes(tmp_path):
    outs = []
    for w in ("1", "2"):
        out = tmp_path / w
        res = runner.invoke(app, ["count", "--quiet", "--no-augment", "--max-frames", "6", "--workers", w,
                                  "--out", str(out)])
        assert res.exit_code == 0, res.output
        outs.append(_files(out))
    assert outs[0] == outs[1]


class _DieOnce:
    """A replay whose worker process dies (os._exit) the first time it is used: the Ray task must be retried."""

    def __init__(self, replay, marker: str) -> None:
        self.replay, self.marker = replay, marker

    def apply(self, frame, replay=0, augment=True):
        import os

        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return self.replay.apply(frame, replay, augment=augment)


def test_ray_gives_the_same_bytes_and_retries_a_lost_task(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    import sys

    from ray import cloudpickle

    import assignaudit.count as count_mod

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the Ray workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serial = _run(tmp_path, "w1", None, workers=1, seed=2)
        on_ray = _run(tmp_path, "ray", None, workers=2, shard_frames=5, seed=2, ray="auto")
        assert on_ray == serial
        make_replay = count_mod.make_replay
        marker = tmp_path / "died"
        monkeypatch.setattr(count_mod, "make_replay",
                            lambda *a, **k: _DieOnce(make_replay(*a, **k), str(marker)))
        retried = _run(tmp_path, "ray-retried", None, workers=2, shard_frames=5, seed=2, ray="auto")
        assert marker.exists() and retried == serial
    finally:
        ray.shutdown()
