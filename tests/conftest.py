"""Shared test set-up: the frame cache (assignaudit/sources/cache.py) lives in tmp dirs, never in the user's
~/.cache: one per test, and one for the session that module- and session-scoped fixtures (set up before any
function-scoped fixture) write to."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _frame_cache_session_dir(tmp_path_factory):
    before = os.environ.get("ASSIGNAUDIT_CACHE_DIR")
    os.environ["ASSIGNAUDIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("frame-cache-session"))
    yield
    if before is None:
        os.environ.pop("ASSIGNAUDIT_CACHE_DIR", None)
    else:
        os.environ["ASSIGNAUDIT_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _frame_cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASSIGNAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("frame-cache")))
