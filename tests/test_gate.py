"""`assignaudit gate` end to end on synthetic report directories written with `assignaudit.report`.

Every expected verdict is worked out by hand from the numbers written into the reports here.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assignaudit import schema
from assignaudit.cli import app
from assignaudit.errors import ReportError
from assignaudit.gate import Policy, Status, run_gate
from assignaudit.report import base_metadata, config_sha256, write_parquet

BANDS = (("0-20", 0.0, 20.0), ("20-30", 20.0, 30.0), ("30-40", 30.0, 40.0), ("40-50", 40.0, 50.0),
         ("50+", 50.0, float("inf")))
CLASSES = ("car", "pedestrian", "traffic_cone")
# Per band: GT, positives, GT with zero positives. Every band of a class is the same, so the `all` row is 5x.
BASE_CELL = {"car": (400, 1200, 4), "pedestrian": (100, 300, 2), "traffic_cone": (100, 300, 5)}

runner = CliRunner()


def summary_table(cells: dict[tuple[str, str], tuple[int, int, int]] | None = None,
                  with_all: bool = True, drop: tuple[tuple[str, str], ...] = ()) -> pd.DataFrame:
    """A SUMMARY_COLUMNS table: BASE_CELL everywhere except ``cells[(class, band)] = (gt, pos, zero)``."""
    cells = cells or {}
    rows = []
    for cls in CLASSES:
        tot = [0, 0, 0]
        for band, lo, hi in BANDS:
            gt, pos, zero = cells.get((cls, band), BASE_CELL[cls])
            tot = [tot[0] + gt, tot[1] + pos, tot[2] + zero]
            if (cls, band) not in drop:
                rows.append((cls, band, lo, hi, gt, pos, 50 * pos, pos // 10, gt, zero, pos / gt if gt else None,
                             0.45, 0.6))
        if with_all:
            gt, pos, zero = tot
            rows.append((cls, "all", 0.0, float("inf"), gt, pos, 50 * pos, pos // 10, gt, zero,
                         pos / gt if gt else None, 0.45, 0.6))
    return pd.DataFrame(rows, columns=list(schema.SUMMARY_COLUMNS))


def band_meta(edges=(0, 20, 30, 40, 50), attribution="GT: band of the GT; negatives: band of the anchor") -> dict:
    names = [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]}+"]
    return {"edges_m": [float(e) for e in edges], "names": names, "attribution": attribution}


def meta(kind: str = "count", **changes) -> dict:
    """Metadata shaped like `count`'s (dataset nested, bands a dict) or `yaw`'s (flat fields)."""
    cfg = {"name": "pointpillars", "matched_threshold": changes.pop("car_threshold", 0.6)}
    split, seed = changes.pop("split", "mini_val"), changes.pop("seed", 0)
    if kind == "yaw":
        fields = dict(dataset_kind="nuscenes", dataroot="/data/nuscenes", dataset_version="v1.0-mini", split=split,
                      num_samples=81, predictions_file="results_nusc.json", predictions_sha256="ab" * 32,
                      band_edges_m=[0.0, 20.0, 30.0, 40.0, 50.0], config="configs/pointpillars.yaml",
                      config_sha256=config_sha256(cfg))
    else:
        fields = dict(
            config=cfg, config_sha256=config_sha256(cfg), config_name="pointpillars", config_source="preset",
            dataset={"kind": "nuscenes", "dataroot": "/data/nuscenes", "version": "v1.0-mini", "split": split,
                     "num_samples": 81},
            seed=seed, replays=1, augment=True, bands=band_meta(),
            class_names=list(changes.pop("class_names", CLASSES)), device="cpu",
        )
    fields.update(changes)
    return base_metadata(kind, **fields)


def write_count(out: Path, table: pd.DataFrame | None = None, **meta_changes) -> Path:
    write_parquet(out / schema.SUMMARY_FILE, summary_table() if table is None else table,
                  meta("count", **meta_changes))
    return out


def yaw_table(flip: dict[str, float] | None = None, aoe: dict[str, float] | None = None) -> pd.DataFrame:
    flip, aoe = flip or {}, aoe or {}
    rows = []
    for cls in CLASSES:
        for band in [b for b, _, _ in BANDS] + ["all"]:
            n = 500 if band == "all" else 100
            rate = flip.get(cls, 0.01)
            rows.append({"class": cls, "band": band, "num_pred": n, "num_gt": n, "num_matched": n,
                         "mean_abs_yaw_err": 0.1, "median_abs_yaw_err": 0.05, "num_flips": int(rate * n),
                         "flip_rate": rate, "num_swaps_90": 0,
                         "aoe_nusc": aoe.get(cls, 0.2) if band == "all" else float("nan"), "num_dup_pre_nms": 10,
                         "dup_rate_pre_nms": 0.1, "num_dup_post_nms": 1, "dup_rate_post_nms": 0.01,
                         "tp_lost_by_nms": 0})
    return pd.DataFrame(rows, columns=list(schema.YAW_SUMMARY_COLUMNS))


def write_yaw(out: Path, table: pd.DataFrame | None = None) -> Path:
    write_parquet(out / schema.YAW_SUMMARY_FILE, yaw_table() if table is None else table, meta("yaw"))
    return out


def gate(*args: str):
    return runner.invoke(app, ["gate", *map(str, args)])


def gate_json(*args) -> tuple[int, dict]:
    res = gate(*args, "--json")
    return res.exit_code, json.loads(res.stdout)


def fails(doc: dict) -> set[tuple[str, str, str]]:
    return {(v["rule"], v["class"], v["band"]) for v in doc["verdicts"] if v["status"] == "fail"}


def assert_one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_count(tmp_path / "baseline")


# ---- pass / fail ---------------------------------------------------------------------------------------------------


def test_identical_rerun_passes(base, tmp_path):
    cur = write_count(tmp_path / "current")
    res = gate(base, cur)
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.stdout
    code, doc = gate_json(base, cur)
    assert code == 0 and doc["passed"] is True and doc["num_violations"] == 0
    # every (class, band) cell is compared: 3 classes x (5 bands + all)
    cells = {(v["class"], v["band"]) for v in doc["verdicts"]}
    assert len(cells) == 3 * 6
    # without violations the rows follow the class list, then the bands by distance with `all` last
    order = list(dict.fromkeys((v["class"], v["band"]) for v in doc["verdicts"]))
    assert order == [(c, b) for c in CLASSES for b in [b for b, _, _ in BANDS] + ["all"]]


def test_traffic_cone_drop_in_one_band_fails_naming_class_and_band(base, tmp_path):
    # cones 30-40: 300 -> 240 positives = -20 % (-19.3 % after 2 tie positives) > 10 %;
    # pos/GT 3.0 -> 2.4 likewise; the class total 1500 -> 1440 is only -4 % and passes.
    cur = write_count(tmp_path / "current", summary_table({("traffic_cone", "30-40"): (100, 240, 5)}))
    res = gate(base, cur)
    assert res.exit_code == 1, res.output
    fail_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("FAIL ")]
    assert fail_lines and all("traffic_cone [30-40]" in ln for ln in fail_lines)
    code, doc = gate_json(base, cur)
    assert code == 1
    assert fails(doc) == {("max_pos_drop", "traffic_cone", "30-40"), ("max_pos_per_gt_drop", "traffic_cone", "30-40")}
    assert doc["verdicts"][0]["status"] == "fail"  # violations first


def test_car_threshold_change_lowering_car_positives_fails(base, tmp_path):
    # a stricter car matched_threshold: car positives 1200 -> 1000 per band (-16.7 %), all 6000 -> 5000;
    # the config hash changes, which is shown, not refused.
    cur = write_count(tmp_path / "current",
                      summary_table({("car", b): (400, 1000, 4) for b, _, _ in BANDS}), car_threshold=0.7)
    code, doc = gate_json(base, cur)
    assert code == 1
    assert {c for _, c, _ in fails(doc)} == {"car"}
    assert {b for r, c, b in fails(doc) if r == "max_pos_drop"} == {b for b, _, _ in BANDS} | {"all"}
    sha = next(p for p in doc["provenance"] if p["field"] == "config_sha256")
    assert sha["required"] is False and sha["matches"] is False


def test_tie_tolerance_absorbs_a_tie_flip(base, tmp_path):
    # pedestrian 0-20: 300 -> 298 positives (a forced-match tie resolved differently). With --max-pos-drop 0.5%
    # the raw drop 2/300 = 0.67 % fails; the default tie tolerance of 2 positives absorbs it.
    cur = write_count(tmp_path / "current", summary_table({("pedestrian", "0-20"): (100, 298, 2)}))
    assert gate(base, cur, "--max-pos-drop", "0.5%", "--tie-tolerance", "0").exit_code == 1
    assert gate(base, cur, "--max-pos-drop", "0.5%").exit_code == 0
    # 3 positives is one more than the tolerance: (3 - 2) / 300 = 0.33 % < 0.5 % still passes, 5 does not
    cur5 = write_count(tmp_path / "current5", summary_table({("pedestrian", "0-20"): (100, 295, 2)}))
    code, doc = gate_json(base, cur5, "--max-pos-drop", "0.5%", "--max-pos-per-gt-drop", "off")
    assert code == 1 and fails(doc) == {("max_pos_drop", "pedestrian", "0-20")}


def test_min_count_floor_keeps_small_cells_unjudged(tmp_path):
    cells = {("pedestrian", "50+"): (10, 15, 0)}
    base = write_count(tmp_path / "b", summary_table(cells))
    cur = write_count(tmp_path / "c", summary_table({("pedestrian", "50+"): (10, 9, 0)}))
    # 15 -> 9 is -40 %, but 15 positives are below the default floor of 20 (and 10 GT for pos/GT)
    code, doc = gate_json(base, cur)
    assert code == 0
    skipped = {(v["rule"], v["band"]) for v in doc["verdicts"] if v["status"] == "skip"}
    assert ("max_pos_drop", "50+") in skipped and ("max_pos_per_gt_drop", "50+") in skipped
    code, doc = gate_json(base, cur, "--min-count", "10")
    assert ("max_pos_drop", "pedestrian", "50+") in fails(doc)


def test_zero_positive_increase_and_zero_positive_class(base, tmp_path):
    # car 20-30: 4 -> 7 GT without positives (+3 > 2); pedestrian 0-20: 2 -> 4 (+2, allowed)
    cur = write_count(tmp_path / "current", summary_table({("car", "20-30"): (400, 1200, 7),
                                                           ("pedestrian", "0-20"): (100, 300, 4)}))
    code, doc = gate_json(base, cur)
    # the class totals move too: car all 20 -> 23 (+3) fails, pedestrian all 10 -> 12 (+2) passes
    assert fails(doc) == {("max_zero_pos_increase", "car", "20-30"), ("max_zero_pos_increase", "car", "all")}
    assert gate(base, cur, "--max-zero-pos-increase", "3").exit_code == 0

    # OpenPCDet #382: a class keeps its GT but gets no positives at all
    dead = write_count(tmp_path / "dead", summary_table({("pedestrian", b): (100, 0, 100) for b, _, _ in BANDS}))
    res = gate(dead, dead)  # identical reports: only the absolute zero-positive-class rule can fire
    assert res.exit_code == 1
    assert "pedestrian [all] fail_on_zero_pos_class" in res.stdout
    assert gate(dead, dead, "--no-fail-on-zero-pos-class").exit_code == 0


def test_exit_zero_reports_but_does_not_fail(base, tmp_path):
    cur = write_count(tmp_path / "current", summary_table({("traffic_cone", "30-40"): (100, 240, 5)}))
    res = gate(base, cur, "--exit-zero")
    assert res.exit_code == 0
    assert "FAIL traffic_cone [30-40]" in res.stdout and "FAILED" in res.stdout
    # input errors still exit 2
    assert_one_line_error(gate(base, tmp_path / "nope", "--exit-zero"), "nope")


# ---- policy --------------------------------------------------------------------------------------------------------


def test_policy_overrides_a_default_and_flags_win_over_the_policy(base, tmp_path):
    cur = write_count(tmp_path / "current", summary_table({("car", b): (400, 1020, 4) for b, _, _ in BANDS}))
    policy = tmp_path / "gate.yaml"
    policy.write_text("rules:\n  max_pos_drop: 20%\n  max_pos_per_gt_drop: 20%\n")
    # car -15 %: fails the 10 % default, passes the policy's 20 %, fails again with the flag
    assert gate(base, cur).exit_code == 1
    assert gate(base, cur, "--policy", policy).exit_code == 0
    code, doc = gate_json(base, cur, "--policy", policy, "--max-pos-drop", "10%")
    assert code == 1 and {r for r, _, _ in fails(doc)} == {"max_pos_drop"}
    assert doc["policy"] == str(policy)


def test_per_class_and_per_band_overrides(base, tmp_path):
    # cones -20 % in 30-40, car -15 % in 50+
    cur = write_count(tmp_path / "current", summary_table({("traffic_cone", "30-40"): (100, 240, 5),
                                                           ("car", "50+"): (400, 1020, 4)}))
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "rules:\n  max_pos_per_gt_drop: off\n"
        "overrides:\n"
        "  - class: traffic_cone\n    max_pos_drop: 25%\n"  # cones are noisy: 25 % allowed
        "  - band: 50+\n    max_pos_drop: 20%\n"  # far band: 20 %
    )
    assert gate_json(base, cur, "--policy", policy)[0] == 0
    # a (class, band) override is more specific than the class override
    policy.write_text(policy.read_text() + "  - class: traffic_cone\n    band: 30-40\n    max_pos_drop: 5%\n")
    code, doc = gate_json(base, cur, "--policy", policy)
    assert code == 1 and fails(doc) == {("max_pos_drop", "traffic_cone", "30-40")}
    # per-cell limits are reported
    v = next(v for v in doc["verdicts"] if (v["rule"], v["class"], v["band"]) == ("max_pos_drop", "car", "50+"))
    assert v["threshold"] == pytest.approx(0.20) and v["status"] == "pass"


def test_bad_policies_exit_2_with_one_line(base, tmp_path):
    policy = tmp_path / "gate.yaml"
    policy.write_text("rules: [unclosed\n")
    assert_one_line_error(gate(base, base, "--policy", policy), "not valid YAML")
    policy.write_text("rules:\n  max_pos_drop: 10\n")
    assert_one_line_error(gate(base, base, "--policy", policy), "rules.max_pos_drop", "did you mean 10%")
    policy.write_text("overrides:\n  - class: trafic_cone\n    max_pos_drop: 30%\n")
    assert_one_line_error(gate(base, base, "--policy", policy), "trafic_cone")
    assert_one_line_error(gate(base, base, "--policy", tmp_path / "missing.yaml"), "missing.yaml")
    assert_one_line_error(gate(base, base, "--max-pos-drop", "lots"), "--max-pos-drop")


# ---- refusing bad or mismatched input ------------------------------------------------------------------------------


def test_text_file_renamed_parquet_exits_2(base, tmp_path):
    bogus = tmp_path / "bogus" / schema.SUMMARY_FILE
    bogus.parent.mkdir()
    bogus.write_text("class,band,num_pos\ncar,0-20,12\n")
    assert_one_line_error(gate(base, bogus.parent), "not a readable Parquet file")
    assert_one_line_error(gate(bogus, base), "not a readable Parquet file")


def test_foreign_parquet_without_metadata_exits_2(base, tmp_path):
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.Table.from_pandas(summary_table(), preserve_index=False), foreign)
    assert_one_line_error(gate(base, foreign), "not an assignaudit report", "foreign.parquet")


def test_missing_columns_exit_2(base, tmp_path):
    cur = write_count(tmp_path / "current", summary_table().drop(columns=["num_gt_zero_pos", "pos_per_gt"]))
    assert_one_line_error(gate(base, cur), "missing columns: num_gt_zero_pos, pos_per_gt")


def test_other_bad_inputs_exit_2(base, tmp_path):
    assert_one_line_error(gate(base, tmp_path / "absent"), "report not found")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(gate(base, tmp_path / "empty"), "no summary.parquet or yaw_summary.parquet")
    # objects.parquet is an assignaudit count report, but not a summary
    objects = tmp_path / "objects.parquet"
    write_parquet(objects, pd.DataFrame({c: [] for c in schema.OBJECTS_COLUMNS}), meta("count"))
    assert_one_line_error(gate(base, objects), "missing columns")
    # a newer schema version
    newer = tmp_path / "newer"
    write_parquet(newer / schema.SUMMARY_FILE, summary_table(), {**meta("count"), "schema_version": 99})
    assert_one_line_error(gate(base, newer), "schema version 99")
    # a negative count
    neg = summary_table()
    neg.loc[0, "num_pos"] = -1
    assert_one_line_error(gate(base, write_count(tmp_path / "neg", neg)), "'num_pos'")
    # duplicated rows
    dup = pd.concat([summary_table(), summary_table().iloc[:1]], ignore_index=True)
    assert_one_line_error(gate(base, write_count(tmp_path / "dup", dup)), "duplicated row for class 'car'")
    # --md into a directory cannot be written
    assert_one_line_error(gate(base, base, "--md", tmp_path), "--md")
    with pytest.raises(ReportError):
        run_gate(base, tmp_path / "absent")


@pytest.mark.parametrize("change, field", [({"split": "mini_train"}, "dataset.split"), ({"seed": 1}, "seed"),
                                           ({"replays": 4}, "replays"),
                                           ({"class_names": ("car", "pedestrian")}, "class_names")])
def test_mismatched_provenance_exits_2_unless_allowed(base, tmp_path, change, field):
    cur = write_count(tmp_path / "current", **change)
    assert_one_line_error(gate(base, cur), field, "--allow-mismatch")
    code, doc = gate_json(base, cur, "--allow-mismatch")
    assert code == 0, doc["notes"]
    assert any(field in n for n in doc["notes"])
    assert any(p["field"] == field and not p["matches"] for p in doc["provenance"])


def test_allowed_band_mismatch_compares_only_common_bands(base, tmp_path):
    table = summary_table()
    far = table[table["band"].isin(["40-50", "50+"])].groupby("class", as_index=False)[["num_gt", "num_pos"]].sum()
    table = table[~table["band"].isin(["40-50", "50+"])]
    extra = summary_table().query("band == '50+'").assign(band="40+", band_lo=40.0)
    extra = extra.drop(columns=["num_gt", "num_pos"]).merge(far, on="class")
    cur = write_count(tmp_path / "current", pd.concat([table, extra[table.columns]]),
                      bands=band_meta((0, 20, 30, 40)))
    assert_one_line_error(gate(base, cur), "bands")
    code, doc = gate_json(base, cur, "--allow-mismatch")
    assert code == 0
    assert {v["band"] for v in doc["verdicts"]} == {"0-20", "20-30", "30-40", "all"}
    assert any("bands in one report only, not compared: 40+, 40-50, 50+" in n for n in doc["notes"])


def test_a_different_dataroot_or_band_wording_is_not_a_mismatch(base, tmp_path):
    cur = write_count(tmp_path / "current", dataset={"kind": "nuscenes", "dataroot": "/runner/work/nuscenes",
                                                     "version": "v1.0-mini", "split": "mini_val", "num_samples": 81},
                      bands=band_meta(attribution="reworded in a later version"))
    code, doc = gate_json(base, cur)
    assert code == 0
    root = next(p for p in doc["provenance"] if p["field"] == "dataset.dataroot")
    assert root["required"] is False and root["matches"] is False


def test_yaw_provenance_uses_the_flat_yaw_metadata(base, tmp_path):
    write_yaw(base)
    cur = write_count(tmp_path / "current")
    write_parquet(cur / schema.YAW_SUMMARY_FILE, yaw_table(), meta("yaw", split="mini_train"))
    assert_one_line_error(gate(base, cur), "yaw reports", "dataset.split")


# ---- shapes of the input -------------------------------------------------------------------------------------------


def test_summary_files_instead_of_directories(base, tmp_path):
    cur = write_count(tmp_path / "current", summary_table({("traffic_cone", "30-40"): (100, 240, 5)}))
    code, doc = gate_json(base / schema.SUMMARY_FILE, cur / schema.SUMMARY_FILE)
    assert code == 1 and {c for _, c, _ in fails(doc)} == {"traffic_cone"}


def test_a_row_missing_on_one_side_counts_as_zero(base, tmp_path):
    # the current report has no car 0-20 row: 1200 positives -> 0
    cur = write_count(tmp_path / "current", summary_table({("car", "0-20"): (0, 0, 0)}, drop=(("car", "0-20"),)))
    code, doc = gate_json(base, cur)
    assert code == 1 and ("max_pos_drop", "car", "0-20") in fails(doc)
    assert any("no current row for car 0-20" in n for n in doc["notes"])


def test_all_rows_are_synthesised_when_absent(tmp_path):
    dead = summary_table({("pedestrian", b): (100, 0, 100) for b, _, _ in BANDS}, with_all=False)
    rep = write_count(tmp_path / "r", dead)
    result = run_gate(rep, rep, Policy())
    v = next(v for v in result.verdicts if v.rule == "fail_on_zero_pos_class" and v.class_name == "pedestrian")
    assert v.band == "all" and v.status is Status.FAIL
    car_all = next(v for v in result.verdicts if (v.rule, v.class_name, v.band) == ("max_pos_drop", "car", "all"))
    assert car_all.baseline == 5 * 1200


def test_yaw_flip_rate_ceiling(base, tmp_path):
    write_yaw(base)
    cur = write_yaw(write_count(tmp_path / "current"), yaw_table({"pedestrian": 0.05}))
    assert gate(base, cur).exit_code == 0  # the flip-rate rule is off by default
    code, doc = gate_json(base, cur, "--max-flip-rate", "0.02")
    assert code == 1
    assert fails(doc) == {("max_flip_rate", "pedestrian", b) for b, _, _ in BANDS} | {
        ("max_flip_rate", "pedestrian", "all")}
    flip = next(v for v in doc["verdicts"] if v["rule"] == "max_flip_rate" and v["status"] == "fail")
    assert flip["baseline"] == pytest.approx(0.01) and flip["current"] == pytest.approx(0.05)
    # the baseline has a yaw report, a current without one cannot be judged
    assert_one_line_error(gate(base, write_count(tmp_path / "noyaw")), "yaw")
    # a current yaw report without a baseline one: the ceilings are still judged
    code, doc = gate_json(write_count(tmp_path / "onlycount"), cur, "--max-flip-rate", "2%")
    assert code == 1 and {c for _, c, _ in fails(doc)} == {"pedestrian"}
    assert any("no baseline report" in n for n in doc["notes"])


def test_yaw_aoe_increase_and_duplicate_rate(base, tmp_path):
    write_yaw(base)
    # car AOE 0.2 -> 0.3 rad (+0.1 > 0.05); every class keeps a 1 % duplicate rate after NMS
    cur = write_yaw(write_count(tmp_path / "current"), yaw_table(aoe={"car": 0.3}))
    code, doc = gate_json(base, cur, "--max-aoe-increase", "0.05")
    assert code == 1 and fails(doc) == {("max_aoe_increase", "car", "all")}
    # AOE exists only in the `all` rows (NaN elsewhere on both sides): one judged cell per class, the rest INFO
    assert sum(v["rule"] == "max_aoe_increase" for v in doc["verdicts"]) == 3
    assert gate(base, cur, "--max-aoe-increase", "6deg").exit_code == 0  # 6 deg = 0.105 rad > 0.1
    code, doc = gate_json(base, cur, "--max-dup-rate", "0.5%")
    assert {r for r, _, _ in fails(doc)} == {"max_dup_rate"} and len(fails(doc)) == 3 * 6


# ---- output formats ------------------------------------------------------------------------------------------------


def _md_cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_and_junit_are_well_formed(base, tmp_path):
    cur = write_count(tmp_path / "current", summary_table({("traffic_cone", "30-40"): (100, 240, 5)}))
    md, junit = tmp_path / "out" / "gate.md", tmp_path / "out" / "gate.xml"
    res = gate(base, cur, "--md", md, "--junit", junit)
    assert res.exit_code == 1

    lines = md.read_text().splitlines()
    assert lines[0].startswith("## ") and "FAILED" in lines[0]
    headers = [i for i, ln in enumerate(lines) if ln.startswith("| verdict |")]
    assert len(headers) == 2  # the violations table and the full table
    for i in headers:
        width = len(_md_cells(lines[i]))
        assert re.fullmatch(r"\|(---\|)+", lines[i + 1]) and len(_md_cells(lines[i + 1])) == width
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            assert len(_md_cells(lines[j])) == width, lines[j]
            j += 1
        assert j > i + 2
    violations = lines[headers[0] + 2: headers[0] + 4]
    assert all(_md_cells(r)[0].strip() == "FAIL" and _md_cells(r)[2].strip() == "traffic_cone" for r in violations)

    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    # 2 failures: max_pos_drop and max_pos_per_gt_drop of traffic_cone 30-40
    assert len(failed) == 2 and root.find("testsuite").get("failures") == "2"
    assert {c.get("name") for c in failed} == {"traffic_cone [30-40]"}
    assert {c.get("classname") for c in failed} == {"assignaudit.gate.max_pos_drop",
                                                    "assignaudit.gate.max_pos_per_gt_drop"}
    # one testcase per judged (rule, class, band): 3 rules on 18 cells + the zero-class rule on 3 `all` cells
    assert len(cases) == int(root.get("tests")) == 3 * 18 + 3
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temp files
