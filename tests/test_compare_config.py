"""`count --config A --compare-config B` on the bundled fixture."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assignaudit import schema
from assignaudit.assign.heatmap import HeatmapParams
from assignaudit.bands import ALL_BANDS
from assignaudit.cli import app
from assignaudit.compare_configs import run_compare
from assignaudit.config import load_config
from assignaudit.count import CountOptions, run_count
from assignaudit.errors import ConfigError
from assignaudit.report import read_report
from assignaudit.sources.open import open_source

PRESET = "pcdet-nuscenes-pointpillars-multihead"
OPTS = CountOptions(seed=5, max_frames=4, device="cpu")
runner = CliRunner()


def with_thresholds(config, cls, matched, unmatched):
    sets = tuple(dataclasses.replace(s, matched_threshold=matched, unmatched_threshold=unmatched)
                 if s.class_name == cls else s for s in config.anchors.anchor_sets)
    return dataclasses.replace(config, name=f"{config.name}-{cls}", anchors=dataclasses.replace(config.anchors,
                                                                                               anchor_sets=sets))


@pytest.fixture(scope="module")
def self_compare():
    cfg = load_config(PRESET)
    return cfg, run_compare(cfg, cfg, open_source(), OPTS)


def test_preset_vs_itself_all_differences_zero_and_equal_to_count(self_compare):
    cfg, res = self_compare
    t = res.table
    assert tuple(t.columns) == schema.COMPARE_COLUMNS
    diffs = [c for c in t.columns if c.endswith("_diff")]
    nan_ok = t[diffs].isna() & t[[c.replace("_diff", "_a") for c in diffs]].isna().to_numpy()
    assert ((t[diffs].to_numpy() == 0) | nan_ok.to_numpy()).all()
    assert t.in_a.all() and t.in_b.all()
    # the shared replay with A's own filters on top is exactly `count --config A`
    alone = run_count(cfg, open_source(), OPTS).summary
    pd.testing.assert_frame_equal(res.summary_a, alone)
    a = t[t.band == ALL_BANDS].set_index("class")
    s = alone[alone.band == ALL_BANDS].set_index("class")
    np.testing.assert_array_equal(a.num_pos_a.to_numpy(), s.num_pos.to_numpy())
    np.testing.assert_allclose(a.frac_gt_zero_pos_a, s.num_gt_zero_pos / s.num_gt)


def test_changed_threshold_shows_in_its_class_only(self_compare):
    cfg, base = self_compare
    # Car positives at IoU >= 0.3 instead of 0.6 and negatives below 0.2 instead of 0.45: more car positives and
    # fewer car negatives, nothing else moves (pcdet is class-aware: one set per class).
    b = with_thresholds(cfg, "car", 0.3, 0.2)
    res = run_compare(cfg, b, open_source(), OPTS)
    t = res.table.set_index(["class", "band"])
    car = t.loc[("car", ALL_BANDS)]
    assert car.num_pos_diff > 0 and car.num_neg_diff < 0 and car.num_gt_diff == 0
    others = res.table[res.table["class"] != "car"]
    assert (others.filter(like="_diff").fillna(0).to_numpy() == 0).all()
    # A's side is the same as comparing A with itself
    pd.testing.assert_frame_equal(res.summary_a, base.summary_a)
    assert res.metadata["config_a"]["sha256"] != res.metadata["config_b"]["sha256"]


def test_classes_matched_by_name_and_missing_class_is_nan(self_compare):
    cfg, _ = self_compare
    keep = [c for c in reversed(cfg.class_names) if c != "bus"]  # another order, and no bus
    b = dataclasses.replace(cfg, name="no-bus", class_names=tuple(keep), anchors=dataclasses.replace(
        cfg.anchors, anchor_sets=tuple(s for s in reversed(cfg.anchors.anchor_sets) if s.class_name != "bus")))
    for pipeline in ("a", "own"):
        res = run_compare(cfg, b, open_source(), OPTS, pipeline=pipeline)
        t = res.table.set_index(["class", "band"])
        assert list(res.table["class"].unique()) == list(cfg.class_names)  # A's order
        bus = t.loc[("bus", ALL_BANDS)]
        assert not bus.in_b and np.isnan(bus.num_pos_b) and np.isnan(bus.num_pos_diff) and bus.num_pos_a > 0
        rest = res.table[res.table["class"] != "bus"].filter(like="_diff").fillna(0).to_numpy()
        if pipeline == "a":
            # one shared replay and class-aware pcdet anchors (buses are no other class's GT): all else equal
            assert (rest == 0).all()
        else:
            # B's own gt_sampling skips the bus group (DataBaseSampler keeps only CLASS_NAMES groups), so its
            # pastes of the other classes differ too: exactly what the shared pipeline "a" takes out
            assert (rest != 0).any()


def test_b_range_filter_applied_on_top_of_a_replay(self_compare):
    cfg, base = self_compare
    # B keeps only centres with |x|, |y| <= 20 m (pcdet inclusive filter): BEV distance <= 20 * sqrt(2) = 28.3 m, so
    # nothing of B's in the bands from 30 m on; A's own GT there are unchanged.
    b = dataclasses.replace(cfg, name="near", point_cloud_range=(-20.0, -20.0, -5.0, 20.0, 20.0, 3.0))
    res = run_compare(cfg, b, open_source(), OPTS)
    pd.testing.assert_frame_equal(res.summary_a, base.summary_a)
    t = res.table
    far = t[t.band.isin(["30-40", "40-50", "50+"])]
    assert (far.num_gt_b == 0).all() and far.num_gt_a.sum() > 0
    near = t[t.band == "0-20"]
    assert (near.num_gt_b <= near.num_gt_a).all()


def test_any_family_and_bad_pipeline():
    cfg = load_config(PRESET)
    hp = HeatmapParams((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2), 8,
                       (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
                        ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone")), cfg.class_names)
    center = dataclasses.replace(cfg, name="center", head="center", heatmap=hp, anchors=None, assigner=None)
    res = run_compare(cfg, center, open_source(), CountOptions(seed=0, max_frames=2, device="cpu"))
    a = res.table[res.table.band == ALL_BANDS]
    assert (a.num_ignore_b == 0).all() and (a.num_neg_b + a.num_pos_b == 180 * 180 * 2).all()
    assert res.metadata["counting"]["b"]["family"] == "center"
    with pytest.raises(ConfigError, match="--compare-pipeline"):
        run_compare(cfg, cfg, open_source(), OPTS, pipeline="b")


def test_cli_compare_json_and_report(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["count", "--quiet", "--out", str(out), "--max-frames", "2", "--json",
                              "--compare-config", PRESET, "--set", "anchors.9.matched_threshold", "0.5"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["meta"]["config_a"]["name"] == PRESET and payload["meta"]["pipeline"] == "a"
    table, meta = read_report(out / schema.COMPARE_FILE)
    assert tuple(table.columns) == schema.COMPARE_COLUMNS and meta["kind"] == "compare"
    assert len(meta["config_a"]["sha256"]) == 64 and meta["config_a"]["sha256"] != meta["config_b"]["sha256"]
    assert meta["configs"]["b"]["name"] == PRESET
    assert pq.read_schema(out / schema.COMPARE_FILE).field("num_pos_diff").type == "double"
    text = runner.invoke(app, ["count", "--quiet", "--out", str(tmp_path / "t"), "--max-frames", "1",
                               "--compare-config", PRESET])
    assert text.exit_code == 0 and "B-A" in text.stdout and "traffic_cone" in text.stdout


@pytest.mark.parametrize("args, needle", [
    (["--compare-pipeline", "mine", "--compare-config", PRESET], "--compare-pipeline"),
    (["--compare-config", "no-such-preset"], "no-such-preset"),
    (["--cfg-options", "model.x=1"], "--cfg-options"),
    (["--cfg-options", "novalue"], "KEY=VALUE"),
    (["--queries", "nope.npz"], "--queries is for query heads"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, args, needle):
    res = runner.invoke(app, ["count", "--quiet", "--out", str(tmp_path / "o"), "--max-frames", "1", *args])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], res.stderr
