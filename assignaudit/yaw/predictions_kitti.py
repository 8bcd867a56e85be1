"""KITTI label-format predictions (one ``<frame_id>.txt`` per frame) and camera-frame predictions in general.

``--predictions DIR`` (every ``*.txt`` in it; what OpenPCDet's ``test.py --save_to_file`` writes to
``final_result/data/`` and mmdetection3d's ``KittiMetric(submission_prefix=...)`` writes) or ``--predictions
FILE.txt`` (one frame). A line has the 16 fields of a KITTI label plus score:
``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y score``; the frame id is the file name's stem
(``000008.txt`` -> ``000008``). An empty file is a frame without predictions.

The boxes are in the frame's rectified camera frame, so they can be put in the LiDAR frame only once the GT source
is open: `load_kitti_txt` returns a `CameraFramePredictions` (validated, nothing converted) and
`CameraFramePredictions.to_lidar` converts each frame's rows through that frame's calibration
(``Frame.extra["kitti_calib"]``, a `assignaudit.sources.kitti.KittiCalib`) with
`assignaudit.conventions.kitti_camera_to_canonical`, the conversion the GT labels get. The mmdetection3d KITTI
results pickle (`assignaudit.yaw.predictions_mmdet3d`) takes the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from assignaudit.conventions import BOX_DIM, kitti_camera_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame
from assignaudit.sources.validate import check_boxes
from assignaudit.yaw.predictions import PredictionSet, file_sha256

KITTI_CALIB_KEY = "kitti_calib"
"""``Frame.extra`` key of the frame's `KittiCalib` (set by the KITTI sources)."""


@dataclass(frozen=True)
class CameraFramePredictions:
    """Predictions whose boxes are in each frame's KITTI rectified camera frame, not yet in the LiDAR frame.

    Rows in file order. `to_lidar` turns them into a `PredictionSet` of kind ``kind`` once the frames are known.
    """

    kind: str
    path: str
    sha256: str
    sample_token: np.ndarray  # object [P]
    detection_class: np.ndarray  # object [P]
    score: np.ndarray  # float64 [P]
    location: np.ndarray  # float64 [P, 3] bottom centre
    dimensions_lhw: np.ndarray  # float64 [P, 3]
    rotation_y: np.ndarray  # float64 [P]
    sample_order: tuple[str, ...] = ()
    where: np.ndarray | None = None
    """object [P]: how the user finds row i in the input (``file:line``), for messages."""

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def to_lidar(self, frames: Sequence[Frame]) -> PredictionSet:
        """The same rows with canonical LiDAR-frame boxes, each frame's rows through that frame's calibration.

        Rows of frames not in ``frames`` keep NaN boxes (the yaw preparation drops or refuses them by token).
        `DataError` if a frame with predictions has no KITTI calibration.
        """
        n = len(self)
        boxes = np.full((n, BOX_DIM), np.nan)
        by_token = {f.sample_token: f for f in frames}
        order = np.argsort(self.sample_token.astype(str), kind="stable") if n else np.zeros(0, np.int64)
        tokens_sorted = self.sample_token[order]
        cuts = np.flatnonzero(tokens_sorted[1:] != tokens_sorted[:-1]) + 1 if n else np.zeros(0, np.int64)
        for grp in np.split(order, cuts) if n else []:
            frame = by_token.get(self.sample_token[grp[0]])
            if frame is None:
                continue
            calib = frame.extra.get(KITTI_CALIB_KEY)
            if calib is None:
                raise DataError(f"predictions {self.path} are KITTI camera-frame boxes, but frame "
                                f"{frame.sample_token} of the GT source has no KITTI calibration (use --kitti-root or "
                                "a KITTI info file as the source)")
            boxes[grp] = kitti_camera_to_canonical(self.location[grp], self.dimensions_lhw[grp],
                                                   self.rotation_y[grp], calib.r0_rect, calib.tr_velo_to_cam)
        done = np.isfinite(boxes[:, 0])
        if done.any():
            ids = None if self.where is None else self.where[done]
            check_boxes(boxes[done], f"predictions {self.path}", ids=ids)
        return PredictionSet(kind=self.kind, path=self.path, sha256=self.sha256, sample_token=self.sample_token,
                             detection_class=self.detection_class, score=self.score, boxes_lidar=boxes,
                             sample_order=self.sample_order)


def camera_predictions(kind: str, path: Path, tokens, names, scores, location, dims_lhw, rotation_y,
                       sample_order, where=None) -> CameraFramePredictions:
    """Validate camera-frame prediction arrays (`sources.validate` rules) into a `CameraFramePredictions`."""
    n = len(tokens)
    scores = np.asarray(scores, dtype=np.float64).reshape(n)
    location = np.asarray(location, dtype=np.float64).reshape(n, 3)
    dims_lhw = np.asarray(dims_lhw, dtype=np.float64).reshape(n, 3)
    rotation_y = np.asarray(rotation_y, dtype=np.float64).reshape(n)
    label = f"predictions {path}"
    # Same rules as LiDAR boxes (finite centre, size > 0, finite heading), checked in camera coordinates.
    check_boxes(np.column_stack([location, dims_lhw, rotation_y]) if n else np.zeros((0, 7)), label, ids=where)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{label}: {where[r] if where is not None else f'row {r}'}: score {scores[r]!r} is not finite")
    return CameraFramePredictions(kind=kind, path=str(path), sha256=file_sha256(path) if path.is_file() else
                                  _dir_sha256(path), sample_token=np.asarray(tokens, dtype=object),
                                  detection_class=np.asarray(names, dtype=object), score=scores, location=location,
                                  dimensions_lhw=dims_lhw, rotation_y=rotation_y, sample_order=tuple(sample_order),
                                  where=None if where is None else np.asarray(where, dtype=object))


def _dir_sha256(path: Path) -> str:
    """sha256 over the sorted ``(name, sha256)`` of the ``*.txt`` files of a prediction directory."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(path.glob("*.txt")):
        h.update(p.name.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def load_kitti_txt(path: Path) -> CameraFramePredictions:
    """Read a directory of KITTI-format prediction files, or one file (module docstring)."""
    from assignaudit.sources.kitti import parse_kitti_objects

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"predictions directory {path} holds no *.txt files (KITTI format: one <frame_id>.txt "
                            "per frame)")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"predictions file not found: {path}")
    parts = []
    for f in files:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read predictions file {f}: {err}") from None
        parts.append((f, parse_kitti_objects(text, f"predictions file {f}", require_score=True)))
    tokens = np.concatenate([np.full(len(o), f.stem, dtype=object) for f, o in parts])
    where = np.concatenate([np.array([f"{f.name}:{k}" for k in o.line], dtype=object) for f, o in parts])
    cat = lambda attr: np.concatenate([getattr(o, attr) for _, o in parts])  # noqa: E731
    return camera_predictions("kitti_txt", path, tokens, cat("name"), cat("score"), cat("location"),
                              cat("dimensions_lhw"), cat("rotation_y"), [f.stem for f, _ in parts], where)
