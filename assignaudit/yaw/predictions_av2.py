"""Argoverse 2 detections (``.feather``): the input of av2's own evaluation (av2/evaluation/detection/eval.py).

One row per detection with ``log_id``, ``timestamp_ns``, ``category`` (the ``DETECTION_UUID_COLUMNS``), the cuboid
``tx_m, ty_m, tz_m, length_m, width_m, height_m, qw, qx, qy, qz`` in the ego frame of that sweep and ``score``
(``DTS_COLUMNS``). The frame key is ``"<log_id>/<timestamp_ns>"``, the ``sample_token`` of
`assignaudit.sources.av2.AV2Source`; the boxes become canonical through
`assignaudit.conventions.av2_ego_to_canonical`, exactly as the GT does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assignaudit.conventions import av2_ego_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources.av2 import AV2_GEOMETRY_COLUMNS
from assignaudit.sources.validate import check_boxes, check_quaternions, numeric_column
from assignaudit.yaw.predictions import PredictionSet, file_sha256

AV2_DETECTION_COLUMNS = ("log_id", "timestamp_ns", "category", *AV2_GEOMETRY_COLUMNS, "score")


def load_av2_detections(path: Path) -> PredictionSet:
    """An AV2 detections feather -> `PredictionSet` (kind ``av2_feather``); `DataError` naming the first bad row."""
    import pyarrow.feather as feather

    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    try:
        table = feather.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise DataError(f"predictions file {path}: cannot read feather ({type(err).__name__})") from None
    missing = [c for c in AV2_DETECTION_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"predictions file {path}: missing column '{missing[0]}' (AV2 detections: "
                        f"{', '.join(AV2_DETECTION_COLUMNS)})")
    df = table.select(list(AV2_DETECTION_COLUMNS)).to_pandas()
    where = f"predictions file {path}"
    n = len(df)
    geom = np.column_stack([numeric_column(df[c].to_numpy(), where, c) for c in AV2_GEOMETRY_COLUMNS]) \
        if n else np.zeros((0, len(AV2_GEOMETRY_COLUMNS)))
    score = numeric_column(df["score"].to_numpy(), where, "score")
    ts = df["timestamp_ns"].to_numpy()
    if ts.dtype.kind not in "iu":
        raise DataError(f"{where}: column 'timestamp_ns' must hold integers, got {ts.dtype}")
    logs = df["log_id"].to_numpy(dtype=object)
    cats = df["category"].to_numpy(dtype=object)
    bad = np.array([not (isinstance(a, str) and a and isinstance(c, str) and c) for a, c in zip(logs, cats)],
                   dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: row {row}: log_id and category must be non-empty strings")
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        raise DataError(f"{where}: row {int(bad[0])}: score must be a finite number")
    check_quaternions(geom[:, 6:10], where)
    boxes = av2_ego_to_canonical(geom[:, 0:3], geom[:, 3:6], geom[:, 6:10])
    check_boxes(boxes, where)
    tokens = np.array([f"{a}/{int(t)}" for a, t in zip(logs, ts)], dtype=object)
    return PredictionSet(kind="av2_feather", path=str(path), sha256=file_sha256(path), sample_token=tokens,
                         detection_class=cats, score=score, boxes_lidar=boxes,
                         sample_order=tuple(dict.fromkeys(tokens.tolist())))
