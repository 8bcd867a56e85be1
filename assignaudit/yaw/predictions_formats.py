"""Which module reads a prediction file that is not a nuScenes JSON or a box table (by suffix / directory)."""

from __future__ import annotations

from pathlib import Path


def external_loader(path: Path):
    """The loader of a framework's own format (one module each), or None for the formats that
    `assignaudit.yaw.predictions` reads itself (JSON, Parquet, CSV).

    ``.pkl``: OpenPCDet / mmdetection3d results (`predictions_pkl`); a directory or ``.txt``: KITTI label-format
    files (`predictions_kitti`); ``.feather``: AV2 detections (`predictions_av2`). These loaders may return
    camera-frame predictions (``.to_lidar(frames)``).
    """
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        from assignaudit.yaw.predictions_pkl import load_results_pkl

        return load_results_pkl
    if suffix == ".feather":
        from assignaudit.yaw.predictions_av2 import load_av2_detections

        return load_av2_detections
    if path.is_dir() or suffix == ".txt":
        from assignaudit.yaw.predictions_kitti import load_kitti_txt

        return load_kitti_txt
    return None
