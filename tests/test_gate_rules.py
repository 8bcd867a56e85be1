"""Gate rules and policy without any report files: threshold parsing, precedence, and the judging arithmetic.

Expected verdicts are derived by hand in each test from the rule's definition (docs/ci-gate.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from assignaudit.errors import ConfigError
from assignaudit.gate.policy import Policy, policy_from_mapping
from assignaudit.gate.rules import (
    RULES_BY_NAME, Status, Thresholds, judge, parse_count, parse_fraction, parse_radians, parse_threshold,
)


# ---- parsing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [("10%", 0.10), ("2.5 %", 0.025), ("0.1", 0.1), (0.25, 0.25), (0, 0.0),
                                           ("off", None), (None, None), ("none", None), (False, None)])
def test_parse_fraction_accepts_percent_fraction_and_off(raw, expected):
    assert parse_fraction(raw, "--max-pos-drop") == expected


@pytest.mark.parametrize("raw", ["10", 10, "abc", "-5%", "-0.1", True, "nan", [1]])
def test_parse_fraction_refuses_ambiguous_or_bad_values_naming_the_flag(raw):
    with pytest.raises(ConfigError, match="--max-pos-drop"):
        parse_fraction(raw, "--max-pos-drop")


def test_bare_number_above_one_suggests_a_percentage():
    with pytest.raises(ConfigError, match=r"did you mean 10%\?"):
        parse_fraction("10", "--max-pos-drop")


def test_parse_count_and_radians():
    assert parse_count("2", "x") == 2
    assert parse_count("off", "x") is None
    with pytest.raises(ConfigError):
        parse_count("off", "--min-count", allow_off=False)
    for bad in ("1.5", "-1", "two"):
        with pytest.raises(ConfigError, match="x expects a whole number"):
            parse_count(bad, "x")
    assert parse_radians("0.05", "x") == 0.05
    assert parse_radians("3deg", "x") == pytest.approx(3 * math.pi / 180)
    with pytest.raises(ConfigError):
        parse_radians("-1", "x")


def test_unknown_rule_is_named():
    with pytest.raises(ConfigError, match="'max_pos_dorp'"):
        parse_threshold("max_pos_dorp", "10%", "gate.yaml: rules.max_pos_dorp")


# ---- policy --------------------------------------------------------------------------------------------------------


def test_policy_rules_replace_defaults_and_unknown_keys_fail():
    pol = policy_from_mapping({"rules": {"max_pos_drop": "25%", "max_flip_rate": 0.02, "min_count": 5}}, "p.yaml")
    assert pol.rules == Thresholds(max_pos_drop=0.25, max_flip_rate=0.02, min_count=5)
    with pytest.raises(ConfigError, match="'rule'"):
        policy_from_mapping({"rule": {}}, "p.yaml")
    with pytest.raises(ConfigError, match=r"rules\.max_pos_dorp"):
        policy_from_mapping({"rules": {"max_pos_dorp": "5%"}}, "p.yaml")
    with pytest.raises(ConfigError, match=r"overrides\[0\] needs 'class' and/or 'band'"):
        policy_from_mapping({"overrides": [{"max_pos_drop": "5%"}]}, "p.yaml")
    with pytest.raises(ConfigError, match=r"overrides\[0\]\.max_pos_drop"):
        policy_from_mapping({"overrides": [{"class": "car", "max_pos_drop": "lots"}]}, "p.yaml")


def test_override_precedence_most_specific_wins_regardless_of_file_order():
    pol = policy_from_mapping({
        "rules": {"max_pos_drop": "10%"},
        "overrides": [
            {"class": "car", "band": "40-50", "max_pos_drop": "40%"},  # listed first, still the most specific
            {"class": "car", "max_pos_drop": "30%"},
            {"band": "40-50", "max_pos_drop": "20%", "min_count": 50},
        ],
    })
    assert pol.thresholds_for("car", "40-50").max_pos_drop == 0.40
    assert pol.thresholds_for("car", "40-50").min_count == 50  # the band override's other key still applies
    assert pol.thresholds_for("car", "0-20").max_pos_drop == 0.30
    assert pol.thresholds_for("pedestrian", "40-50").max_pos_drop == 0.20
    assert pol.thresholds_for("pedestrian", "0-20").max_pos_drop == 0.10


def test_flags_replace_policy_rules_but_not_overrides():
    pol = policy_from_mapping({"rules": {"max_pos_drop": "25%", "tie_tolerance": 5},
                               "overrides": [{"class": "traffic_cone", "max_pos_drop": "50%"}]})
    flagged = pol.with_flags({"max_pos_drop": "5%", "tie_tolerance": None, "fail_on_zero_pos_class": False})
    assert flagged.rules.max_pos_drop == 0.05
    assert flagged.rules.tie_tolerance == 5  # flag not given: the policy's value stays
    assert flagged.rules.fail_on_zero_pos_class is False
    assert flagged.thresholds_for("traffic_cone", "0-20").max_pos_drop == 0.50
    assert pol.rules.max_pos_drop == 0.25  # with_flags returns a new policy
    with pytest.raises(ConfigError, match="--max-zero-pos-increase"):
        Policy().with_flags({"max_zero_pos_increase": "many"})


def test_unknown_override_names_are_refused():
    pol = policy_from_mapping({"overrides": [{"class": "trafic_cone", "max_pos_drop": "50%"}]}, "gate.yaml")
    with pytest.raises(ConfigError, match="unknown class 'trafic_cone'"):
        pol.check_names({"car", "traffic_cone"}, {"0-20", "all"})
    pol = policy_from_mapping({"overrides": [{"band": "50-inf", "min_count": 50}]}, "gate.yaml")
    with pytest.raises(ConfigError, match="unknown band '50-inf'"):
        pol.check_names({"car"}, {"0-20", "50+", "all"})


# ---- judging arithmetic --------------------------------------------------------------------------------------------


def _judge(rule, base, cur, thr, min_count=20, tie=2, count_b=None, count_c=None, gt_c=None):
    n = len(base)
    arr = lambda x, fill: np.asarray(x if x is not None else [fill] * n, dtype=np.float64)  # noqa: E731
    res = judge(RULES_BY_NAME[rule], arr(base, 0), arr(cur, 0), arr(thr, 0), np.full(n, float(min_count)),
                np.full(n, float(tie)), arr(count_b if count_b is not None else base, 0),
                arr(count_c if count_c is not None else cur, 0), arr(gt_c, 100))
    return [s.value for s in res.status]


def test_relative_drop_tie_tolerance_and_min_count_by_hand():
    # cell 0: drop 2 of 100, all absorbed by the tie tolerance -> pass
    # cell 1: drop 15 of 100, 13 after tolerance = 13% > 10% -> fail
    # cell 2: baseline 10 < min_count 20 -> not judged, although it fell to 0
    # cell 3: drop 101 of 1000, 99 after tolerance = 9.9% -> pass
    # cell 4: drop 102 of 1000, exactly 10% after tolerance -> pass (the limit is allowed)
    # cell 5: drop 103 of 1000, 10.1% -> fail
    # cell 6: an increase -> pass
    base = [100, 100, 10, 1000, 1000, 1000, 50]
    cur = [98, 85, 0, 899, 898, 897, 80]
    assert _judge("max_pos_drop", base, cur, [0.1] * 7) == [
        "pass", "fail", "skip", "pass", "pass", "fail", "pass"]


def test_pos_per_gt_tolerance_is_spread_over_the_current_gt():
    # 40 GT at 2.0 pos/GT = 80 positives; tie tolerance 2 positives = 0.05 pos/GT.
    # 1.80 -> drop 0.20 - 0.05 = 0.15 / 2.0 = 7.5% <= 10% -> pass; 1.70 -> 0.25/2 = 12.5% -> fail
    assert _judge("max_pos_per_gt_drop", [2.0, 2.0], [1.8, 1.7], [0.1, 0.1], count_b=[40, 40],
                  gt_c=[40, 40]) == ["pass", "fail"]
    # without a tolerance 1.8 is exactly a 10 % drop: still allowed
    assert _judge("max_pos_per_gt_drop", [2.0], [1.8], [0.1], tie=0, count_b=[40], gt_c=[40]) == ["pass"]


def test_absolute_increase_ceiling_and_zero_class_by_hand():
    # zero-positive GT 3 -> 5 (+2, allowed), 3 -> 6 (+3 > 2), 10 -> 4 (fewer)
    assert _judge("max_zero_pos_increase", [3, 3, 10], [5, 6, 4], [2, 2, 2]) == ["pass", "fail", "pass"]
    # flip rate ceiling 2%: 1.5% pass, 3% fail, 50% on 4 matched predictions is below min_count -> skip,
    # NaN (no matched predictions) -> skip
    assert _judge("max_flip_rate", [0, 0, 0, 0], [0.015, 0.03, 0.5, np.nan], [0.02] * 4,
                  count_c=[100, 100, 4, 0]) == ["pass", "fail", "skip", "skip"]
    # a class with GT and zero positives fails; with zero GT it does not
    assert _judge("fail_on_zero_pos_class", [5, 5, 0], [0, 3, 0], [1, 1, 1], gt_c=[12, 12, 0]) == [
        "fail", "pass", "pass"]


def test_judge_does_not_mutate_inputs():
    base, cur = np.array([100.0, 100.0]), np.array([90.0, 50.0])
    tie = np.array([2.0, 2.0])
    before = (base.copy(), cur.copy(), tie.copy())
    judge(RULES_BY_NAME["max_pos_drop"], base, cur, np.array([0.1, 0.1]), np.array([20.0, 20.0]), tie, base, cur,
          np.array([50.0, 50.0]))
    for a, b in zip((base, cur, tie), before):
        np.testing.assert_array_equal(a, b)
    assert Status.FAIL.value == "fail"
