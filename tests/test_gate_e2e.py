"""The CI gate on real `count` reports of the bundled fixture (the README recipe, end to end)."""

import pytest
from typer.testing import CliRunner

from assignaudit.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    res = run("count", "--quiet", "--seed", "0", "--only-summary", "--out", out)
    assert res.exit_code == 0, res.output
    return out


def test_identical_rerun_passes(baseline, tmp_path):
    assert run("count", "--quiet", "--seed", "0", "--only-summary", "--out", tmp_path).exit_code == 0
    res = run("gate", baseline, tmp_path)
    assert res.exit_code == 0, res.output


def test_shrunk_traffic_cone_anchors_fail_naming_the_class(baseline, tmp_path):
    res = run("count", "--quiet", "--seed", "0", "--only-summary", "--out", tmp_path,
              "--set", "anchors.9.sizes", "[[0.2, 0.2, 1.07]]")
    assert res.exit_code == 0, res.output
    res = run("gate", baseline, tmp_path, "--md", tmp_path / "gate.md", "--junit", tmp_path / "gate.xml")
    assert res.exit_code == 1, res.output
    fail_lines = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert fail_lines and all("traffic_cone" in line for line in fail_lines), res.stdout
    assert "traffic_cone" in (tmp_path / "gate.md").read_text()
    assert "traffic_cone" in (tmp_path / "gate.xml").read_text()


def test_raised_car_threshold_fails_naming_car_and_band(baseline, tmp_path):
    res = run("count", "--quiet", "--seed", "0", "--only-summary", "--out", tmp_path,
              "--set", "anchors.0.matched_threshold", "0.8")
    assert res.exit_code == 0, res.output
    res = run("gate", baseline, tmp_path)
    assert res.exit_code == 1
    fail_lines = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert fail_lines and all(line.split()[1] == "car" for line in fail_lines), res.stdout
    assert any("[0-20]" in line or "[all]" in line for line in fail_lines)
    assert run("gate", baseline, tmp_path, "--exit-zero").exit_code == 0


def test_different_seed_is_refused_unless_allowed(baseline, tmp_path):
    assert run("count", "--quiet", "--seed", "1", "--only-summary", "--out", tmp_path).exit_code == 0
    res = run("gate", baseline, tmp_path)
    assert res.exit_code == 2 and "seed" in res.stderr
    assert run("gate", baseline, tmp_path, "--allow-mismatch").exit_code in (0, 1)
