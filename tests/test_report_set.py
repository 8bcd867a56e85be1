"""A report folder is one unit: the previous complete set or the new complete set, never a mix.

Kills and signals are injected at fixed points with ASSIGNAUDIT_FAULT in a subprocess (no timing luck); the
expected folder contents are stated by hand (file names, manifest entries, bytes of the previous run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.report import read_report, write_parquet
from assignaudit.report_set import MANIFEST, ReportSetWriter, lock_path, sha256_file

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
COUNT = ["count", "--quiet", "--no-augment", "--max-frames", "2"]


def _count(out: Path, *extra: str):
    return runner.invoke(app, [*COUNT, "--out", str(out), *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _one_error_line(res_stderr: str) -> str:
    err = res_stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def _cli(args: list[str], fault: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ASSIGNAUDIT_FAULT", None)
    if fault:
        env["ASSIGNAUDIT_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "assignaudit", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, **kw)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> Path:
    """A complete count report (objects, frames, summary, manifest) to be replaced."""
    out = tmp_path_factory.mktemp("prev") / "out"
    res = _count(out)
    assert res.exit_code == 0, res.output
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_manifest_lists_every_file_with_its_sha256_and_mode_0644(previous):
    manifest = json.loads((previous / MANIFEST).read_text())
    names = sorted(p.name for p in previous.iterdir() if p.name != MANIFEST)
    assert names == ["frames.parquet", "objects.parquet", "summary.parquet"]
    assert sorted(manifest["files"]) == names
    for name in names:
        entry = manifest["files"][name]
        assert entry["sha256"] == sha256_file(previous / name)
        assert entry["run_id"] == manifest["run_id"] and entry["kind"] == "count"
    umask = os.umask(0)
    os.umask(umask)
    for p in previous.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert previous.stat().st_mode & 0o777 == 0o777 & ~umask


def test_only_summary_run_leaves_no_stale_rows_and_keeps_the_yaw_report(previous, tmp_path):
    out = _copy(previous, tmp_path / "out")
    res = runner.invoke(app, ["yaw", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    yaw_files = {"yaw_summary.parquet", "yaw_hist.parquet", "predictions.parquet"}
    assert yaw_files <= {p.name for p in out.iterdir()}
    yaw_bytes = {n: (out / n).read_bytes() for n in yaw_files}
    assert _count(out, "--only-summary").exit_code == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"summary.parquet", MANIFEST} | yaw_files  # objects / frames of the full run are gone
    assert {n: (out / n).read_bytes() for n in yaw_files} == yaw_bytes  # carried over unchanged
    manifest = json.loads((out / MANIFEST).read_text())
    assert {n for n, e in manifest["files"].items() if e["kind"] == "yaw"} == yaw_files
    assert manifest["files"]["summary.parquet"]["run_id"] == manifest["run_id"]
    assert _leftovers(out) == []
    res = runner.invoke(app, ["gate", str(out), str(out)])
    assert res.exit_code == 0, res.output


def test_gate_refuses_a_tampered_or_mixed_report_set(previous, tmp_path):
    good = _copy(previous, tmp_path / "good")
    # tampered: the summary rewritten in place (a valid report, but not the bytes the run wrote)
    tampered = _copy(previous, tmp_path / "tampered")
    df, meta = read_report(tampered / "summary.parquet")
    df.loc[0, "num_pos"] += 1
    write_parquet(tampered / "summary.parquet", df, meta)
    res = runner.invoke(app, ["gate", str(good), str(tampered)])
    assert res.exit_code == 2
    assert "differs from its sha256" in _one_error_line(res.stderr)
    # mixed: a yaw summary of another run copied beside a count report it was not written with
    yaw_dir = tmp_path / "yaw"
    assert runner.invoke(app, ["yaw", "--quiet", "--out", str(yaw_dir)]).exit_code == 0
    mixed = _copy(previous, tmp_path / "mixed")
    (mixed / "yaw_summary.parquet").write_bytes((yaw_dir / "yaw_summary.parquet").read_bytes())
    res = runner.invoke(app, ["gate", str(good), str(mixed)])
    assert res.exit_code == 2 and "not part of the report set" in _one_error_line(res.stderr)
    # incomplete: a file the manifest lists is missing
    partial = _copy(previous, tmp_path / "partial")
    (partial / "frames.parquet").unlink()  # a baseline may commit only its summary and the manifest
    assert runner.invoke(app, ["gate", str(good), str(partial)]).exit_code == 0
    both = _copy(previous, tmp_path / "both")
    assert runner.invoke(app, ["yaw", "--quiet", "--out", str(both)]).exit_code == 0
    (both / "yaw_summary.parquet").unlink()  # the yaw gate would silently vanish
    res = runner.invoke(app, ["gate", str(good), str(both)])
    assert res.exit_code == 2 and "incomplete" in _one_error_line(res.stderr)
    # read_report refuses too
    from assignaudit.errors import ReportError

    with pytest.raises(ReportError, match="not part of the report set"):
        read_report(mixed / "yaw_summary.parquet")


@pytest.mark.parametrize("point", ["staged", "write", "before-swap", "after-rename-1", "after-swap"])
def test_kill_9_anywhere_leaves_the_previous_or_the_new_set(previous, tmp_path, point):
    out = _copy(previous, tmp_path / "out")
    before = _snapshot(out)
    res = _cli([*COUNT, "--only-summary", "--out", str(out)], fault=f"{point}:KILL")
    assert res.returncode == -9, res.stderr
    if point in ("staged", "write", "before-swap"):
        assert _snapshot(out) == before  # untouched
    elif point == "after-swap":
        assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.parquet"]  # the new set, complete
    else:  # killed between the two renames: --out is briefly absent, the previous set parked beside it
        assert not out.exists()
    # the next run restores / cleans whatever the killed run left, then writes its own set
    res = _count(out, "--only-summary")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.parquet"]
    assert _leftovers(out) == []


@pytest.mark.parametrize(("point", "action", "code"), [("staged", "TERM", 143), ("write", "INT", 130)])
def test_signal_ends_the_run_with_one_line_and_removes_staging(previous, tmp_path, point, action, code):
    out = _copy(previous, tmp_path / "out")
    before = _snapshot(out)
    res = _cli([*COUNT, "--out", str(out)], fault=f"{point}:{action}")
    assert res.returncode == code, res.stderr
    assert res.stderr.strip() == "interrupted: no report written"
    assert _snapshot(out) == before and _leftovers(out) == []


def test_full_disk_while_writing_is_one_line_and_keeps_the_previous_report(previous, tmp_path):
    out = _copy(previous, tmp_path / "out")
    before = _snapshot(out)
    res = _cli([*COUNT, "--out", str(out)], fault="write:ENOSPC")
    assert res.returncode == 2, res.stderr
    assert "No space left on device" in _one_error_line(res.stderr)
    assert _snapshot(out) == before and _leftovers(out) == []


def test_second_run_into_the_same_out_is_refused(previous, tmp_path):
    out = _copy(previous, tmp_path / "out")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from assignaudit.report_set import locked\n"
         f"with locked({str(out)!r}):\n print('ready', flush=True); sys.stdin.readline()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        res = _count(out)
        assert res.exit_code == 2
        err = _one_error_line(res.stderr)
        assert f"pid {holder.pid}" in err and "is writing" in err
    finally:
        holder.communicate("\n", timeout=30)
    assert not lock_path(out).exists()
    assert _count(out).exit_code == 0  # free again


def test_stale_staging_and_tmp_files_of_a_killed_run_are_removed(previous, tmp_path):
    out = _copy(previous, tmp_path / "out")
    stale = tmp_path / ".out.staging-deadbeef"
    stale.mkdir()
    (stale / "summary.parquet").write_bytes(b"half")
    (out / ".objects.parquet.abc.tmp").write_bytes(b"half")
    assert _count(out, "--only-summary").exit_code == 0
    assert not stale.exists() and _leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.parquet"]


# ---- outputs checked before the work ------------------------------------------------------------------------------
def test_out_that_is_a_file_or_holds_foreign_files_is_refused_before_counting(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = _count(f)
    assert res.exit_code == 2 and "not a directory" in _one_error_line(res.stderr)
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    res = _count(d)
    assert res.exit_code == 2 and "'notes.txt'" in _one_error_line(res.stderr)
    assert (d / "notes.txt").read_text() == "keep me"
    sub = tmp_path / "rep"
    (sub / "summary.parquet").mkdir(parents=True)
    res = _count(sub)
    assert res.exit_code == 2 and "the directory 'summary.parquet'" in _one_error_line(res.stderr)
    res = _count(f / "below")
    assert res.exit_code == 2 and "is not a directory" in _one_error_line(res.stderr)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_out_in_a_read_only_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = _count(ro / "out")
        assert res.exit_code == 2 and "permission denied" in _one_error_line(res.stderr)
    finally:
        ro.chmod(0o755)


def test_yaw_plot_directory_is_refused_before_the_work(tmp_path):
    res = runner.invoke(app, ["yaw", "--quiet", "--out", str(tmp_path / "out"), "--plot", str(tmp_path)])
    assert res.exit_code == 2 and "--plot" in _one_error_line(res.stderr)
    assert not (tmp_path / "out").exists()


def test_yaw_plot_inside_out_is_part_of_the_set(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["yaw", "--quiet", "--out", str(out), "--plot", str(out / "yaw.png")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"]["yaw.png"]["sha256"] == sha256_file(out / "yaw.png")


def test_gate_junit_directory_writes_nothing(previous, tmp_path):
    md = tmp_path / "gate.md"
    res = runner.invoke(app, ["gate", str(previous), str(previous), "--md", str(md), "--junit", str(tmp_path)])
    assert res.exit_code == 2 and "--junit" in _one_error_line(res.stderr)
    assert not md.exists()


def test_writer_used_as_a_library_drops_staging_on_error(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with ReportSetWriter(out, "count") as rs:
            (rs.dir / "summary.parquet").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not out.exists() and _leftovers(out) == []


def test_gate_full_disk_writes_neither_md_nor_junit(previous, tmp_path, monkeypatch):
    md, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    md.write_text("previous")
    monkeypatch.setenv("ASSIGNAUDIT_FAULT", "write:ENOSPC")
    res = runner.invoke(app, ["gate", str(previous), str(previous), "--md", str(md), "--junit", str(junit)])
    assert res.exit_code == 2 and "No space left on device" in _one_error_line(res.stderr)
    assert md.read_text() == "previous" and not junit.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.md"]  # no temp file either


def test_unexpected_error_while_counting_exits_3_and_keeps_the_previous_report(previous, tmp_path, monkeypatch):
    out = _copy(previous, tmp_path / "out")
    before = _snapshot(out)

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.delenv("ASSIGNAUDIT_DEBUG", raising=False)
    monkeypatch.setattr("assignaudit.count.summary_frame", boom)
    res = _count(out)
    assert res.exit_code == 3
    assert "internal error (ZeroDivisionError: division by zero)" in _one_error_line(res.stderr)
    assert _snapshot(out) == before and _leftovers(out) == []


def test_derived_files_of_the_previous_run_go_with_it(previous, tmp_path):
    out = _copy(previous, tmp_path / "out")
    (out / "report.html").write_text("<html>previous run</html>")
    (out / "gate.json").write_text("{}")
    assert _count(out, "--only-summary").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.parquet"]
