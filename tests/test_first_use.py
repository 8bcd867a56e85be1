"""First use as a new user sees it: table titles, help at 80 columns, progress in a CI log, a quiet passing gate."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from assignaudit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def count_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "out"
    res = runner.invoke(app, ["count", "--no-augment", "--max-frames", "2", "--only-summary", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res


def test_count_title_shows_family_and_framework_and_says_neg_ignore_are_band_all(count_run):
    _, res = count_run
    text = " ".join(res.stdout.split())  # the title wraps at the table's width
    assert "pointpillars-multihead [anchor, pcdet], nuScenes" in text  # not eaten by rich as a markup tag
    assert "neg, ignore: band 'all'" in text


def test_progress_lines_without_a_terminal(count_run):
    _, res = count_run
    lines = res.stderr.splitlines()
    assert lines[0] == "loading the dataset ..."
    assert lines[1].startswith("loaded 24 frame(s); counting 2 frame(s) x 1 replay(s)")
    assert lines[-1] == "counting: 2/2 frame replay(s) (100%)"


def test_passing_gate_prints_one_line_unless_verbose(count_run):
    out, _ = count_run
    res = runner.invoke(app, ["gate", str(out), str(out)])
    assert res.exit_code == 0
    assert res.stdout.strip().splitlines() == [res.stdout.strip()]
    assert res.stdout.startswith("assignaudit gate PASSED: 0 violations")
    res = runner.invoke(app, ["gate", str(out), str(out), "--verbose"])
    assert res.exit_code == 0 and "every compared cell" in res.stdout and "config_sha256" in res.stdout


@pytest.mark.parametrize("command", [["count"], ["yaw"], ["gate"], ["info"], ["config", "show"]])
def test_help_at_80_columns_keeps_option_names_and_has_no_bool_metavar(command):
    res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0
    assert "<bool>" not in res.stdout and "…" not in res.stdout and "list[" not in res.stdout
    if command == ["yaw"]:
        assert "--predictions, --result-path, --result_path" in res.stdout
        assert "progress bar" not in res.stdout
        assert "Do not list the written report files." in " ".join(res.stdout.split())


def test_heartbeat_lines_while_the_dataset_loads(tmp_path, monkeypatch):
    import assignaudit.cli.count as count_cli

    monkeypatch.setattr(count_cli, "HEARTBEAT_S", 0.001)
    res = runner.invoke(app, ["count", "--no-augment", "--max-frames", "1", "--only-summary", "--out",
                              str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    beats = [line for line in res.stderr.splitlines() if line.startswith(("loading the dataset ...", "preparing ..."))
             and line.endswith(" s)")]
    assert beats  # the load takes far longer than 1 ms
    assert res.stderr.splitlines()[-1] == "counting: 1/1 frame replay(s) (100%)"  # stopped at the first frame
