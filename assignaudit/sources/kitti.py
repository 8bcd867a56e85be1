"""Raw KITTI object detection (``--kitti-root DIR``): ``training/label_2``, ``training/calib``, ``ImageSets``.

What is read, and how it becomes canonical frames (the rules are OpenPCDet's KITTI converter,
pcdet/datasets/kitti/kitti_dataset.py::get_infos / ``__getitem__``, pcdet/utils/object3d_kitti.py and
calibration_kitti.py, reproduced with our own code):

* ``ImageSets/<split>.txt``: the frame ids of the split, one per line, in file order (OpenPCDet's
  ``sample_id_list``). Every split except ``test`` reads ``training/`` (as upstream); ``test`` has no labels and is
  refused.
* ``training/label_2/<id>.txt``: one object per line, 15 whitespace-separated fields (16 with a score, which GT
  ignores): ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y``.
* ``training/calib/<id>.txt``: ``R0_rect`` (9 values) and ``Tr_velo_to_cam`` (12) by key, float32 as upstream
  (``P2`` is read when present; the boxes do not need it). The keys of the KITTI tracking calibration files
  (``R_rect``, ``Tr_velo_cam``) are accepted as the same matrices.
* boxes: `assignaudit.conventions.kitti_camera_to_canonical` (rectification, ``Tr_velo_to_cam``, bottom centre ->
  centre, ``(l, h, w) -> (dx, dy, dz)``, ``heading = -(pi/2 + rotation_y)``, then wrapped to [-pi, pi)).
* ``DontCare`` regions are not objects: OpenPCDet's ``get_infos`` computes ``gt_boxes_lidar`` for the
  non-DontCare objects only and ``__getitem__`` drops ``DontCare`` by name, so a frame holds exactly the boxes of
  the info's ``gt_boxes_lidar`` (KITTI's files list DontCare last; we drop by name wherever it is).
* ``difficulty``: ``Object3d.get_kitti_obj_level``: with ``height = y2 - y1 + 1`` (pixels, of the float32 2D box),
  Easy (0) if ``height >= 40 and truncated <= 0.15 and occluded <= 0``, else Moderate (1) if ``height >= 25 and
  truncated <= 0.3 and occluded <= 1``, else Hard (2) if ``height >= 25 and truncated <= 0.5 and occluded <= 2``,
  else -1.
* ``num_lidar_pts``: when ``training/velodyne/<id>.bin`` exists (float32 x, y, z, reflectance), the points inside
  each box by ``points_in_boxes_cpu`` (`assignaudit.sources.points`) over ALL points of the sweep: the
  ``num_points_in_gt`` that ``create_groundtruth_database`` writes into ``kitti_dbinfos_*.pkl`` (the count
  gt_sampling's ``filter_by_min_points`` reads). The info file's own ``annos['num_points_in_gt']`` counts only the
  points inside the camera's field of view (it needs ``image_2``) and may be lower. -1 when the ``.bin`` is absent.
  ``Frame.lidar_path`` is set when it exists.
* class names are KITTI's own (``Car``, ``Van``, ``Truck``, ``Pedestrian``, ``Person_sitting``, ``Cyclist``,
  ``Tram``, ``Misc``), ``detection_class == category``.
* ``Frame.extra["kitti_calib"]``: the frame's `KittiCalib`; KITTI-format predictions (camera frame) are brought to
  the LiDAR frame through it (`assignaudit.yaw.predictions_kitti`).

Everything is read and validated when the source is opened (labels and calibrations are small); the point clouds
are read one frame at a time while iterating (their sizes are checked up front).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from assignaudit.conventions import kitti_camera_to_lidar_raw, wrap_yaw, BOX_DIM, YAW
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame, SourceInfo
from assignaudit.sources.points import check_points_file_size, count_points_in_boxes, read_points_bin
from assignaudit.sources.validate import check_boxes

DONT_CARE = "DontCare"
KITTI_LABEL_FIELDS = ("type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y", "z",
                      "rotation_y", "score")
"""The fields of a KITTI label line (1-based field k is ``KITTI_LABEL_FIELDS[k - 1]``); GT lines have the first 15."""
CALIB_KEYS = {"R0_rect": ("R0_rect", "R_rect"), "Tr_velo_to_cam": ("Tr_velo_to_cam", "Tr_velo_cam"), "P2": ("P2",)}
CALIB_SIZES = {"R0_rect": 9, "Tr_velo_to_cam": 12, "P2": 12}
KITTI_DIFFICULTY_NAMES = {0: "Easy", 1: "Moderate", 2: "Hard", -1: "UnKnown"}


@dataclass(frozen=True)
class KittiCalib:
    """A frame's KITTI calibration as ``calibration_kitti.get_calib_from_file`` holds it (float32)."""

    r0_rect: np.ndarray
    """float32 ``[3, 3]``."""
    tr_velo_to_cam: np.ndarray
    """float32 ``[3, 4]``: LiDAR -> (unrectified) camera 0."""
    p2: np.ndarray | None = None
    """float32 ``[3, 4]`` camera-2 projection (None when the file has no ``P2``)."""

    @classmethod
    def from_matrices(cls, r0_rect, tr_velo_to_cam, p2=None) -> "KittiCalib":
        """From 3x3/3x4 or the 4x4 forms an info file stores (``info['calib']``)."""
        r0 = np.asarray(r0_rect, dtype=np.float32)[:3, :3].copy()
        v2c = np.asarray(tr_velo_to_cam, dtype=np.float32)[:3, :4].copy()
        return cls(r0, v2c, None if p2 is None else np.asarray(p2, dtype=np.float32)[:3, :4].copy())


