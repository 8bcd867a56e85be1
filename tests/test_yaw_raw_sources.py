"""`yaw` on raw KITTI with the frameworks' prediction formats: the same boxes as an OpenPCDet ``result.pkl``, as
KITTI label-format txt files and as an mmdetection3d ``KittiMetric`` pickle give the same report, and the injected
flips are found; `yaw` on AV2; bad prediction files are one ``error:`` line, exit 2, nothing written."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
FLIPPED = 3


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "fixtures" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    gen = _generator("make_kitti_fixture")
    root = tmp_path_factory.mktemp("kitti")
    manifest = gen.make_kitti_fixture(root)
    # Predictions in the LiDAR frame (float32, as OpenPCDet's pred_boxes): every train GT with yaw + 0.1 rad, the
    # first FLIPPED of them turned by pi, one duplicate and one false positive.
    preds: dict[str, list] = {}
    k = 0
    for sid in manifest["train"]:
        rows = []
        for o in manifest["frames"][sid]["objects"]:
            b = np.array(o["box_lidar"], dtype=np.float64)
            b[:2] += 0.05
            b[6] += 0.1 + (math.pi if k < FLIPPED else 0.0)
            b[6] = (b[6] + math.pi) % (2 * math.pi) - math.pi
            rows.append((o["name"], 0.9 - 0.01 * len(rows), b))
            k += 1
        first = rows[0]
        rows.append((first[0], 0.3, first[2] + np.array([0.2, 0, 0, 0, 0, 0, 0])))  # duplicate
        rows.append(("Car", 0.2, np.array([60.0, -25.0, -0.9, 3.9, 1.6, 1.5, 0.3])))  # nothing there
        preds[sid] = rows
    return gen, root, manifest, preds


def _lidar(rows) -> np.ndarray:
    return np.array([b for _, _, b in rows], dtype=np.float32).reshape(-1, 7)


def _camera(gen, rows, cal):
    out = [gen.lidar_to_camera_label(b.astype(np.float64), cal) for b in _lidar(rows)]
    loc = np.array([o[0] for o in out]).reshape(-1, 3)
    hwl = np.array([o[1] for o in out]).reshape(-1, 3)
    ry = np.array([o[2] for o in out])
    return loc, hwl[:, [2, 0, 1]], ry  # location, (l, h, w), rotation_y


def _cal(manifest, sid):
    return {k: np.array(v) for k, v in manifest["frames"][sid]["calib"].items()}


def write_pcdet_pkl(kitti, path: Path) -> Path:
    gen, _, manifest, preds = kitti
    det_annos = []
    for sid, rows in preds.items():
        loc, lhw, ry = _camera(gen, rows, _cal(manifest, sid))
        det_annos.append({
            "name": np.array([n for n, _, _ in rows]), "truncated": np.zeros(len(rows)),
            "occluded": np.zeros(len(rows)), "alpha": np.zeros(len(rows)), "bbox": np.zeros((len(rows), 4)),
            "dimensions": lhw.astype(np.float32), "location": loc.astype(np.float32), "rotation_y": ry,
            "score": np.array([s for _, s, _ in rows], dtype=np.float32), "boxes_lidar": _lidar(rows),
            "frame_id": sid,
        })
    det_annos.append({"name": np.array(["Car"]), "score": np.array([0.5], np.float32),
                      "boxes_lidar": np.array([[10, 0, -1, 4, 2, 1.5, 0]], np.float32),
                      "frame_id": manifest["val"][0]})  # a frame outside the split: left out (counted)
    det_annos.append({"name": np.zeros(0), "score": np.zeros(0), "boxes_lidar": np.zeros((0, 7)),
                      "frame_id": manifest["val"][1]})  # empty frame
    path.write_bytes(pickle.dumps(det_annos))
    return path


def write_kitti_txt(kitti, directory: Path) -> Path:
    gen, _, manifest, preds = kitti
    directory.mkdir()
    for sid, rows in preds.items():
        loc, lhw, ry = _camera(gen, rows, _cal(manifest, sid))
        lines = [f"{n} -1 -1 0.0000 0.00 0.00 50.00 50.00 {d[1]:.8f} {d[2]:.8f} {d[0]:.8f} {p[0]:.8f} {p[1]:.8f} "
                 f"{p[2]:.8f} {r:.8f} {s:.4f}" for (n, s, _), p, d, r in zip(rows, loc, lhw, ry)]
        (directory / f"{sid}.txt").write_text("\n".join(lines) + "\n")
    return directory


def write_mmdet3d_pkl(kitti, path: Path) -> Path:
    gen, _, manifest, preds = kitti
    det_annos = []
    for sid, rows in preds.items():
        loc, lhw, ry = _camera(gen, rows, _cal(manifest, sid))
        n = len(rows)
        det_annos.append({"name": np.array([r[0] for r in rows]), "truncated": np.zeros(n), "occluded": np.zeros(n),
                          "alpha": np.zeros(n), "bbox": np.zeros((n, 4), np.float32),
                          "dimensions": lhw.astype(np.float32), "location": loc.astype(np.float32),
                          "rotation_y": ry.astype(np.float32), "score": np.array([r[1] for r in rows], np.float32),
                          "sample_idx": np.full(n, int(sid), dtype=np.int64)})
    path.write_bytes(pickle.dumps(det_annos))
    return path


def _yaw(args, out: Path) -> dict:
    from assignaudit.report import read_metadata

    res = runner.invoke(app, ["yaw", *args, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    payload["meta"] = read_metadata(out / "yaw_summary.parquet")  # the full provenance
    return payload


def test_three_formats_give_the_same_report(kitti, tmp_path):
    _, root, manifest, preds = kitti
    files = {"pcdet_pkl": write_pcdet_pkl(kitti, tmp_path / "result.pkl"),
             "kitti_txt": write_kitti_txt(kitti, tmp_path / "data"),
             "mmdet3d_kitti_pkl": write_mmdet3d_pkl(kitti, tmp_path / "pred_instances_3d.pkl")}
    reports = {k: _yaw(["--kitti-root", str(root), "--predictions", str(p)], tmp_path / k) for k, p in files.items()}
    n_gt = sum(len(manifest["frames"][s]["objects"]) for s in manifest["train"])
    for kind, rep in reports.items():
        assert rep["meta"]["predictions_format"] == kind and rep["meta"]["eval_frame"] == "lidar"
        assert rep["meta"]["num_gt_evaluated"] == n_gt
        assert rep["meta"]["num_predictions_evaluated"] == sum(len(r) for r in preds.values())
        assert rep["meta"]["dropped"]["pred_outside_split"] == (1 if kind == "pcdet_pkl" else 0)
        rows = [r for r in rep["summary"] if r["band"] == "all"]
        assert sum(r["num_matched"] for r in rows) == n_gt
        assert sum(r["num_flips"] for r in rows) == FLIPPED
        # every matched residual is 0.1 rad or pi + 0.1 (GT from 2-decimal labels: +-0.005)
        total = sum(r["mean_abs_yaw_err"] * r["num_matched"] for r in rows)
        expected = (n_gt - FLIPPED) * 0.1 + FLIPPED * (math.pi - 0.1)
        assert total == pytest.approx(expected, abs=0.006 * n_gt)
    base = reports["pcdet_pkl"]["summary"]
    for kind in ("kitti_txt", "mmdet3d_kitti_pkl"):
        other = reports[kind]["summary"]
        assert len(other) == len(base)
        for a, b in zip(base, other):
            assert a.keys() == b.keys()
            for key in a:
                if isinstance(a[key], float):
                    assert b[key] == pytest.approx(a[key], abs=1e-6), (kind, a["class"], a["band"], key)
                else:
                    assert a[key] == b[key], (kind, a["class"], a["band"], key)


def test_yaw_on_av2_with_a_parquet_table(tmp_path):
    """AV2 has no poses: yaw runs in the ego (= LiDAR) frame; predictions = GT turned by 0.2 rad."""
    import pandas as pd

    root = tmp_path / "av2"
    manifest = _generator("make_av2_fixture").make_av2_fixture(root)
    rows = []
    for lg in manifest["val"]:
        for fr in lg["frames"]:
            for b, c in zip(fr["boxes"], fr["rows"]["category"]):
                rows.append({"frame_id": f"{lg['log_id']}/{fr['timestamp_ns']}", "class": c, "score": 0.5,
                             **dict(zip(["x", "y", "z", "dx", "dy", "dz"], b[:6])), "yaw": b[6] + 0.2})
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    rep = _yaw(["--av2-root", str(root), "--split", "val", "--predictions", str(tmp_path / "p.parquet")],
               tmp_path / "o")
    allrows = [r for r in rep["summary"] if r["band"] == "all"]
    assert sum(r["num_matched"] for r in allrows) == len(rows)
    for r in allrows:
        assert r["mean_abs_yaw_err"] == pytest.approx(0.2, abs=1e-9)
    assert rep["meta"]["dataset_kind"] == "av2" and rep["meta"]["eval_frame"] == "lidar"

    # the same detections in av2's own evaluation format (detections.feather): quaternions turned by Rz(0.2)
    import pyarrow as pa
    import pyarrow.feather as feather
    from scipy.spatial.transform import Rotation

    dets = []
    for lg in manifest["val"]:
        for fr in lg["frames"]:
            d = fr["rows"].copy()
            q = d[["qw", "qx", "qy", "qz"]].to_numpy()
            turned = (Rotation.from_euler("z", 0.2) * Rotation.from_quat(q[:, [1, 2, 3, 0]])).as_quat()
            d[["qw", "qx", "qy", "qz"]] = turned[:, [3, 0, 1, 2]]
            dets.append(d.assign(log_id=lg["log_id"], score=0.5).drop(columns=["num_interior_pts"]))
    feather.write_feather(pa.Table.from_pandas(pd.concat(dets), preserve_index=False), tmp_path / "dets.feather")
    rep2 = _yaw(["--av2-root", str(root), "--split", "val", "--predictions", str(tmp_path / "dets.feather")],
                tmp_path / "o2")
    assert rep2["meta"]["predictions_format"] == "av2_feather"
    for a, b in zip(rep["summary"], rep2["summary"]):
        assert {k: v for k, v in a.items() if not isinstance(v, float)} == \
            {k: v for k, v in b.items() if not isinstance(v, float)}
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------------
# bad prediction files
# ---------------------------------------------------------------------------------------------------------------------


def _fails(args, tmp_path, *needles) -> str:
    out = tmp_path / "o"
    res = runner.invoke(app, ["yaw", *args, "--out", str(out)])
    assert res.exit_code == 2, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output and not out.exists()
    for n in needles:
        assert n in err, (n, err)
    return err


def test_bad_truncated_result_pkl(kitti, tmp_path):
    p = write_pcdet_pkl(kitti, tmp_path / "result.pkl")
    p.write_bytes(p.read_bytes()[:200])
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "result.pkl", "truncated")


def test_bad_result_pkl_structure(kitti, tmp_path):
    p = tmp_path / "result.pkl"
    p.write_bytes(pickle.dumps({"Car": []}))
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "expected a list of per-frame result")
    p.write_bytes(pickle.dumps([{"frame_id": "000000", "name": np.array(["Car"]), "boxes_lidar": np.zeros((1, 7))}]))
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "frame 0 (000000): missing key 'score'")
    p.write_bytes(pickle.dumps([{"frame_id": "000000", "name": np.array(["Car"]), "score": np.array([0.5]),
                                 "boxes_lidar": np.zeros((2, 7))}]))
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "has shape (2, 7)")
    p.write_bytes(pickle.dumps([{"sample_token": "a"}]))
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "not an OpenPCDet result.pkl")


def test_bad_result_pkl_with_torch_tensors_is_refused(kitti, tmp_path):
    import torch

    p = tmp_path / "results.pkl"
    p.write_bytes(pickle.dumps([{"scores_3d": torch.zeros(2)}]))
    err = _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "refused to load", "torch")
    assert "pklfile_prefix" in err


def test_bad_kitti_txt_non_numeric_score(kitti, tmp_path):
    d = write_kitti_txt(kitti, tmp_path / "data")
    f = d / "000001.txt"
    lines = f.read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " high"
    f.write_text("\n".join(lines) + "\n")
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(d)], tmp_path, "000001.txt",
           "line 3 field 16 (score) 'high' is not a number")


def test_bad_kitti_txt_without_score(kitti, tmp_path):
    d = write_kitti_txt(kitti, tmp_path / "data")
    f = d / "000000.txt"
    f.write_text("\n".join(line.rsplit(" ", 1)[0] for line in f.read_text().splitlines()) + "\n")
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(f)], tmp_path, "line 1 has 15 fields",
           "prediction line has 16")


def test_bad_kitti_txt_needs_a_calibrated_source(kitti, tmp_path):
    d = write_kitti_txt(kitti, tmp_path / "data")
    import pandas as pd

    pd.DataFrame([{"frame_id": "000000", "class": "Car", "x": 10.0, "y": 0.0, "z": 0.0, "dx": 4.0, "dy": 2.0,
                   "dz": 1.5, "yaw": 0.0}]).to_parquet(tmp_path / "gt.parquet")
    _fails(["--boxes", str(tmp_path / "gt.parquet"), "--predictions", str(d)], tmp_path, "camera-frame",
           "no KITTI calibration")


def test_bad_av2_detections_missing_column(tmp_path):
    import pyarrow as pa
    import pyarrow.feather as feather

    root = tmp_path / "av2"
    _generator("make_av2_fixture").make_av2_fixture(root)
    feather.write_feather(pa.table({"log_id": ["a"], "timestamp_ns": [1]}), tmp_path / "d.feather")
    _fails(["--av2-root", str(root), "--split", "val", "--predictions", str(tmp_path / "d.feather")], tmp_path,
           "missing column 'category'")


def test_bad_prediction_frames_and_dirs(kitti, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(empty)], tmp_path, "holds no *.txt")
    d = write_kitti_txt(kitti, tmp_path / "data")
    (d / "999999.txt").write_text((d / "000000.txt").read_text())
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(d)], tmp_path, "'999999' is not a sample")
    p = write_mmdet3d_pkl(kitti, tmp_path / "m.pkl")
    recs = pickle.loads(p.read_bytes())
    recs[0]["sample_idx"] = recs[0]["sample_idx"].astype(str)
    p.write_bytes(pickle.dumps(recs))
    _fails(["--kitti-root", str(kitti[1]), "--predictions", str(p)], tmp_path, "'sample_idx' must be numeric")


def test_pcdet_result_pkl_on_nuscenes_equals_the_submission_json(tmp_path):
    """Nothing is KITTI-specific: an OpenPCDet nuScenes result.pkl (LiDAR boxes with velocity, the sample token in
    metadata) made from the shipped submission gives the JSON's report."""
    from assignaudit.conventions import nuscenes_global_to_canonical
    from assignaudit.sources import open_source
    from assignaudit.sources.nuscenes import _invert_se3
    from assignaudit.yaw.pipeline import bundled_predictions_path
    from assignaudit.yaw.predictions import load_predictions

    js = load_predictions(bundled_predictions_path())
    frames = {f.sample_token: f for f in open_source().frames()}
    det_annos = []
    for tok in js.sample_order:
        rows = np.flatnonzero(js.sample_token == tok)
        f = frames[tok]
        boxes = nuscenes_global_to_canonical(js.translation_global[rows], js.size_wlh[rows], js.rotation_wxyz[rows],
                                             js.velocity_global[rows], _invert_se3(f.global_SE3_lidar))
        det_annos.append({"name": js.detection_class[rows].astype(str), "score": js.score[rows],
                          "boxes_lidar": boxes, "pred_labels": np.ones(rows.size, np.int64),
                          "frame_id": f"{tok[:8]}__LIDAR_TOP", "metadata": {"token": tok}})
    (tmp_path / "result.pkl").write_bytes(pickle.dumps(det_annos))
    a = _yaw(["--predictions", str(bundled_predictions_path())], tmp_path / "a")
    b = _yaw(["--predictions", str(tmp_path / "result.pkl")], tmp_path / "b")
    assert b["meta"]["predictions_format"] == "pcdet_pkl" and b["meta"]["eval_frame"] == "global"
    for ra, rb in zip(a["summary"], b["summary"]):
        for k, v in ra.items():
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, abs=1e-6), (ra["class"], ra["band"], k)
            else:
                assert rb[k] == v, (ra["class"], ra["band"], k)
