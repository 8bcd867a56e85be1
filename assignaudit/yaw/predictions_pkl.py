"""A framework's results pickle: loaded through the safe unpickler, then OpenPCDet or mmdetection3d by content.

* a list of per-frame dicts with ``boxes_lidar`` (or ``boxes_3d``): OpenPCDet ``result.pkl``
  (`assignaudit.yaw.predictions_pcdet`);
* a list of per-frame dicts with ``location`` and ``sample_idx``: mmdetection3d ``KittiMetric`` results
  (`assignaudit.yaw.predictions_mmdet3d`);
* anything else is refused with one line naming what was found.
"""

from __future__ import annotations

from pathlib import Path

from assignaudit.errors import DataError
from assignaudit.sources.safe_pickle import safe_load


def load_results_pkl(path: Path):
    """`PredictionSet` (OpenPCDet) or `CameraFramePredictions` (mmdetection3d KITTI) from a results pickle."""
    from assignaudit.yaw import predictions_mmdet3d, predictions_pcdet

    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    try:
        records = safe_load(path)
    except DataError as err:
        msg = str(err)
        if "refused to load" in msg and ("torch" in msg or "mmdet3d" in msg or "mmengine" in msg):
            msg += ("; raw model outputs cannot be read safely: dump KITTI-format results with KittiMetric's "
                    "pklfile_prefix, or nuScenes results with jsonfile_prefix")
        raise DataError(msg) from None
    if not isinstance(records, list):
        what = f"a dict with keys {sorted(map(str, records))[:6]}" if isinstance(records, dict) else \
            f"a {type(records).__name__}"
        raise DataError(f"predictions file {path}: expected a list of per-frame result dicts (OpenPCDet result.pkl or "
                        f"mmdetection3d KittiMetric results), got {what}")
    if predictions_pcdet.is_pcdet_results(records) or not records:
        return predictions_pcdet.from_records(records, path)
    if predictions_mmdet3d.is_mmdet3d_kitti_results(records):
        return predictions_mmdet3d.from_records(records, path)
    first = next((r for r in records if isinstance(r, dict)), None)
    found = f"dicts with keys {sorted(map(str, first))[:8]}" if first is not None else \
        f"{type(records[0]).__name__} entries"
    raise DataError(f"predictions file {path}: not an OpenPCDet result.pkl (per-frame dicts with name, score, "
                    f"boxes_lidar, frame_id) nor mmdetection3d KITTI results (name, score, location, dimensions, "
                    f"rotation_y, sample_idx); found {found}")