@dataclass(frozen=True)
class KittiObjects:
    """The parsed lines of one KITTI label (or KITTI-format prediction) file, row per line."""

    name: np.ndarray  # object [N]
    truncated: np.ndarray  # float64 [N]
    occluded: np.ndarray  # float64 [N]
    alpha: np.ndarray  # float64 [N]
    bbox: np.ndarray  # float32 [N, 4] x1, y1, x2, y2 (``Object3d.box2d``)
    dimensions_lhw: np.ndarray  # float64 [N, 3] (l, h, w), OpenPCDet's ``annos['dimensions']`` order
    location: np.ndarray  # float64 [N, 3] bottom centre, rectified camera
    rotation_y: np.ndarray  # float64 [N]
    score: np.ndarray  # float64 [N], -1 where the line has no score (``Object3d.score``)
    line: np.ndarray  # int64 [N] 1-based line number in the file

    def __len__(self) -> int:
        return int(self.name.shape[0])

    def take(self, rows: np.ndarray) -> "KittiObjects":
        return KittiObjects(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def _number_error(where: str, line_no: int, fields: list[str]) -> DataError:
    for k, tok in enumerate(fields[1:], start=2):
        try:
            float(tok)
        except ValueError:
            return DataError(f"{where}: line {line_no} field {k} ({KITTI_LABEL_FIELDS[k - 1]}) {tok!r} is not a "
                             "number")
    return DataError(f"{where}: line {line_no} is malformed")  # pragma: no cover - float() failed on the array only


def parse_kitti_objects(text: str, where: str, *, require_score: bool = False) -> KittiObjects:
    """Parse KITTI label-format lines (module docstring). Blank lines are skipped.

    GT lines have 15 fields, or 16 with a score; with ``require_score`` (predictions) exactly 16. Any other count,
    a non-numeric value or a non-finite one is a `DataError` naming the line and the field.
    """
    rows, line_nos = [], []
    allowed = (16,) if require_score else (15, 16)
    for line_no, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) not in allowed:
            want = ("16 (type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y score)" if require_score
                    else "15 (type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y), or 16 with a score")
            raise DataError(f"{where}: line {line_no} has {len(fields)} fields, a KITTI "
                            f"{'prediction' if require_score else 'label'} line has {want}")
        rows.append(fields)
        line_nos.append(line_no)
    n = len(rows)
    if n == 0:
        z = np.zeros
        return KittiObjects(np.empty(0, object), z(0), z(0), z(0), z((0, 4), np.float32), z((0, 3)), z((0, 3)), z(0),
                            z(0), z(0, np.int64))
    names = np.array([r[0] for r in rows], dtype=object)
    width = max(len(r) for r in rows)
    padded = [r[1:] + ["-1"] * (width - len(r)) for r in rows]
    try:
        vals = np.array(padded, dtype=np.float64)
    except ValueError:
        for r, line_no in zip(rows, line_nos):
            try:
                np.array(r[1:], dtype=np.float64)
            except ValueError:
                raise _number_error(where, line_no, r) from None
        raise  # pragma: no cover
    bad = ~np.isfinite(vals)
    if bad.any():
        i, k = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(f"{where}: line {line_nos[i]} field {k + 2} ({KITTI_LABEL_FIELDS[k + 1]}) is not finite")
    # vals columns: 0 truncated, 1 occluded, 2 alpha, 3-6 bbox, 7 h, 8 w, 9 l, 10-12 xyz, 13 ry, 14 score
    return KittiObjects(
        name=names, truncated=vals[:, 0].copy(), occluded=vals[:, 1].copy(), alpha=vals[:, 2].copy(),
        bbox=vals[:, 3:7].astype(np.float32), dimensions_lhw=vals[:, [9, 7, 8]].copy(),
        location=vals[:, 10:13].copy(), rotation_y=vals[:, 13].copy(),
        score=vals[:, 14].copy() if width == 16 else np.full(n, -1.0), line=np.array(line_nos, dtype=np.int64),
    )


