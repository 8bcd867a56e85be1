"""`assignaudit yaw` end to end on the bundled fixture: injected flips/duplicates recovered exactly, AOE parity with
nuscenes-devkit's DetectionEval, the NMS sweep, reports and metadata, table inputs, and one test per bad input."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _json_tolerance import assert_same_json
from assignaudit.cli import app
from assignaudit.report import read_report
from assignaudit.schema import (
    NMS_SWEEP_COLUMNS, NMS_SWEEP_FILE, PREDICTIONS_COLUMNS, PREDICTIONS_FILE, YAW_HIST_COLUMNS, YAW_HIST_FILE,
    YAW_SUMMARY_COLUMNS, YAW_SUMMARY_FILE,
)
from assignaudit.yaw.analysis import YawOptions
from assignaudit.yaw.pipeline import bundled_predictions_path, run_yaw

REPO = Path(__file__).resolve().parents[1]
SHIPPED = bundled_predictions_path()
runner = CliRunner()


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(SHIPPED.read_text())


@pytest.fixture(scope="module")
def default_report():
    return run_yaw(options=YawOptions(nms_sweep=(0.01, 0.1, 0.2, 0.3, 0.5)))


def _input_index(sub: dict, pairs) -> set[int]:
    """[sample_token, box index in sample] -> position in file order."""
    offset, i = {}, 0
    for tok, boxes in sub["results"].items():
        offset[tok] = i
        i += len(boxes)
    return {offset[t] + k for t, k in pairs}


# ---------------------------------------------------------------------------------------------------------------------
# the shipped predictions
# ---------------------------------------------------------------------------------------------------------------------


def test_shipped_predictions_are_regenerated(tmp_path):
    spec = importlib.util.spec_from_file_location("make_predictions", REPO / "fixtures" / "make_predictions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "p.json"
    with contextlib.redirect_stdout(io.StringIO()):
        mod.main(["--out", str(out)])
    # Values rounded to 6 digits by the generator can land on either side of a rounding boundary: 1e-6 absolute.
    assert_same_json(json.loads(out.read_text()), json.loads(SHIPPED.read_text()), abs_=1.5e-6)


def test_injected_flips_and_duplicates_are_recovered_exactly(default_report, shipped):
    inj = shipped["meta"]["assignaudit_fixture"]
    p = default_report.tables.predictions
    assert set(p.loc[p.is_flip, "index"]) == _input_index(shipped, inj["flips"])
    dups = _input_index(shipped, inj["duplicates"])
    assert set(p.loc[p.is_duplicate, "index"]) == dups
    assert set(p.loc[p.is_duplicate_gt, "index"]) == dups  # the GT view agrees on this data
    fps = _input_index(shipped, inj["false_positives"])
    assert p.loc[p["index"].isin(fps), "matched_ann_token"].isna().all()
    s = default_report.tables.summary.set_index(["class", "band"])
    for cls, n in inj["counts"].items():
        row = s.loc[(cls, "all")]
        assert row.num_flips == n["flips"]
        assert row.num_dup_pre_nms == n["duplicates"]
        assert row.num_matched == n["copies"] == row.num_gt
        assert row.num_pred == n["copies"] + n["duplicates"] + n["false_positives"]
        assert row.num_swaps_90 == 0
        assert row.flip_rate == pytest.approx(n["flips"] / n["copies"])


def test_residuals_are_wrapped_pred_minus_gt(default_report, shipped):
    """Independent: the devkit's quaternion_yaw of the submission and of the annotation record."""
    from nuscenes.eval.common.utils import quaternion_yaw
    from pyquaternion import Quaternion

    from assignaudit.sources.open import open_source

    nusc = open_source().nusc
    boxes = [b for v in shipped["results"].values() for b in v]
    p = default_report.tables.predictions
    m = p[p.matched_ann_token.notna()].head(60)
    for r in m.itertuples():
        ann = nusc.get("sample_annotation", r.matched_ann_token)
        d = quaternion_yaw(Quaternion(boxes[r.index]["rotation"])) - quaternion_yaw(Quaternion(ann["rotation"]))
        want = math.atan2(math.sin(d), math.cos(d))
        assert abs(math.remainder(r.yaw_residual - want, 2 * math.pi)) < 1e-9
        assert -math.pi < r.yaw_residual <= math.pi


