"""Shared test set-up: the frame cache (assignaudit/sources/cache.py) lives in tmp dirs, never in the user's
~/.cache: one per test, and one for the session that module- and session-scoped fixtures (set up before any
function-scoped fixture) write to."""


import pytest


@pytest.fixture(scope="session", autouse=True)
def _frame_cache_in_session_tmp(tmp_path_factory):
    """Module- and session-scoped fixtures run before the per-test fixture below: without this they would read a
    ~/.cache filled by an earlier run, perhaps on another BLAS kernel (last-digit differences in the frames)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ASSIGNAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("frame-cache-session")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _frame_cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASSIGNAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("frame-cache")))
