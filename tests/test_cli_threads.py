"""`count --threads N`: one torch intra-op thread by default, N when asked, set before any frame is counted; the
count does not depend on it; a bad value is one error line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from assignaudit.cli import app

runner = CliRunner()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _count(out: Path, *args: str):
    return runner.invoke(app, ["count", "--quiet", "--no-augment", "--max-frames", "3", "--only-summary", "--out",
                               str(out), *args])


def test_default_is_one_thread_and_threads_do_not_change_counts(tmp_path: Path, restore_threads) -> None:
    torch.set_num_threads(2)
    res = _count(tmp_path / "one")
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1
    res = _count(tmp_path / "two", "--threads", "2")
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 2
    one = pq.read_table(tmp_path / "one" / "summary.parquet").to_pandas()
    two = pq.read_table(tmp_path / "two" / "summary.parquet").to_pandas()
    cols = ["class", "band", "num_gt", "num_pos", "num_neg", "num_ignore", "num_forced"]
    assert one[cols].equals(two[cols])
    assert int(one.num_gt.sum()) > 0


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_thread_count_is_a_usage_error(tmp_path: Path, value: str, restore_threads) -> None:
    res = runner.invoke(app, ["count", "--quiet", "--threads", value, "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "error: --threads must be >= 1" in res.output
    assert "Traceback" not in res.output
