"""Shared test set-up: the frame cache (assignaudit/sources/cache.py) of every test lives in that test's tmp dir, never
in the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True)
def _frame_cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASSIGNAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("frame-cache")))
