"""Hungarian query replay: solver vs exhaustive search, costs vs formulas typed here, dumps and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from assignaudit.assign.hungarian import (
    QUERY_BOX_COLUMNS,
    decode_query_boxes,
    detr3d_cost,
    focal_cost,
    hungarian_assign,
    load_query_dump,
    normalize_bbox,
    replay_frame,
    summarize_replays,
    transfusion_iou3d,
)
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame


def _exhaustive(cost: np.ndarray) -> float:
    q, k = cost.shape
    if q >= k:
        return min(sum(cost[p[j], j] for j in range(k)) for p in itertools.permutations(range(q), k))
    return min(sum(cost[i, p[i]] for i in range(q)) for p in itertools.permutations(range(k), q))


@pytest.mark.parametrize("q,k", [(1, 1), (3, 3), (6, 4), (5, 2), (2, 4), (6, 1)])
@pytest.mark.parametrize("seed", range(4))
def test_solver_equals_exhaustive_search(q, k, seed):
    cost = np.random.default_rng(seed).normal(size=(q, k))
    qi, gi = hungarian_assign(torch.from_numpy(cost))
    assert len(qi) == min(q, k) and len(set(qi)) == len(qi) and len(set(gi)) == len(gi)
    assert cost[qi, gi].sum() == pytest.approx(_exhaustive(cost), abs=1e-12)


def test_nan_and_inf_are_clamped_to_100():
    # Without clamping the NaN entry would crash scipy; as 100 it must be avoided, and -inf as -100 is taken.
    cost = np.array([[np.nan, 1.0, 5.0], [2.0, np.inf, 3.0], [4.0, 6.0, -np.inf]])
    qi, gi = hungarian_assign(cost)
    replaced = np.array([[100.0, 1.0, 5.0], [2.0, 100.0, 3.0], [4.0, 6.0, -100.0]])
    assert replaced[qi, gi].sum() == pytest.approx(_exhaustive(replaced))
    assert dict(zip(qi.tolist(), gi.tolist())) == {0: 1, 1: 0, 2: 2}
    assert np.isnan(cost[0, 0])  # input untouched


def test_focal_cost_matches_formula():
    logits = torch.tensor([[-2.0, 0.5, 3.0], [1.0, -0.3, 0.0]], dtype=torch.float64)
    labels = torch.tensor([2, 0, 2, 1])
    got = focal_cost(logits, labels, weight=2.0)
    for qq in range(2):
        for kk in range(4):
            p = 1 / (1 + math.exp(-float(logits[qq, labels[kk]])))
            pos = -0.25 * (1 - p) ** 2 * math.log(p + 1e-12)
            neg = -0.75 * p ** 2 * math.log(1 - p + 1e-12)
            assert got[qq, kk].item() == pytest.approx(2.0 * (pos - neg), rel=1e-12)


def test_detr3d_cost_by_hand():
    # GT yaw 0 -> DETR3D's legacy rotation -pi/2: sin -1, cos 0; log sizes of 4, 2, 1.5.
    gt = torch.tensor([[10.0, -5.0, 0.5, 4.0, 2.0, 1.5, 0.0, 1.0, 1.0]], dtype=torch.float64)
    pred = torch.tensor([[11.0, -5.0, math.log(4.0), math.log(2.0), 0.0, math.log(1.5), -1.0, 0.5, 9.0, 9.0]],
                        dtype=torch.float64)
    logits = torch.zeros((1, 3), dtype=torch.float64)
    got = detr3d_cost(pred, logits, gt, torch.tensor([1])).item()
    p = 0.5
    focal = 2.0 * (-0.25 * (1 - p) ** 2 * math.log(p + 1e-12) + 0.75 * p ** 2 * math.log(1 - p + 1e-12))
    l1 = 1.0 + 0.5 + 0.5  # |dx| + |dz| + |cos|; velocity (9 vs 1) is not in the cost
    assert got == pytest.approx(focal + 0.25 * l1, abs=1e-12)


def test_normalize_decode_roundtrip():
    gt = torch.tensor([[1.0, 2.0, -1.0, 4.2, 1.9, 1.6, 2.5, 0.3, -0.2], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, -3.0, 0, 0]],
                      dtype=torch.float64)
    for enc in ("detr3d", "canonical"):
        back = decode_query_boxes(normalize_bbox(gt, enc), enc)
        assert torch.allclose(back, gt, atol=1e-12)


def test_transfusion_height_quirk_by_hand():
    # Unit squares at the same BEV place. a: z 0, dz 2; b: z 1.5, dz 1. Treating z as the bottom (the quirk):
    # [0, 2] vs [1.5, 2.5] overlap 0.5 -> 0.5 / (2 + 1 - 0.5) = 0.2. As centres they would not overlap at all.
    a = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 1.5, 1.0, 1.0, 1.0, 0.0]])
    assert transfusion_iou3d(a, b).item() == pytest.approx(0.2, abs=1e-6)


def _frame(token, boxes, classes) -> Frame:
    n = len(classes)
    return Frame(token, np.asarray(boxes, dtype=np.float64), np.array(classes, dtype=object),
                 np.array(classes, dtype=object), np.full(n, None, dtype=object), np.full(n, None, dtype=object),
                 np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))


CLASSES = ("car", "pedestrian")


def _dump_arrays():
    gt = np.array([[10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.3, 0, 0], [0.0, 8.0, -1.0, 0.7, 0.7, 1.8, 1.0, 0, 0],
                   [-20, -20, 0, 1, 1, 1, 0, 0, 0]])
    frame = _frame("s0", gt, ["car", "pedestrian", "barrier"])  # the barrier is not audited
    q = 5
    boxes = np.zeros((2, q, 10), dtype=np.float32)
    exact = normalize_bbox(torch.from_numpy(gt[:2])).numpy()
    far = exact[0].copy()
    far[0] += 30.0
    boxes[:, :, :] = far  # every query starts far away
    boxes[0, 3] = exact[0]  # layer 0: query 3 sits exactly on the car, query 1 on the pedestrian
    boxes[0, 1] = exact[1]
    boxes[1, 2] = exact[1]  # layer 1: only the pedestrian has a query on it
    logits = np.zeros((2, q, 2), dtype=np.float32)
    return frame, boxes, logits


def test_replay_frame_layers_iou_and_summary(tmp_path):
    frame, boxes, logits = _dump_arrays()
    np.savez(tmp_path / "d.npz", sample_token=np.array(["s0"]), boxes=boxes[None], logits=logits[None])
    dump = load_query_dump(tmp_path / "d.npz")
    rep = replay_frame(dump.frame("s0"), frame, CLASSES)
    assert rep.gt_index.tolist() == [0, 1]
    assert rep.matched_query[0].tolist() == [3, 1]
    assert rep.matched_query[1, 1] == 2 and rep.matched_query[1, 0] not in (2,)
    assert rep.matched_iou[0] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert rep.matched_iou[1, 0] == 0.0 and rep.useless.tolist() == [[False, False], [True, False]]
    assert rep.num_pos_per_layer.tolist() == [2, 2]
    summary = summarize_replays([rep, rep])
    car = summary[summary["class"] == "car"].set_index("layer")
    assert car.loc[0, "num_gt"] == 2 and car.loc[1, "num_useless"] == 2 and car.loc[1, "frac_useless"] == 1.0
    # TransFusion cost on the same dump (canonical boxes decoded from the queries) finds the same layer-0 match.
    tf = replay_frame(dump.frame("s0"), frame, CLASSES, "transfusion",
                      point_cloud_range=(-54, -54, -5, 54, 54, 3))
    assert tf.matched_query[0].tolist() == [3, 1]


def test_rectangular_fewer_queries_than_gt(tmp_path):
    frame, boxes, logits = _dump_arrays()
    rep = replay_frame(
        load_query_dump(_save(tmp_path, boxes[:, 3:4], logits[:, 3:4])).frame("s0"), frame, CLASSES)
    assert rep.num_pos_per_layer.tolist() == [1, 1]
    assert rep.matched_query[0].tolist() == [0, -1]  # the single query takes the car it sits on
    assert rep.useless[0, 1]


def _save(tmp_path, boxes, logits, name="d.npz"):
    path = tmp_path / name
    np.savez(path, sample_token=np.array(["s0"]), boxes=boxes[None], logits=logits[None])
    return path


def test_parquet_dump_equals_npz(tmp_path):
    _, boxes, logits = _dump_arrays()
    rows = []
    for layer in range(2):
        for q in range(boxes.shape[1]):
            rows.append({"sample_token": "s0", "layer": layer, "query": q,
                         **dict(zip(QUERY_BOX_COLUMNS, boxes[layer, q].tolist())),
                         **{f"logit_{c}": float(logits[layer, q, c]) for c in range(2)}})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "d.parquet")
    got = load_query_dump(tmp_path / "d.parquet")
    assert got.sample_tokens == ("s0",)
    np.testing.assert_array_equal(got.boxes[0], boxes)
    np.testing.assert_array_equal(got.logits[0], logits)
    pq.write_table(pa.Table.from_pandas(df.iloc[1:], preserve_index=False), tmp_path / "short.parquet")
    with pytest.raises(DataError, match="exactly once"):
        load_query_dump(tmp_path / "short.parquet")


def test_bad_dumps_raise_one_line_data_errors(tmp_path):
    _, boxes, logits = _dump_arrays()
    cases = {
        "missing": (tmp_path / "nope.npz", "no such file"),
        "shape": (_save(tmp_path, boxes[..., :9], logits, "a.npz"), "'boxes' must have shape"),
        "logits": (_save(tmp_path, boxes, logits[:, :2], "b.npz"), "'logits' must have shape"),
        "suffix": (tmp_path / "x.txt", "unknown format"),
    }
    (tmp_path / "x.txt").write_text("hi")
    np.savez(tmp_path / "obj.npz", sample_token=np.array(["s0"], dtype=object), boxes=boxes[None],
             logits=logits[None])
    cases["object"] = (tmp_path / "obj.npz", "str array")
    np.savez(tmp_path / "miss.npz", boxes=boxes[None])
    cases["keys"] = (tmp_path / "miss.npz", "missing array")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases["junk"] = (tmp_path / "junk.npz", "npz")
    for name, (path, msg) in cases.items():
        with pytest.raises(DataError, match=msg) as err:
            load_query_dump(path)
        assert "\n" not in str(err.value), name
    dump = load_query_dump(_save(tmp_path, boxes, logits))
    with pytest.raises(DataError, match="no entry for sample_token"):
        dump.frame("other")
    frame, _, _ = _dump_arrays()
    with pytest.raises(DataError, match="logit columns"):
        replay_frame(dump.frame("s0"), frame, ("car",))


def test_cli_style_error_is_one_line_exit_2(tmp_path):
    # What the CLI does with our errors (assignaudit.cli.app.cli_errors): one stderr line, exit 2, no traceback.
    import typer
    from typer.testing import CliRunner

    from assignaudit.cli.app import cli_errors

    app = typer.Typer()

    @app.command()
    @cli_errors
    def main(path: str) -> None:
        load_query_dump(path)

    res = CliRunner().invoke(app, [str(tmp_path / "nope.npz")])
    assert res.exit_code == 2
    assert "Traceback" not in res.output and "no such file" in res.output


def test_diverged_query_counts_as_useless(tmp_path):
    frame, boxes, logits = _dump_arrays()
    boxes = boxes.copy()
    boxes[:, :, :] = np.nan  # a diverged checkpoint: every query NaN
    rep = replay_frame(load_query_dump(_save(tmp_path, boxes, logits)).frame("s0"), frame, CLASSES)
    assert rep.num_pos_per_layer.tolist() == [2, 2] and rep.useless.all()
