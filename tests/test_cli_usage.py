"""Argument-parser errors and unexpected errors: one stderr line each, with their own exit codes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.cli.app import DEBUG_ENV, EXIT_INTERNAL

runner = CliRunner()


@pytest.mark.parametrize(("args", "needle"), [
    (["count", "--replays", "abc"], "'--replays'"),
    (["count", "--seed", "x"], "'--seed'"),
    (["count", "--bogus"], "--bogus"),
    (["gate"], "Missing argument"),
    (["gate", "a"], "Missing argument"),
    (["yaw", "--bins", "many"], "'--bins'"),
    (["yaw", "--no-such-flag"], "--no-such-flag"),
    (["info", "--bands"], "--bands"),
    (["config", "show", "--nope"], "--nope"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_usage_error_is_one_line_with_a_help_hint(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err and "--help" in err
    assert "╭" not in res.output and "Traceback" not in res.output


def test_unexpected_error_exits_3_with_one_line(monkeypatch):
    def boom(*a, **k):
        raise ValueError("something nobody expected\nsecond line")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr("assignaudit.gate.run_gate", boom)  # imported inside the command
    res = runner.invoke(app, ["gate", "a", "b"])
    assert res.exit_code == EXIT_INTERNAL == 3
    err = res.stderr.strip()
    assert err.splitlines() == [err] and err.startswith("error: internal error (ValueError: something nobody")
    assert DEBUG_ENV in err and "Traceback" not in res.output


def test_debug_shows_the_traceback(monkeypatch):
    def boom(*a, **k):
        raise ValueError("boom")

    monkeypatch.setattr("assignaudit.gate.run_gate", boom)  # imported inside the command
    monkeypatch.setenv(DEBUG_ENV, "1")
    res = runner.invoke(app, ["gate", "a", "b"])
    assert isinstance(res.exception, ValueError)  # propagated: the traceback is printed by Python
