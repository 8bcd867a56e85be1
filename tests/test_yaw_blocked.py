"""The `yaw` analysis run in blocks of whole samples equals the one-block run, and the streamed
``predictions.parquet`` equals the table written whole."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from assignaudit.report import write_parquet
from assignaudit.yaw.analysis import EvalData, EvalGT, EvalPreds, YawOptions, analyse
from assignaudit.yaw.nms import NmsSettings
from assignaudit.yaw.pipeline import run_yaw, write_predictions

ONE_BLOCK = 10**12


@pytest.fixture(scope="module")
def fixture_data() -> EvalData:
    return run_yaw(options=YawOptions()).data


def _assert_same(t1, t2) -> None:
    assert t1.summary.equals(t2.summary)
    assert t1.hist.equals(t2.hist)
    assert t1.predictions.equals(t2.predictions)
    assert (t1.nms_sweep is None) == (t2.nms_sweep is None)
    if t1.nms_sweep is not None:
        assert t1.nms_sweep.equals(t2.nms_sweep)
    assert t1.aoe_nusc.keys() == t2.aoe_nusc.keys()
    for k, v in t1.aoe_nusc.items():
        assert v == t2.aoe_nusc[k] or (v != v and t2.aoe_nusc[k] != t2.aoe_nusc[k])


@pytest.mark.parametrize("opts", [
    YawOptions(nms_sweep=(0.01, 0.2, 0.5)),
    YawOptions(match="iou", match_threshold=0.3, dup_iou=0.1),
    YawOptions(match="center", match_threshold=1.0, nms=NmsSettings(nms_type="circle", class_agnostic=True),
               nms_sweep=(1.0, 4.0)),
])
@pytest.mark.parametrize("block", [1, 7, 300])
def test_blocked_equals_one_block_on_fixture(fixture_data, opts, block):
    _assert_same(analyse(fixture_data, opts, block_boxes=block), analyse(fixture_data, opts, block_boxes=ONE_BLOCK))


def _shuffled(data: EvalData, seed: int) -> EvalData:
    """Rows of both sides permuted (samples no longer contiguous, input positions out of order)."""
    rng = np.random.default_rng(seed)
    pp = rng.permutation(len(data.preds.score))
    p = EvalPreds(**{f.name: getattr(data.preds, f.name)[pp] for f in dataclasses.fields(EvalPreds)})
    return dataclasses.replace(data, preds=p)


def test_blocked_equals_one_block_with_rows_out_of_order(fixture_data):
    data = _shuffled(fixture_data, 3)
    assert np.any(np.diff(data.preds.sample) < 0)
    opts = YawOptions(nms_sweep=(0.1,))
    t1, t2 = analyse(data, opts, block_boxes=5), analyse(data, opts, block_boxes=ONE_BLOCK)
    _assert_same(t1, t2)
    assert np.all(np.diff(t1.predictions["index"].to_numpy()) >= 0)  # rows by input position
    # and the same per-prediction outcomes as the rows in file order (float sums in the summary follow row order)
    assert t1.predictions.equals(analyse(fixture_data, opts).predictions)


def test_streamed_predictions_parquet_equals_whole_write(fixture_data, tmp_path):
    tables = analyse(_shuffled(fixture_data, 5), YawOptions(), block_boxes=11)
    meta = {"report": "predictions", "x": 1}
    whole = write_parquet(tmp_path / "whole.parquet", tables.predictions, meta)
    streamed = write_predictions(tmp_path / "streamed.parquet", tables.columns, meta, rows_per_group=13)
    a, b = pq.read_table(whole), pq.read_table(streamed)
    assert a.schema.equals(b.schema, check_metadata=True)
    assert a.equals(b)
    assert pq.ParquetFile(streamed).metadata.num_row_groups == -(-len(tables.columns) // 13)
    assert tables.predictions["matched_ann_token"].isna().any()  # None tokens written as nulls on both sides


def test_empty_predictions(tmp_path):
    z = np.zeros(0, np.int64)
    data = EvalData(sample_tokens=("s",), classes=("car",),
                    gt=EvalGT(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((1, 9)), np.zeros((1, 2)),
                              np.zeros(1), np.array(["a"], dtype=object)),
                    preds=EvalPreds(z, z, np.zeros(0), z, np.zeros((0, 9)), np.zeros((0, 2)), np.zeros(0)))
    t = analyse(data, YawOptions(), block_boxes=1)
    _assert_same(t, analyse(data, YawOptions()))
    out = write_predictions(tmp_path / "p.parquet", t.columns, {})
    assert pq.read_table(out).num_rows == 0
    assert pq.read_table(out).schema.names == list(t.predictions.columns)