def test_nms_removes_injected_duplicates_and_sweep_is_monotone_here(default_report):
    s = default_report.tables.summary
    all_rows = s[s.band == "all"].set_index("class")
    # Same-size duplicates 0.15-0.3 m away overlap their twin with IoU > 0.2 except for 0.3 m traffic cones.
    big = all_rows.drop(index="traffic_cone")
    assert (big.num_dup_post_nms == 0).all() and (big.tp_lost_by_nms == 0).all()
    assert all_rows.loc["traffic_cone", "num_dup_post_nms"] > 0
    sweep = default_report.tables.nms_sweep
    assert list(sweep.columns) == list(NMS_SWEEP_COLUMNS)
    # On this data every duplicate cluster is an isolated pair, so greedy NMS is monotone: as the threshold
    # decreases, duplicates left never increase (not true in general, see test_yaw_core).
    for cls, g in sweep.groupby("class"):
        g = g.sort_values("nms_value", ascending=False)
        assert np.all(np.diff(g.num_dup_left.to_numpy()) <= 0), cls
        assert (g.tp_before == all_rows.loc[cls, "num_matched"]).all()
        assert (g.tp_after + g.tp_lost == g.tp_before).all()


def _devkit_orient_errors(nusc, sub: dict, split: str, tmp_path: Path) -> dict[str, float]:
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    path = tmp_path / "results.json"
    path.write_text(json.dumps(sub))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ev = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(path), split, str(tmp_path / "eval"),
                           verbose=False)
        metrics, _ = ev.evaluate()
    return {c: metrics.get_label_tp(c, "orient_err") for c in ev.cfg.class_names}


@pytest.mark.parametrize("coarse_scores", [False, True], ids=["scores", "tied-scores"])
def test_aoe_equals_detection_eval(shipped, tmp_path, coarse_scores):
    """DetectionEval itself on mini_val (a predefined split: the results must cover it exactly). With scores
    rounded to 0.1 most matches are tied, which exercises the devkit's reversed (score, index) order."""
    from assignaudit.sources.open import open_source

    source = open_source(split="mini_val")
    tokens = set(source.sample_tokens())
    sub = {"meta": shipped["meta"], "results": {t: copy.deepcopy(b) for t, b in shipped["results"].items()
                                                if t in tokens}}
    assert set(sub["results"]) == tokens
    if coarse_scores:
        for boxes in sub["results"].values():
            for b in boxes:
                b["detection_score"] = round(b["detection_score"], 1)
    want = _devkit_orient_errors(source.nusc, sub, "mini_val", tmp_path)
    path = tmp_path / "results.json"
    got = run_yaw(path, split="mini_val", nusc_filters=True).tables.aoe_nusc
    assert set(got) == set(want)
    for cls, v in want.items():
        if cls == "traffic_cone":
            assert math.isnan(v) and math.isnan(got[cls])
        else:
            assert got[cls] == pytest.approx(v, abs=1e-6), cls


# ---------------------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------------------


