"""Report files (atomic, with provenance metadata) and range bands."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from assignaudit.bands import Bands
from assignaudit.errors import ConfigError, ReportError
from assignaudit.report import base_metadata, config_sha256, read_metadata, read_report, write_parquet


def test_bands_names_and_index():
    b = Bands()
    assert b.names == ["0-20", "20-30", "30-40", "40-50", "50+"]
    idx = b.index(np.array([0.0, 19.999, 20.0, 35.0, 49.99, 50.0, 400.0]))
    assert idx.tolist() == [0, 0, 1, 2, 3, 4, 4]
    assert Bands.parse("0,10,30").names == ["0-10", "10-30", "30+"]


@pytest.mark.parametrize("text", ["0,30,20", "5,10", "a,b", "0,nan"])
def test_bad_bands(text):
    with pytest.raises(ConfigError):
        Bands.parse(text)


def test_write_parquet_atomic_with_metadata(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    meta = base_metadata("count", seed=3)
    path = write_parquet(tmp_path / "r" / "t.parquet", df, meta)
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temp file left behind
    back, m = read_report(path)
    assert back.equals(df) and m["seed"] == 3 and m["kind"] == "count" and m["tool"] == "assignaudit"
    assert json.loads(pq.read_schema(path).metadata[b"assignaudit"])["schema_version"] == 1


def test_foreign_and_corrupt_files_are_report_errors(tmp_path):
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(ReportError, match="not an assignaudit report"):
        read_metadata(tmp_path / "foreign.parquet")
    (tmp_path / "bad.parquet").write_text("hello")
    with pytest.raises(ReportError, match="not a readable Parquet"):
        read_metadata(tmp_path / "bad.parquet")
    with pytest.raises(ReportError, match="not found"):
        read_metadata(tmp_path / "missing.parquet")


def test_config_hash_is_order_independent():
    assert config_sha256({"a": 1, "b": [1, 2]}) == config_sha256({"b": [1, 2], "a": 1})
    assert config_sha256({"a": 1}) != config_sha256({"a": 2})