def kitti_difficulty(objects: KittiObjects) -> np.ndarray:
    """int64 ``[N]``: ``Object3d.get_kitti_obj_level`` for every object (module docstring)."""
    box = objects.bbox
    height = box[:, 3].astype(np.float64) - box[:, 1].astype(np.float64) + 1
    t, o = objects.truncated, objects.occluded
    easy = (height >= 40) & (t <= 0.15) & (o <= 0)
    moderate = (height >= 25) & (t <= 0.3) & (o <= 1)
    hard = (height >= 25) & (t <= 0.5) & (o <= 2)
    return np.select([easy, moderate, hard], [0, 1, 2], default=-1).astype(np.int64)


def read_calib(path: Path) -> KittiCalib:
    """A KITTI ``calib/<id>.txt`` (``KEY: v1 v2 ...`` lines) -> `KittiCalib`; `DataError` naming what is missing."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"KITTI calibration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read KITTI calibration {path}: {err}") from None
    entries: dict[str, list[str]] = {}
    for raw in text.splitlines():
        key, sep, rest = raw.partition(":")
        if sep:
            entries[key.strip()] = rest.split()
    mats: dict[str, np.ndarray] = {}
    for name, aliases in CALIB_KEYS.items():
        key = next((a for a in aliases if a in entries), None)
        if key is None:
            if name == "P2":
                continue
            raise DataError(f"KITTI calibration {path} has no {name} line (needed to bring the labels from the camera "
                            "to the LiDAR frame)")
        values = entries[key]
        try:
            arr = np.array(values, dtype=np.float32)
        except ValueError:
            raise DataError(f"KITTI calibration {path}: {key} has a non-numeric value") from None
        if arr.size != CALIB_SIZES[name] or not np.isfinite(arr).all():
            raise DataError(f"KITTI calibration {path}: {key} must hold {CALIB_SIZES[name]} finite numbers, got "
                            f"{arr.size}")
        mats[name] = arr
    return KittiCalib(mats["R0_rect"].reshape(3, 3), mats["Tr_velo_to_cam"].reshape(3, 4),
                      mats["P2"].reshape(3, 4) if "P2" in mats else None)


def read_image_set(root: Path, split: str) -> list[str]:
    """The frame ids of ``ImageSets/<split>.txt`` in file order; `DataError` when the list is missing or empty."""
    sets = root / "ImageSets"
    path = sets / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
        raise DataError(f"KITTI split list {path} not found (found: {', '.join(found) if found else 'no ImageSets/*.txt'}"
                        "); pass --split with one of them")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"KITTI split list {path} is empty")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise DataError(f"KITTI split list {path} lists frame {i} twice")
        seen.add(i)
    return ids


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise DataError(f"KITTI {what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read KITTI {what} {path}: {err}") from None


@dataclass(frozen=True)
class _KittiRecord:
    sample_id: str
    boxes_raw: np.ndarray  # float64 [N, 7], OpenPCDet gt_boxes_lidar (unwrapped heading)
    names: np.ndarray
    difficulty: np.ndarray
    calib: KittiCalib
    lidar_path: Path | None


class KittiSource:
    """`BoxSource` over a raw KITTI object dataset: ``KittiSource(root, split="train")`` (module docstring)."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"KITTI root not found: {root}")
        if split == "test":
            raise DataError("KITTI split 'test' has no labels (testing/ has no label_2); use train, val or another "
                            "ImageSets list of training frames")
        ids = read_image_set(root, split)
        base = root / "training"
        for sub in ("label_2", "calib"):
            if not (base / sub).is_dir():
                raise DataError(f"KITTI directory {base / sub} not found (--kitti-root must hold training/label_2 and "
                                "training/calib)")
        velodyne = base / "velodyne"
        self._records = [self._read_frame(base, i, velodyne) for i in ids]
        self.root = root
        self.split = split
        self.info = SourceInfo(kind="kitti", dataroot=str(root), version="", split=split, num_scenes=0,
                               num_samples=len(ids))

    @staticmethod
    def _read_frame(base: Path, sample_id: str, velodyne: Path) -> _KittiRecord:
        label_path = base / "label_2" / f"{sample_id}.txt"
        objects = parse_kitti_objects(_read_text(label_path, "label file"), str(label_path))
        calib = read_calib(base / "calib" / f"{sample_id}.txt")
        difficulty = kitti_difficulty(objects)
        keep = np.flatnonzero(objects.name != DONT_CARE)
        objects, difficulty = objects.take(keep), difficulty[keep]
        raw = kitti_camera_to_lidar_raw(objects.location, objects.dimensions_lhw, objects.rotation_y,
                                        calib.r0_rect, calib.tr_velo_to_cam)
        canonical = raw.copy()
        canonical[:, YAW] = wrap_yaw(raw[:, YAW])
        check_boxes(canonical, str(label_path), ids=[f"line {k}" for k in objects.line])
        lidar = velodyne / f"{sample_id}.bin"
        if lidar.is_file():
            check_points_file_size(lidar)
        else:
            lidar = None
        return _KittiRecord(sample_id, raw, objects.name, difficulty, calib, lidar)

    # ---- BoxSource ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def sample_tokens(self) -> list[str]:
        return [r.sample_id for r in self._records]

    def dataset_tokens(self) -> set[str]:
        """Every labelled frame id (``training/label_2/*.txt``): predictions of frames outside the split are left
        out by ``yaw``, not refused as unknown."""
        return {p.stem for p in (self.root / "training" / "label_2").glob("*.txt")}

    def frame(self, index: int) -> Frame:
        rec = self._records[index]
        n = rec.boxes_raw.shape[0]
        boxes = np.full((n, BOX_DIM), np.nan)
        boxes[:, :7] = rec.boxes_raw
        boxes[:, YAW] = wrap_yaw(rec.boxes_raw[:, YAW])
        if rec.lidar_path is not None:
            # dbinfos count with the info's (unwrapped) boxes: boxes.float() of gt_boxes_lidar
            pts = count_points_in_boxes(read_points_bin(rec.lidar_path), rec.boxes_raw)
        else:
            pts = np.full(n, -1, dtype=np.int64)
        return Frame(
            sample_token=rec.sample_id,
            boxes_lidar=boxes,
            detection_class=rec.names.copy(),
            category=rec.names.copy(),
            ann_token=np.array([f"{rec.sample_id}_{k}" for k in range(n)], dtype=object),
            instance_token=np.full(n, None, dtype=object),
            num_lidar_pts=pts,
            num_radar_pts=np.full(n, -1, dtype=np.int64),
            difficulty=rec.difficulty.copy(),
            lidar_path=None if rec.lidar_path is None else str(rec.lidar_path.resolve()),
            extra={"kitti_calib": rec.calib},
        )

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        for i in range(len(self)) if indices is None else indices:
            yield self.frame(i)