def test_cli_default_run_writes_reports_with_metadata(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["yaw", "--out", str(out), "--nms-sweep", "0.1,0.5", "--plot", str(tmp_path / "h.png")])
    assert res.exit_code == 0, res.output
    assert "car" in res.stdout and "flips" in res.stdout
    summary, meta = read_report(out / YAW_SUMMARY_FILE)
    assert list(summary.columns[: len(YAW_SUMMARY_COLUMNS)]) == list(YAW_SUMMARY_COLUMNS)
    assert meta["kind"] == "yaw" and meta["dataset_version"] == "v1.0-mini" and meta["split"] == "fixture_all"
    assert meta["predictions_sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert meta["options"]["match"] == "center" and meta["options"]["match_threshold"] == 2.0
    assert meta["torch_version"]
    preds, _ = read_report(out / PREDICTIONS_FILE)
    assert list(preds.columns[: len(PREDICTIONS_COLUMNS)]) == list(PREDICTIONS_COLUMNS)
    assert preds["index"].tolist() == list(range(len(preds)))
    hist, _ = read_report(out / YAW_HIST_FILE)
    assert list(hist.columns) == list(YAW_HIST_COLUMNS)
    # every matched prediction is counted once per band and once in "all"
    assert hist.loc[hist.band == "all", "count"].sum() == preds.matched_ann_token.notna().sum()
    assert hist.loc[hist.band != "all", "count"].sum() == preds.matched_ann_token.notna().sum()
    sweep, _ = read_report(out / NMS_SWEEP_FILE)
    assert sorted(sweep.nms_value.unique()) == [0.1, 0.5]
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_and_match_iou(tmp_path):
    res = runner.invoke(app, ["yaw", "--out", str(tmp_path), "--json", "--match", "iou", "--nms-class-agnostic",
                              "--dup-iou", "0.3"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["meta"]["options"]["match"] == "iou" and payload["meta"]["options"]["match_threshold"] == 0.5
    assert payload["meta"]["options"]["nms"]["class_agnostic"] is True
    car = next(r for r in payload["summary"] if r["class"] == "car" and r["band"] == "all")
    assert car["num_matched"] > 0.9 * car["num_gt"]


def test_cli_config_supplies_nms_defaults(tmp_path):
    from assignaudit.config import load_config

    pp = load_config("pcdet-nuscenes-pointpillars-multihead").post_processing
    res = runner.invoke(app, ["yaw", "--out", str(tmp_path), "--json", "--config",
                              "pcdet-nuscenes-pointpillars-multihead"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    nms = payload["meta"]["options"]["nms"]
    assert nms["thresh"] == pp.nms_thresh and nms["class_agnostic"] == (not pp.multi_classes_nms)
    assert payload["meta"]["config_sha256"]


def test_parquet_predictions_against_a_box_table(tmp_path):
    """Generic path: GT box table + LiDAR-frame prediction table, flips injected here by hand."""
    rng = np.random.default_rng(0)
    gt_rows, pred_rows = [], []
    for f in range(3):
        for k in range(6):
            x, y, yaw = 8.0 * k - 20, 5.0 * f, float(rng.uniform(-3, 3))
            gt_rows.append(dict(frame_id=f"f{f}", **{"class": "car"}, x=x, y=y, z=0.0, dx=4.0, dy=2.0, dz=1.5,
                                yaw=yaw))
            flipped = k == 0
            pred_rows.append(dict(frame_id=f"f{f}", **{"class": "car"}, score=0.9 - 0.01 * k, x=x + 0.1, y=y,
                                  z=0.0, dx=4.0, dy=2.0, dz=1.5, yaw=yaw + (math.pi if flipped else 0.2)))
    pd.DataFrame(gt_rows).to_parquet(tmp_path / "gt.parquet")
    pd.DataFrame(pred_rows).to_parquet(tmp_path / "pred.parquet")
    res = runner.invoke(app, ["yaw", "--boxes", str(tmp_path / "gt.parquet"), "--predictions",
                              str(tmp_path / "pred.parquet"), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    car = next(r for r in json.loads(res.stdout)["summary"] if r["band"] == "all")
    assert (car["num_matched"], car["num_flips"]) == (18, 3)
    # 15 residuals of exactly 0.2 rad and 3 of pi: the mean by hand
    assert car["mean_abs_yaw_err"] == pytest.approx((15 * 0.2 + 3 * math.pi) / 18)


# ---------------------------------------------------------------------------------------------------------------------
# bad input: one line on stderr naming the record, exit 2, no traceback
# ---------------------------------------------------------------------------------------------------------------------


def _bad(tmp_path, shipped, mutate, extra=()) -> str:
    sub = copy.deepcopy(shipped)
    mutate(sub)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(sub))
    res = runner.invoke(app, ["yaw", "--predictions", str(path), "--out", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


def _first(sub):
    tok = next(iter(sub["results"]))
    return tok, sub["results"][tok]


def test_bad_missing_key(tmp_path, shipped):
    def mutate(sub):
        tok, boxes = _first(sub)
        del boxes[3]["velocity"]
    tok, _ = _first(shipped)
    msg = _bad(tmp_path, shipped, mutate)
    assert f"sample {tok} box 3" in msg and "'velocity'" in msg


def test_bad_wrong_type(tmp_path, shipped):
    def mutate(sub):
        _, boxes = _first(sub)
        boxes[5]["translation"] = ["1.0", 2.0, 3.0]
    tok, _ = _first(shipped)
    msg = _bad(tmp_path, shipped, mutate)
    assert f"sample {tok} box 5" in msg and "'translation'" in msg


def test_bad_score_type(tmp_path, shipped):
    def mutate(sub):
        _, boxes = _first(sub)
        boxes[0]["detection_score"] = "0.9"
    msg = _bad(tmp_path, shipped, mutate)
    assert "box 0" in msg and "'detection_score'" in msg


def test_bad_non_unit_quaternion(tmp_path, shipped):
    def mutate(sub):
        _, boxes = _first(sub)
        boxes[7]["rotation"] = [v * 1.002 for v in boxes[7]["rotation"]]
        boxes[9]["rotation"] = [v * 1.01 for v in boxes[9]["rotation"]]
    tok, _ = _first(shipped)
    msg = _bad(tmp_path, shipped, mutate)
    assert f"sample {tok} box 7" in msg and "'rotation'" in msg and "unit quaternion" in msg


def test_slightly_off_quaternion_is_accepted(tmp_path, shipped):
    sub = copy.deepcopy(shipped)
    _, boxes = _first(sub)
    boxes[7]["rotation"] = [v * 1.0005 for v in boxes[7]["rotation"]]
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(sub))
    res = runner.invoke(app, ["yaw", "--predictions", str(path), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output


def test_bad_unknown_class(tmp_path, shipped):
    def mutate(sub):
        _, boxes = _first(sub)
        boxes[2]["detection_name"] = "van"
    tok, _ = _first(shipped)
    msg = _bad(tmp_path, shipped, mutate)
    assert f"sample {tok} box 2" in msg and "'detection_name'" in msg and "van" in msg


def test_bad_unknown_sample_token(tmp_path, shipped):
    def mutate(sub):
        tok, boxes = _first(sub)
        sub["results"]["not-a-token"] = [dict(b, sample_token="not-a-token") for b in boxes[:2]]
    msg = _bad(tmp_path, shipped, mutate)
    assert "sample not-a-token box 0" in msg and "'sample_token'" in msg and "not a sample" in msg


def test_bad_sample_token_disagrees_with_key(tmp_path, shipped):
    def mutate(sub):
        _, boxes = _first(sub)
        boxes[1]["sample_token"] = "elsewhere"
    msg = _bad(tmp_path, shipped, mutate)
    assert "box 1" in msg and "'sample_token'" in msg


def test_bad_more_than_500_boxes_with_nusc_filters(tmp_path, shipped):
    def mutate(sub):
        tok, boxes = _first(sub)
        sub["results"][tok] = (boxes * (501 // len(boxes) + 1))[:501]
    tok, _ = _first(shipped)
    msg = _bad(tmp_path, shipped, mutate, extra=("--nusc-filters",))
    assert f"sample {tok} box 500" in msg and "500" in msg


def test_bad_not_a_submission(tmp_path, shipped):
    msg = _bad(tmp_path, shipped, lambda sub: sub.pop("results"))
    assert "'results'" in msg


def test_bad_options_and_files(tmp_path):
    cases = [
        (["--predictions", str(tmp_path / "missing.json")], "not found"),
        (["--match", "hungarian"], "--match"),
        (["--nms-sweep", "0.1,abc"], "--nms-sweep"),
        (["--boxes", str(tmp_path / "x.parquet"), "--nusc-filters"], "--predictions is required"),
        (["--nms-type", "soft"], "--nms-type"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, ["yaw", "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, res.stderr)
