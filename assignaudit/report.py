"""Parquet reports: atomic writes and the ``assignaudit`` provenance metadata every report file carries.

Each file gets a key-value metadata entry ``assignaudit`` holding JSON: the tool version, the command line, the
report kind and schema version, and whatever the command adds (resolved config and its sha256, dataset version
and split, seed, replays, device, torch version). The CI gate reads it back to refuse comparing apples to pears.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from assignaudit import __version__
from assignaudit.errors import ReportError
from assignaudit.report_set import fault, file_mode, verify_member

METADATA_KEY = "assignaudit"
SCHEMA_VERSION = 1

EXECUTION_OPTIONS: dict[str, int] = {"--workers": 1, "--ray": 1, "--threads": 1, "--no-cache": 0, "--cache-dir": 1}
"""Options that change how a run executes, never what it reports (option -> number of values). They are left out of
the recorded ``command_line`` so that reports are byte-identical whatever the worker count or cache (docs/scale.md)."""


def recorded_command_line(argv: list[str]) -> str:
    """``argv`` as recorded in report metadata: program name, then the arguments less `EXECUTION_OPTIONS`."""
    out, i = [Path(argv[0]).name if argv else ""], 1
    while i < len(argv):
        flag = argv[i].split("=", 1)[0]
        if flag in EXECUTION_OPTIONS:
            i += 1 + (EXECUTION_OPTIONS[flag] if "=" not in argv[i] else 0)
            continue
        out.append(argv[i])
        i += 1
    return " ".join(out)


def config_sha256(resolved_config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config (sorted keys, no whitespace)."""
    text = json.dumps(resolved_config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def base_metadata(kind: str, **fields: Any) -> dict[str, Any]:
    """Metadata common to every report: tool, versions, command line; ``fields`` are added verbatim."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    meta: dict[str, Any] = {
        "tool": "assignaudit",
        "tool_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "command_line": recorded_command_line(sys.argv),
        "python_version": platform.python_version(),
        "torch_version": torch_version,
    }
    meta.update(fields)
    return meta


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[str]:
    """Yield a temp path in ``path``'s directory; on success it is renamed onto ``path`` (``os.replace``), on any
    error it is removed, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide a CI artifact from other readers
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_parquet(path: Path, table: pd.DataFrame | pa.Table, metadata: Mapping[str, Any],
                  schema: pa.Schema | None = None) -> Path:
    """Write ``table`` to ``path`` atomically with the ``assignaudit`` JSON metadata."""
    path = Path(path)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    elif schema is not None:
        table = table.cast(schema)
    existing = dict(table.schema.metadata or {})
    existing.pop(b"pandas", None)
    existing[METADATA_KEY.encode()] = json.dumps(metadata, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(existing)
    try:
        with atomic_target(path) as tmp:
            fault("write")
            pq.write_table(table, tmp)
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def atomic_write_files(contents: Mapping[Path, bytes], options: Mapping[Path, str] | None = None) -> None:
    """Write several files so that either all are replaced or none is: every one goes to a temp file first, and the
    renames only start once all are written. `ReportError` (naming the option) when one cannot be written."""
    options = options or {}
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in contents.items():
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                temps.append((tmp, path))
                with os.fdopen(fd, "wb") as f:
                    fault("write")
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, file_mode())
            except OSError as err:
                what = options.get(path, "output")
                raise ReportError(f"cannot write {what} file {path}: {err.strerror or err}") from None
        for tmp, path in temps:
            os.replace(tmp, path)
        temps.clear()
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``assignaudit`` metadata of a report file; `ReportError` if it is not one of ours, or not the file the
    ``manifest.json`` beside it lists (`assignaudit.report_set.verify_member`)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"report file not found: {path}")
    verify_member(path)
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ReportError(f"not a readable Parquet file: {path} ({err.__class__.__name__})") from err
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise ReportError(f"not an assignaudit report (no '{METADATA_KEY}' metadata): {path}")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ReportError(f"corrupt assignaudit metadata in {path}") from err


def read_report(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a report file and its metadata."""
    meta = read_metadata(path)
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as err:
        raise ReportError(f"cannot read report {path}: {err}") from err
    return df, meta
