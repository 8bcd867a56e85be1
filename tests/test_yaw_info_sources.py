"""`yaw` on info-file sources: the KITTI infos (OpenPCDet and mmdetection3d v2) of the raw-KITTI fixture with the
three KITTI prediction formats give the report that raw KITTI gives; Waymo infos with an OpenPCDet result.pkl."""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
INFOS = REPO / "tests/data/infos"


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


raw = _module("_yaw_raw_sources", REPO / "tests/test_yaw_raw_sources.py")
kitti = raw.kitti  # the module fixture: raw KITTI fixture + predictions


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in x:
            if isinstance(x[key], float):
                assert y[key] == pytest.approx(x[key], abs=1e-4), (x["class"], x["band"], key)
            else:
                assert x[key] == y[key], (x["class"], x["band"], key)


@pytest.mark.parametrize("infos", ["pcdet_kitti_infos_train.pkl", "mmdet3d_kitti_infos_train.pkl"])
def test_yaw_on_kitti_infos_equals_raw_kitti(kitti, tmp_path, infos):
    _, root, manifest, preds = kitti
    pcdet = raw.write_pcdet_pkl(kitti, tmp_path / "all.pkl")
    annos = [a for a in pickle.loads(pcdet.read_bytes()) if a["frame_id"] in manifest["train"]]
    pcdet.write_bytes(pickle.dumps(annos))  # the info file holds the train frames only
    files = {"pcdet_pkl": pcdet, "kitti_txt": raw.write_kitti_txt(kitti, tmp_path / "txt"),
             "mmdet3d_kitti_pkl": raw.write_mmdet3d_pkl(kitti, tmp_path / "mm.pkl")}
    n_gt = sum(len(manifest["frames"][s]["objects"]) for s in manifest["train"])
    for kind, path in files.items():
        base = raw._yaw(["--kitti-root", str(root), "--predictions", str(path)], tmp_path / f"raw_{kind}")
        rep = raw._yaw(["--infos", str(INFOS / infos), "--predictions", str(path)], tmp_path / kind)
        assert rep["meta"]["predictions_format"] == kind and rep["meta"]["num_gt_evaluated"] == n_gt
        rows = [r for r in rep["summary"] if r["band"] == "all"]
        assert sum(r["num_flips"] for r in rows) == raw.FLIPPED
        _same(base["summary"], rep["summary"])


def test_yaw_on_waymo_infos_with_a_pcdet_result_pkl(tmp_path):
    infos = pickle.loads((INFOS / "pcdet_waymo_infos_train.pkl").read_bytes())
    det_annos, flips, n = [], 0, 0
    for info in infos:
        an = info["annos"]
        boxes = an["gt_boxes_lidar"][:, :7].astype(np.float64).copy()
        boxes[:, 6] += 0.05
        turn = np.arange(len(boxes)) == 0  # the first box of every frame flipped
        boxes[turn, 6] += math.pi
        boxes[:, 6] = (boxes[:, 6] + math.pi) % (2 * math.pi) - math.pi
        flips += int(turn.sum())
        n += len(boxes)
        det_annos.append({"name": an["name"], "score": np.full(len(boxes), 0.8, np.float32),
                          "boxes_lidar": boxes.astype(np.float32), "frame_id": info["frame_id"]})
    (tmp_path / "result.pkl").write_bytes(pickle.dumps(det_annos))
    rep = raw._yaw(["--infos", str(INFOS / "pcdet_waymo_infos_train.pkl"), "--predictions",
                    str(tmp_path / "result.pkl")], tmp_path / "o")
    rows = [r for r in rep["summary"] if r["band"] == "all"]
    assert rep["meta"]["dataset_kind"] == "pcdet_infos" and rep["meta"]["num_gt_evaluated"] == n
    assert sum(r["num_matched"] for r in rows) == n and sum(r["num_flips"] for r in rows) == flips
