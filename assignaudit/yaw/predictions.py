"""Loading and validating predictions: a nuScenes detection submission JSON, or a Parquet table of canonical boxes.

Two input formats, one output (`PredictionSet`, rows in file order):

* **nuScenes submission JSON** (nuscenes-devkit ``load_prediction``; mmdetection3d ``results_nusc.json`` and
  OpenPCDet's nuScenes output use it)::

      {"meta": {...}, "results": {sample_token: [{"sample_token", "translation"[3], "size"[3] (w, l, h),
                                                  "rotation"[4] (w, x, y, z), "velocity"[2], "detection_name",
                                                  "detection_score", "attribute_name"}, ...]}}

  Boxes are in the global frame. File order is the order of ``results`` (samples) and then of each list; that order
  is the devkit's ``EvalBoxes.all`` order and matters for its score-tie rule (see `assignaudit.yaw.matching`).
* **Parquet (or CSV) table** of canonical LiDAR-frame boxes: columns ``frame_id`` (or ``sample_token``), ``class``,
  ``score``, ``x, y, z, dx, dy, dz, yaw`` and optionally ``vx, vy`` (`assignaudit.conventions`).

Validation is strict and reports the *first* offending record as one line (sample token + index + key), because a
malformed submission otherwise surfaces as a bare ``AssertionError`` deep inside the devkit. The happy path is
vectorised (list comprehensions into numpy arrays); only when that fails do we walk the records one by one to name
the culprit.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Final

import numpy as np

from assignaudit.conventions import BOX_DIM
from assignaudit.errors import DataError
from assignaudit.report_set import sha256_file as file_sha256  # noqa: F401  (re-exported: one file hash)

SUBMISSION_KEYS: Final = (
    "sample_token", "translation", "size", "rotation", "velocity", "detection_name", "detection_score",
    "attribute_name",
)
QUATERNION_NORM_TOL: Final = 1e-3
"""A rotation whose norm is off 1 by more than this is rejected (the devkit silently normalises it)."""
MAX_BOXES_PER_SAMPLE: Final = 500
"""nuScenes ``max_boxes_per_sample`` (detection_cvpr_2019); enforced when the nuScenes filters are on."""

TABLE_BOX_COLUMNS: Final = ("x", "y", "z", "dx", "dy", "dz", "yaw")


@dataclass(frozen=True)
class PredictionSet:
    """Predictions as loaded, one row per box in file order (row ``i`` has input position ``i``).

    Exactly one geometry representation is filled, according to ``kind``:

    * ``"nuscenes_json"``: ``translation_global [P, 3]`` (m), ``size_wlh [P, 3]`` (m), ``rotation_wxyz [P, 4]``
      (unit quaternions, global frame), ``velocity_global [P, 2]`` (m/s, NaN allowed); ``boxes_lidar`` is None.
    * ``"table"``: ``boxes_lidar [P, 9]`` canonical boxes in the sample's LiDAR frame (velocity NaN when absent).
    """

    kind: str
    path: str
    sha256: str
    sample_token: np.ndarray  # object [P]
    detection_class: np.ndarray  # object [P]
    score: np.ndarray  # float64 [P]
    translation_global: np.ndarray | None = None
    size_wlh: np.ndarray | None = None
    rotation_wxyz: np.ndarray | None = None
    velocity_global: np.ndarray | None = None
    boxes_lidar: np.ndarray | None = None
    sample_order: tuple[str, ...] = ()
    """Sample tokens in file order (JSON: the keys of ``results``, including samples with an empty list)."""

    def __len__(self) -> int:
        return int(self.score.shape[0])




def load_predictions(path: Path, known_classes: frozenset[str] | None = None) -> PredictionSet:
    """Load a prediction file; the format is chosen by suffix (``.json`` submission, ``.parquet``/``.csv`` table).

    ``known_classes``: class names a table may use (None: any). JSON names are always checked against the devkit's
    ``DETECTION_NAMES``. Raises `DataError` naming the first offending record.
    """
    path = Path(path)
    from assignaudit.yaw.predictions_formats import external_loader

    external = external_loader(path)  # the frameworks' own formats, one module each
    if external is not None:
        return external(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_submission(path)
    if suffix in (".parquet", ".pq", ".csv"):
        return _load_table(path, known_classes)
    raise DataError(f"predictions file {path}: unknown format '{suffix}' (expected .json, .parquet, .csv, a results "
                    ".pkl, AV2 .feather or KITTI .txt files)")



# ---------------------------------------------------------------------------------------------------------------------
# nuScenes submission JSON
# ---------------------------------------------------------------------------------------------------------------------


def _load_submission(path: Path) -> PredictionSet:
    """A submission JSON, streamed sample by sample (`_stream_submission`); a file that is not a valid
    submission is re-read whole by `_load_submission_whole`, whose first-error messages are the reference."""
    streamed = _stream_submission(path)
    return streamed if streamed is not None else _load_submission_whole(path)


_STREAM_CHUNK_BYTES = 1 << 24
_STREAM_BATCH_BOXES = 1 << 14
_WS = frozenset(" \t\n\r")


class _NotStreamable(Exception):
    """The file is not a plain valid submission: the whole-file loader names the problem."""


class _JsonStream:
    """Values of a JSON text decoded one at a time (``json.JSONDecoder.raw_decode`` on a sliding window)."""

    def __init__(self, f, digest) -> None:
        import codecs

        self.f, self.digest = f, digest
        self.text = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder()

    def _fill(self) -> None:
        chunk = self.f.read(_STREAM_CHUNK_BYTES)
        self.digest.update(chunk)
        self.eof = not chunk
        self.buf = self.buf[self.pos:] + self.text.decode(chunk, final=self.eof)
        self.pos = 0

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file)."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if self.eof:
                return ""
            self._fill()

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise _NotStreamable
        self.pos += 1

    def value(self):
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # a value that ends the window may continue in the file
                    self.pos = end
                    return obj
            except json.JSONDecodeError:
                if self.eof:
                    raise _NotStreamable from None
            except RecursionError:
                raise _NotStreamable from None
            self._fill()


def _stream_submission(path: Path) -> PredictionSet | None:
    """The happy path of a submission JSON in constant memory per box: ``results`` is decoded one sample list at a
    time and validated in batches into column arrays (the per-box dicts never all exist at once). None when the
    file is not a plain valid submission (malformed JSON, another layout, duplicate keys, a bad record)."""
    from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES, DETECTION_NAMES

    canonical = {n: n for n in DETECTION_NAMES}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("tr", "size", "rot", "vel", "names", "scores", "owners")}
    batch: list[dict] = []
    batch_owner: list[str] = []
    batch_count: list[int] = []

    def flush() -> None:
        if not batch:
            return
        owners = np.repeat(np.array(batch_owner, dtype=object), batch_count)
        try:
            arrays = _submission_arrays(batch)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _NotStreamable from None
        if _first_bad_vectorised(arrays, owners, DETECTION_NAMES, ATTRIBUTE_NAMES) is not None:
            raise _NotStreamable
        tr, size, rot, vel, names, scores, _tokens, _attrs = arrays
        for key, value in (("tr", tr), ("size", size), ("rot", rot), ("vel", vel), ("scores", scores),
                           ("owners", owners)):
            cols[key].append(value)
        cols["names"].append(np.array([canonical[n] for n in names], dtype=object))  # one str per class
        batch.clear()
        batch_owner.clear()
        batch_count.clear()

    digest = hashlib.sha256()
    seen_top: set[str] = set()
    sample_order: list[str] = []
    import gc

    # Decoding makes millions of short-lived containers and no cycles: the cyclic GC would rescan the live batch
    # after every few thousand allocations (~5x the decode time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb") as f:
            js = _JsonStream(f, digest)
            js.expect("{")
            while js.peek() != "}":
                if seen_top:
                    js.expect(",")
                key = js.value()
                if not isinstance(key, str) or key in seen_top:
                    raise _NotStreamable
                seen_top.add(key)
                js.expect(":")
                if key != "results":
                    if not isinstance(js.value(), dict) and key == "meta":
                        raise _NotStreamable
                    continue
                js.expect("{")
                while js.peek() != "}":
                    if sample_order:
                        js.expect(",")
                    token = js.value()
                    js.expect(":")
                    boxes = js.value()
                    if not isinstance(token, str) or not isinstance(boxes, list):
                        raise _NotStreamable
                    sample_order.append(token)
                    batch.extend(boxes)
                    batch_owner.append(token)
                    batch_count.append(len(boxes))
                    if len(batch) >= _STREAM_BATCH_BOXES:
                        flush()
                js.expect("}")
            js.expect("}")
            if js.peek() != "":
                raise _NotStreamable
        if "results" not in seen_top or "meta" not in seen_top or len(set(sample_order)) != len(sample_order):
            raise _NotStreamable
        flush()
    except (_NotStreamable, UnicodeDecodeError):
        return None
    finally:
        if gc_was_enabled:
            gc.enable()

    def joined(key: str, empty: np.ndarray) -> np.ndarray:
        parts = cols.pop(key)
        return np.concatenate(parts) if parts else empty

    e = np.empty
    return PredictionSet(
        kind="nuscenes_json", path=str(path), sha256=digest.hexdigest(),
        sample_token=joined("owners", e(0, object)), detection_class=joined("names", e(0, object)),
        score=joined("scores", e(0)), translation_global=joined("tr", e((0, 3))), size_wlh=joined("size", e((0, 3))),
        rotation_wxyz=joined("rot", e((0, 4))), velocity_global=joined("vel", e((0, 2))),
        sample_order=tuple(sample_order),
    )


def _load_submission_whole(path: Path) -> PredictionSet:
    from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES, DETECTION_NAMES

    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"predictions file {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"predictions file {path}: top level must be an object with 'meta' and 'results'")
    for key in ("results", "meta"):
        if key not in data:
            raise DataError(f"predictions file {path}: missing top-level key '{key}' (nuScenes submission format)")
    results = data["results"]
    if not isinstance(results, dict):
        raise DataError(f"predictions file {path}: 'results' must map sample tokens to lists of boxes")
    if not isinstance(data["meta"], dict):
        raise DataError(f"predictions file {path}: 'meta' must be an object")

    sample_order = tuple(results.keys())
    for token, boxes in results.items():
        if not isinstance(boxes, list):
            raise DataError(f"predictions file {path}: results['{token}'] must be a list of boxes")
    records = [b for boxes in results.values() for b in boxes]
    owners = np.repeat(np.array(sample_order, dtype=object), [len(b) for b in results.values()]) \
        if sample_order else np.empty(0, dtype=object)

    try:
        arrays = _submission_arrays(records)
    except (KeyError, TypeError, ValueError, AttributeError):
        arrays = None
    if arrays is not None:
        bad = _first_bad_vectorised(arrays, owners, DETECTION_NAMES, ATTRIBUTE_NAMES)
        if bad is None:
            tr, size, rot, vel, names, scores, tokens, _attrs = arrays
            return PredictionSet(
                kind="nuscenes_json", path=str(path), sha256=file_sha256(path),
                sample_token=tokens, detection_class=names, score=scores,
                translation_global=tr, size_wlh=size, rotation_wxyz=rot, velocity_global=vel,
                sample_order=sample_order,
            )
        first_row = bad
    else:
        first_row = 0
    # Slow path: walk records from the first suspect row and name the first offending one.
    positions = _positions_in_sample(results)
    for row in range(first_row, len(records)):
        problem = _check_record(records[row], owners[row], DETECTION_NAMES, ATTRIBUTE_NAMES)
        if problem is not None:
            token, idx = owners[row], positions[row]
            raise DataError(f"predictions file {path}: sample {token} box {idx}: {problem}")
    raise AssertionError("vectorised validation flagged a record the per-record check accepts")  # pragma: no cover


def _positions_in_sample(results: dict) -> np.ndarray:
    return np.concatenate([np.arange(len(b)) for b in results.values()]) if results else np.empty(0, np.int64)


def _submission_arrays(records: list[dict]) -> tuple:
    """Fast path: all fields into arrays. Raises on any structural problem (then the slow path names it)."""
    n = len(records)
    if n == 0:
        e = np.empty
        return (e((0, 3)), e((0, 3)), e((0, 4)), e((0, 2)), e(0, object), e(0), e(0, object), e(0, object))
    # No dtype: a string or a nested object makes the array non-numeric instead of being converted silently.
    tr, size, rot, vel = (np.array([r[k] for r in records]) for k in ("translation", "size", "rotation", "velocity"))
    if any(a.dtype.kind not in "fi" for a in (tr, size, rot, vel)):
        raise TypeError("non-numeric geometry")
    tr, size, rot, vel = (a.astype(np.float64) for a in (tr, size, rot, vel))
    if tr.shape != (n, 3) or size.shape != (n, 3) or rot.shape != (n, 4) or vel.shape != (n, 2):
        raise ValueError("shape")
    raw_scores = [r["detection_score"] for r in records]
    # bool is an int subclass; strings would convert silently in np.array(..., float).
    if not all(type(s) in (float, int) for s in raw_scores):
        raise TypeError("score type")
    scores = np.array(raw_scores, dtype=np.float64)
    names = np.array([r["detection_name"] for r in records], dtype=object)
    tokens = np.array([r["sample_token"] for r in records], dtype=object)
    attrs = np.array([r["attribute_name"] for r in records], dtype=object)
    return tr, size, rot, vel, names, scores, tokens, attrs


def _first_bad_vectorised(arrays: tuple, owners: np.ndarray, names_ok, attrs_ok) -> int | None:
    """Row of the first record failing a value check, or None."""
    tr, size, rot, vel, names, scores, tokens, attrs = arrays
    n = scores.shape[0]
    if n == 0:
        return None
    bad = ~np.isfinite(tr).all(1)
    bad |= ~(np.isfinite(size).all(1) & (size > 0).all(1))
    bad |= ~np.isfinite(rot).all(1) | (np.abs(np.linalg.norm(rot, axis=1) - 1.0) > QUATERNION_NORM_TOL)
    bad |= ~np.isfinite(scores)
    bad |= ~np.isin(names, np.array(list(names_ok), dtype=object))
    bad |= ~np.array([isinstance(a, str) and (a == "" or a in attrs_ok) for a in attrs])
    bad |= tokens != owners
    rows = np.flatnonzero(bad)
    return int(rows[0]) if rows.size else None


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _check_record(rec: Any, owner: str, names_ok, attrs_ok) -> str | None:
    """The problem with one submission box as a short phrase naming the key, or None if it is valid."""
    if not isinstance(rec, dict):
        return f"box must be an object, got {type(rec).__name__}"
    for key in SUBMISSION_KEYS:
        if key not in rec:
            return f"missing key '{key}'"
    if not isinstance(rec["sample_token"], str):
        return "key 'sample_token' must be a string"
    if rec["sample_token"] != owner:
        return f"key 'sample_token' is '{rec['sample_token']}' but the box is listed under '{owner}'"
    for key, length in (("translation", 3), ("size", 3), ("rotation", 4), ("velocity", 2)):
        v = rec[key]
        if not isinstance(v, list) or len(v) != length or not all(_is_number(x) for x in v):
            return f"key '{key}' must be a list of {length} numbers, got {json.dumps(v)[:60]}"
        if key != "velocity" and not all(math.isfinite(x) for x in v):
            return f"key '{key}' has a non-finite value"
    if not all(x > 0 for x in rec["size"]):
        return f"key 'size' must be positive (w, l, h), got {rec['size']}"
    qn = math.sqrt(sum(x * x for x in rec["rotation"]))
    if abs(qn - 1.0) > QUATERNION_NORM_TOL:
        return f"key 'rotation' is not a unit quaternion (|q| = {qn:.6g})"
    s = rec["detection_score"]
    if not _is_number(s) or not math.isfinite(s):
        return f"key 'detection_score' must be a finite number, got {json.dumps(s)[:40]}"
    name = rec["detection_name"]
    if not isinstance(name, str) or name not in names_ok:
        return f"key 'detection_name' has unknown class {json.dumps(name)[:40]} (expected one of the 10 nuScenes classes)"
    a = rec["attribute_name"]
    if not isinstance(a, str) or (a != "" and a not in attrs_ok):
        return f"key 'attribute_name' has unknown attribute {json.dumps(a)[:40]}"
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Parquet / CSV table of canonical boxes
# ---------------------------------------------------------------------------------------------------------------------


def _load_table(path: Path, known_classes: frozenset[str] | None) -> PredictionSet:
    import pandas as pd

    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:  # pyarrow/pandas raise many types for unreadable files
        raise DataError(f"predictions file {path}: cannot read table ({err.__class__.__name__})") from None
    token_col = "frame_id" if "frame_id" in df.columns else "sample_token"
    required = (token_col, "class", "score", *TABLE_BOX_COLUMNS)
    for col in required:
        if col not in df.columns:
            raise DataError(f"predictions file {path}: missing column '{col}' "
                            f"(need frame_id, class, score, {', '.join(TABLE_BOX_COLUMNS)})")
    n = len(df)
    boxes = np.full((n, BOX_DIM), np.nan)
    cols = list(TABLE_BOX_COLUMNS) + [c for c in ("vx", "vy") if c in df.columns]
    for j, col in enumerate(cols):
        try:
            boxes[:, j] = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError):
            row = int(np.flatnonzero(pd.to_numeric(df[col], errors="coerce").isna())[0])
            raise DataError(f"predictions file {path}: row {row} (frame {df[token_col].iloc[row]}) "
                            f"column '{col}' is not a number") from None
    try:
        score = pd.to_numeric(df["score"], errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        score = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
    tokens = df[token_col].to_numpy(dtype=object)
    classes = df["class"].to_numpy(dtype=object)
    bad_geom = ~np.isfinite(boxes[:, :7]).all(1) | ~(boxes[:, 3:6] > 0).all(1)
    checks = (
        (~np.array([isinstance(t, str) and t != "" for t in tokens], dtype=bool), token_col, "must be a non-empty string"),
        (~np.isfinite(score), "score", "must be a finite number"),
        (~np.array([isinstance(c, str) and (known_classes is None or c in known_classes) for c in classes],
                   dtype=bool), "class", "is not a known class"),
        (bad_geom, "x..yaw", "must be finite with positive dx, dy, dz"),
    )
    first = None
    for mask, col, what in checks:
        rows = np.flatnonzero(mask)
        if rows.size and (first is None or rows[0] < first[0]):
            first = (int(rows[0]), col, what)
    if first is not None:
        row, col, what = first
        raise DataError(f"predictions file {path}: row {row} (frame {tokens[row]}) column '{col}' {what}")
    order = tuple(dict.fromkeys(tokens.tolist()))
    return PredictionSet(kind="table", path=str(path), sha256=file_sha256(path), sample_token=tokens,
                         detection_class=classes, score=score, boxes_lidar=boxes, sample_order=order)
