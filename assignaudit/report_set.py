"""Report sets: every file of one run appears in ``--out`` together, or not at all.

A run (``count``, ``count --compare-config``, ``yaw``) writes its files into a staging folder beside ``--out``
(``.<out>.staging-<id>``), then writes ``manifest.json`` (run id, and kind and sha256 of every file) last and puts the
folder in place with one atomic directory exchange (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames,
the previous folder parked as ``.<out>.old-<id>`` for the instant between them and restored by the next run if a
kill lands there). A reader therefore sees the previous complete set or the new complete set, never a mix.

* Files of an earlier run of the *same kind* that the new run does not write (a stale ``radius.parquet``, the
  ``objects.parquet`` of a full run before an ``--only-summary`` run) are gone with the old folder. Files of
  *another* kind (``yaw_summary.parquet`` beside a count report, as docs/ci-gate.md's workflow writes them) are
  carried over unchanged, with their manifest entries.
* A second run into the same ``--out`` while one is running is refused: ``.<out>.lock`` beside ``--out`` holds the
  pid under an advisory ``flock`` (released by the kernel when a run dies, even by kill -9).
* Stale staging folders of a killed run are removed by the next run into the same ``--out``.
* Every reader (`assignaudit.report.read_metadata`, hence ``read_report`` and the gate) checks a file against the
  ``manifest.json`` beside it and refuses a file that is not listed or whose sha256 differs. A folder without a
  manifest (a report of an older version, a summary committed alone) is read as before.
* ``--out`` must be new, empty or a report folder: a folder holding anything else is refused, never replaced.

``ASSIGNAUDIT_FAULT=POINT[:ACTION][,...]`` injects faults for the tests: at ``staged``, ``before-swap``,
``after-rename-1`` (forces the two-rename path and stops between the renames), ``after-swap`` or ``write`` (every
report file write), ACTION ``KILL`` (default), ``TERM`` or ``INT`` signals this process, ``ENOSPC`` raises a full
disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from assignaudit import __version__, schema
from assignaudit.errors import ReportError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "assignaudit-report-set"
MANIFEST_VERSION = 1
FAULT_ENV = "ASSIGNAUDIT_FAULT"

KIND_FILES: dict[str, tuple[str, ...]] = {
    "count": (schema.SUMMARY_FILE, schema.OBJECTS_FILE, schema.FRAMES_FILE, schema.LAYERS_FILE, schema.RADIUS_FILE),
    "compare": (schema.COMPARE_FILE,),
    "yaw": (schema.YAW_SUMMARY_FILE, schema.YAW_HIST_FILE, schema.PREDICTIONS_FILE, schema.NMS_SWEEP_FILE),
}
_KIND_OF_NAME = {name: kind for kind, names in KIND_FILES.items() for name in names}
DERIVED_FILES: tuple[str, ...] = ("report.html", "gate.json", "show.png", "show.svg")
"""Files other commands write into a report folder by default (`report`, `show`, ``gate --json > DIR/gate.json``):
made from the reports, so a new run into the folder drops them with the old set (they would describe another run)."""

committed: list[Path] = []
"""Report folders this process has put in place (the CLI's interrupt message says whether one was)."""


# ---- fault injection (tests) -------------------------------------------------------------------------------------
def _fault_actions(point: str) -> list[str]:
    spec = os.environ.get(FAULT_ENV, "")
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, action = item.partition(":")
        if name == point:
            out.append((action or "KILL").upper())
    return out


def fault(point: str) -> None:
    """Act on ``ASSIGNAUDIT_FAULT`` at ``point`` (a no-op unless the variable names it)."""
    for action in _fault_actions(point):
        if action == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.kill(os.getpid(), getattr(signal, f"SIG{action}"))
        time.sleep(0.5)  # let a handled signal be delivered here


# ---- file modes ----------------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a report file: what ``open()`` would create (0644 under the usual umask), not mkstemp's 0600."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    return 0o777 & ~_umask()


# ---- checks before the work --------------------------------------------------------------------------------------
def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_parent_writable(path: Path, option: str) -> None:
    parent = Path(os.path.abspath(path)).parent
    anc = _existing_ancestor(parent)
    if not anc.is_dir():
        raise ReportError(f"{option} {path}: {anc} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ReportError(f"{option} {path}: cannot write in {anc} (permission denied)")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a report folder (None when it has none); `ReportError` when it is corrupt."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        if path.exists():
            raise ReportError(f"{path} is not a file")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"corrupt report manifest {path} ({err.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        raise ReportError(f"{path} is not an assignaudit report manifest")
    return data


def _foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that a report run did not write (they make it not a report folder)."""
    try:
        manifest = read_manifest(folder)
    except ReportError:
        manifest = None
        listed: set[str] = set()
    else:
        listed = set((manifest or {}).get("files", {}))
    foreign = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        name = entry.name
        ours = name == MANIFEST or name in _KIND_OF_NAME or name in listed or name in DERIVED_FILES or \
            (name.startswith(".") and name.endswith(".tmp"))
        if not ours or entry.is_symlink() or not entry.is_file():
            foreign.append(name)
    return foreign


def check_out_dir(out: Path, option: str = "--out") -> None:
    """``--out`` can take a report set: new, empty or a report folder, in a writable place. `ReportError` if not."""
    out = Path(out)
    if os.path.abspath(out) in (os.path.abspath(os.getcwd()), os.path.abspath(os.sep)):
        raise ReportError(f"{option} {out}: a run replaces the whole report folder; give a dedicated directory "
                          "(e.g. --out assignaudit-out), not the current directory")
    if out.is_symlink():
        raise ReportError(f"{option} {out} is a symbolic link; a run replaces the folder itself, so give the real "
                          f"directory ({os.path.realpath(out)})")
    if out.exists() and not out.is_dir():
        raise ReportError(f"{option} {out} exists and is not a directory")
    if out.is_dir():
        foreign = _foreign_entries(out)
        if foreign:
            what = "the directory" if (out / foreign[0]).is_dir() and not (out / foreign[0]).is_symlink() else ""
            raise ReportError(f"{option} {out} holds {what + ' ' if what else ''}{foreign[0]!r}, which is not an "
                              "assignaudit report file; a run replaces the whole folder, so give a new or empty "
                              "directory")
    _check_parent_writable(out, option)


def check_out_file(path: Path, option: str) -> None:
    """A single output file (``--md``, ``--junit``, ``--plot``) can be written. `ReportError` if not."""
    path = Path(path)
    if path.is_dir():
        raise ReportError(f"{option} {path} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise ReportError(f"{option} {path} is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ReportError(f"{option} {path}: permission denied")
    _check_parent_writable(path, option)


# ---- the lock ------------------------------------------------------------------------------------------------------
_held: dict[str, list] = {}  # abspath of --out -> [fd, lock path, depth]


def lock_path(out: Path) -> Path:
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``--out``'s lock (re-entrant within this process); `ReportError` when another run holds it."""
    import fcntl

    key = os.path.abspath(out)
    if key in _held:
        _held[key][2] += 1
        try:
            yield
        finally:
            _held[key][2] -= 1
        return
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"--out {out}: cannot create {path.parent} ({err.strerror or err})") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ReportError(f"--out {out}: cannot create the lock file {path} ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise ReportError(f"another assignaudit run (pid {pid}) is writing {out}; wait for it to finish or use "
                              f"another --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and flock: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = [fd, path, 1]
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Under the lock: restore a folder parked by a run killed between two renames, remove stale staging folders."""
    out = Path(os.path.abspath(out))
    parent = out.parent
    if not parent.is_dir():
        return
    parked = sorted(parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if parked and not out.exists():
        os.rename(parked[-1], out)
        log.warning("restored the previous report %s (a killed run had moved it to %s)", out, parked[-1].name)
        parked = parked[:-1]
    for stale in [*parked, *parent.glob(f".{out.name}.staging-*")]:
        shutil.rmtree(stale, ignore_errors=True)
        log.warning("removed %s, left by a killed run", stale)
    if out.is_dir():
        for tmp in out.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("removed %s, left by a killed run", tmp)


# ---- swapping a folder in ------------------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _fault_actions("after-rename-1"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # pragma: no cover (not the main thread, or no pthreads)
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ReportSetWriter:
    """``with ReportSetWriter(out, "count") as rs:`` write files into ``rs.dir``; on a clean exit they become
    ``out`` in one step (see the module doc); on any exception (or signal) the staging folder is removed and ``out``
    is untouched."""

    def __init__(self, out: Path, kind: str) -> None:
        if kind not in KIND_FILES:
            raise ValueError(f"unknown report kind {kind!r}")
        self.out = Path(out)
        self.kind = kind
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self.dir: Path = Path()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "ReportSetWriter":
        check_out_dir(self.out)
        self._stack.enter_context(locked(self.out))
        try:
            _clean_stale(self.out)
            parent = Path(os.path.abspath(self.out)).parent
            self.dir = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=parent))
            self._stack.callback(shutil.rmtree, self.dir, True)
            fault("staged")
        except BaseException:
            self._stack.close()
            raise
        return self

    def final(self, path: Path) -> Path:
        """Where a file written into the staging folder will be once the set is in place."""
        path = Path(path)
        try:
            return self.out / path.relative_to(self.dir)
        except ValueError:
            return path

    def __exit__(self, exc_type, exc, tb) -> None:
        with self._stack:
            if exc_type is None:
                try:
                    self._commit()
                except OSError as err:
                    raise ReportError(f"cannot write the report to {self.out}: {err.strerror or err} (the previous "
                                      "report is unchanged)") from None

    def _carried(self) -> dict[str, dict[str, Any]]:
        """Files of other kinds in the current ``out``, linked into staging with their manifest entries."""
        if not self.out.is_dir():
            return {}
        try:
            manifest = read_manifest(self.out)
        except ReportError:
            manifest = None
        entries: dict[str, dict[str, Any]] = {}
        if manifest is not None:
            entries = {n: e for n, e in manifest["files"].items() if isinstance(e, dict)}
        else:  # a folder of an older version: its report files by name
            entries = {p.name: {"kind": _KIND_OF_NAME[p.name]} for p in self.out.iterdir()
                       if p.name in _KIND_OF_NAME and p.is_file()}
        carried = {}
        for name, entry in entries.items():
            src, dst = self.out / name, self.dir / name
            if entry.get("kind") == self.kind or dst.exists() or not src.is_file() or "/" in name:
                continue
            digest = sha256_file(src)
            if "sha256" in entry and entry["sha256"] != digest:
                log.warning("not keeping %s: it changed after its run wrote it", src)
                continue
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            carried[name] = {**entry, "sha256": digest, "bytes": dst.stat().st_size}
        return carried

    def _commit(self) -> None:
        fault("write")
        files: dict[str, dict[str, Any]] = {}
        mode = file_mode()
        for p in sorted(self.dir.iterdir(), key=lambda q: q.name):
            if p.name.endswith(".tmp") or not p.is_file():
                continue
            os.chmod(p, mode)
            files[p.name] = {"kind": self.kind, "run_id": self.run_id, "sha256": sha256_file(p),
                             "bytes": p.stat().st_size}
        files.update(self._carried())
        manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "run_id": self.run_id,
                    "kind": self.kind, "tool_version": __version__,
                    "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": dict(sorted(files.items()))}
        with open(self.dir / MANIFEST, "w") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(self.dir / MANIFEST, mode)
        os.chmod(self.dir, dir_mode())
        fault("before-swap")
        parked: Path | None = None
        with _signals_deferred():
            if not self.out.exists():
                os.rename(self.dir, self.out)
            elif _exchange(self.dir, self.out):
                parked = self.dir  # now holds the previous set
            else:
                parked = self.out.parent / f".{self.out.name}.old-{self.run_id}"
                os.rename(self.out, parked)
                fault("after-rename-1")
                os.rename(self.dir, self.out)
            committed.append(self.out)
        fault("after-swap")
        if parked is not None:
            shutil.rmtree(parked, ignore_errors=True)


# ---- readers -------------------------------------------------------------------------------------------------------
def verify_member(path: Path) -> None:
    """`ReportError` unless ``path`` is listed, with its sha256, in the manifest beside it (no manifest: nothing to
    check)."""
    path = Path(path)
    manifest = read_manifest(path.parent)
    if manifest is None:
        return
    entry = manifest["files"].get(path.name)
    if not isinstance(entry, dict):
        raise ReportError(f"{path} is not part of the report set in {path.parent / MANIFEST} (left by another run or "
                          "copied in); rerun the report")
    if sha256_file(path) != entry.get("sha256"):
        raise ReportError(f"{path} differs from its sha256 in {path.parent / MANIFEST} (changed after the run "
                          "wrote it); rerun the report")


def verify_folder(folder: Path, names: tuple[str, ...] | None = None) -> None:
    """`ReportError` when a file the manifest of ``folder`` lists is missing (an incomplete or mixed set). ``names``:
    check only these (the files a reader needs; a baseline may commit only its summaries and the manifest)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return
    for name in manifest["files"]:
        if names is not None and name not in names:
            continue
        if not (Path(folder) / name).is_file():
            raise ReportError(f"report set {folder} is incomplete: {name} is listed in {MANIFEST} but missing; rerun "
                              "the report")


def content_bytes(out: Path) -> dict[str, bytes]:
    """Every file of a report folder as bytes, the manifest without the fields that name the run (``run_id``,
    ``created_utc``, which differ between any two runs by design): equal for two runs that wrote the same reports
    (``--workers 1`` vs N, cached vs not)."""
    files = {p.name: p.read_bytes() for p in sorted(Path(out).iterdir()) if p.is_file()}
    if MANIFEST in files:
        doc = json.loads(files[MANIFEST])
        doc.pop("run_id", None)
        doc.pop("created_utc", None)
        for entry in doc.get("files", {}).values():
            entry.pop("run_id", None)
        files[MANIFEST] = json.dumps(doc, indent=2, sort_keys=True).encode()
    return files
