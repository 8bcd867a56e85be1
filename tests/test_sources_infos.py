"""Framework info files as a source (``--infos``): each format against the frames of the dataset it was made from,
the nuScenes `count` equivalence, the dataset classes' GT preparation, format detection, and bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.errors import DataError
from assignaudit.report import read_report
from assignaudit.sources.infos import detect_format, open_infos
from assignaudit.sources.open import FIXTURE_DATAROOT

DATA = Path(__file__).parent / "data"
INFOS = DATA / "infos"
PCDET = DATA / "pcdet/tools/cfgs"
PCDET_NUSC = PCDET / "nuscenes_models/cbgs_pp_multihead.yaml"
PCDET_KITTI = PCDET / "kitti_models/pointpillar.yaml"
PCDET_WAYMO = PCDET / "waymo_models/pointpillar_1x.yaml"
runner = CliRunner()


def _count(tmp: Path, *args: str):
    return runner.invoke(app, ["count", "--quiet", "--only-summary", "--out", str(tmp), *args])


@pytest.fixture(scope="module")
def nusc_source():
    from assignaudit.sources.nuscenes import NuScenesSource

    return NuScenesSource(FIXTURE_DATAROOT, "v1.0-mini", "fixture_all")


# ---- nuScenes: the same frames as --dataroot ------------------------------------------------------------------


def test_pcdet_nuscenes_frames_equal_the_dataroot_frames(nusc_source):
    src = open_infos([INFOS / "pcdet_nuscenes_infos_train.pkl"])
    assert src.info.kind == "pcdet_infos" and src.format == "pcdet-nuscenes"
    assert src.sample_tokens() == nusc_source.sample_tokens()
    for a, b in zip(src.frames(), nusc_source.frames()):
        # the converter keeps boxes with a LiDAR or a radar point; the boxes come from the devkit's Box path
        keep = (b.num_lidar_pts + b.num_radar_pts) > 0
        np.testing.assert_allclose(a.boxes_lidar[:, :7], b.boxes_lidar[keep, :7], atol=1e-9)
        np.testing.assert_allclose(a.boxes_lidar[:, 7:], b.boxes_lidar[keep, 7:], atol=1e-9, equal_nan=True)
        assert a.ann_token.tolist() == b.ann_token[keep].tolist()
        assert a.num_lidar_pts.tolist() == b.num_lidar_pts[keep].tolist()
        expected = [c if c is not None else "ignore" for c in b.detection_class[keep]]
        assert a.detection_class.tolist() == expected
        np.testing.assert_allclose(a.global_SE3_lidar, b.global_SE3_lidar, atol=1e-9)


def test_count_on_pcdet_nuscenes_infos_equals_dataroot(tmp_path):
    ra = _count(tmp_path / "a", "--config", str(PCDET_NUSC))
    rb = _count(tmp_path / "b", "--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl"))
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    a, ma = read_report(tmp_path / "a/summary.parquet")
    b, mb = read_report(tmp_path / "b/summary.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert mb["dataset"]["kind"] == "pcdet_infos" and ma["num_frames_assigned"] == mb["num_frames_assigned"] == 24


# ---- KITTI: the same frames as --kitti-root --------------------------------------------------------------------


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkf", Path(__file__).parents[1] / "fixtures/make_kitti_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path_factory.mktemp("kitti")
    mod.make_kitti_fixture(root)
    return root


def test_pcdet_kitti_frames_equal_the_raw_kitti_frames(kitti_root):
    from assignaudit.sources.kitti import KittiSource

    raw = KittiSource(kitti_root, "train")
    src = open_infos([INFOS / "pcdet_kitti_infos_train.pkl"])
    assert src.format == "pcdet-kitti" and src.sample_tokens() == raw.sample_tokens() == ["000000", "000001", "000002"]
    for a, b in zip(src.frames(), raw.frames()):
        assert "DontCare" not in a.detection_class.tolist()
        assert a.detection_class.tolist() == b.detection_class.tolist()
        np.testing.assert_allclose(a.boxes_lidar[:, :7], b.boxes_lidar[:, :7], atol=1e-5)
        assert a.difficulty.tolist() == b.difficulty.tolist()
        assert a.num_lidar_pts.tolist() == b.num_lidar_pts.tolist()
        np.testing.assert_array_equal(a.extra["kitti_calib"].tr_velo_to_cam, b.extra["kitti_calib"].tr_velo_to_cam)


def test_count_runs_on_kitti_and_waymo_infos(tmp_path):
    for cfg, name in ((PCDET_KITTI, "pcdet_kitti"), (PCDET_WAYMO, "pcdet_waymo")):
        res = _count(tmp_path / name, "--config", str(cfg), "--infos", str(INFOS / f"{name}_infos_train.pkl"))
        assert res.exit_code == 0, res.output
        summary, meta = read_report(tmp_path / name / "summary.parquet")
        assert summary[summary.band == "all"].num_gt.sum() > 0


# ---- Waymo: the dataset class's GT preparation ----------------------------------------------------------------


def test_waymo_drops_unknown_and_empty_boxes_and_samples_frames():
    from assignaudit.config.loader import load_config

    raw = pickle.loads((INFOS / "pcdet_waymo_infos_train.pkl").read_bytes())
    plain = open_infos([INFOS / "pcdet_waymo_infos_train.pkl"])  # no config: no FILTER_EMPTY_BOXES_FOR_TRAIN
    assert [f.sample_token for f in plain.frames()] == [r["frame_id"] for r in raw]
    assert sum(len(f) for f in plain.frames()) == sum(len(r["annos"]["name"]) for r in raw)
    cfg = load_config(str(PCDET_WAYMO))
    src = open_infos([INFOS / "pcdet_waymo_infos_train.pkl"], config=cfg)
    for f, r in zip(src.frames(), raw):
        an = r["annos"]
        keep = (an["name"] != "unknown") & (an["num_points_in_gt"] > 0)
        assert f.detection_class.tolist() == an["name"][keep].tolist()
        assert (f.num_lidar_pts > 0).all() and np.isnan(f.boxes_lidar[:, 7:]).all()  # no TRAIN_WITH_SPEED
    assert sum(len(f) for f in src.frames()) < sum(len(f) for f in plain.frames())
    import dataclasses

    every5 = '{"test": 1, "train": 5}'
    spec = dataclasses.replace(cfg.dataset, options=tuple((k, v if k != "SAMPLED_INTERVAL" else every5)
                                                          for k, v in cfg.dataset.options))
    sampled = open_infos([INFOS / "pcdet_waymo_infos_train.pkl"], config=dataclasses.replace(cfg, dataset=spec))
    assert sampled.sample_tokens() == [r["frame_id"] for r in raw[::5]]


def test_data_path_finds_the_config_train_infos(tmp_path):
    import shutil

    shutil.copy(INFOS / "pcdet_kitti_infos_train.pkl", tmp_path / "kitti_infos_train.pkl")
    res = _count(tmp_path / "out", "--config", str(PCDET_KITTI), "--data-path", str(tmp_path), "--no-augment")
    assert res.exit_code == 0, res.output
    _, meta = read_report(tmp_path / "out/summary.parquet")
    assert meta["dataset"]["dataroot"] == str(tmp_path / "kitti_infos_train.pkl")
    res = _count(tmp_path / "out2", "--config", str(PCDET_NUSC), "--data-path", str(tmp_path))
    assert res.exit_code == 2 and "nuscenes_infos_10sweeps_train.pkl" in res.output
    assert not (tmp_path / "out2").exists()


# ---- detection, forcing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, fmt", [("pcdet_kitti", "pcdet-kitti"), ("pcdet_nuscenes", "pcdet-nuscenes"),
                                       ("pcdet_waymo", "pcdet-waymo")])
def test_format_is_detected_from_the_content(name, fmt):
    obj = pickle.loads((INFOS / f"{name}_infos_train.pkl").read_bytes())
    assert detect_format(obj, "x") == fmt


def test_lyft_layout_and_forcing():
    obj = pickle.loads((INFOS / "pcdet_nuscenes_infos_train.pkl").read_bytes())
    lyft = [{k: (v[:, :7] if k == "gt_boxes" else v) for k, v in r.items() if k not in ("num_lidar_pts",
                                                                                          "num_radar_pts")}
            for r in obj]
    assert detect_format(lyft, "x") == "pcdet-lyft"
    with pytest.raises(DataError, match="no key 'point_cloud'"):
        from assignaudit.sources.infos_pcdet import read_kitti

        read_kitti(obj, "f.pkl", data_path=INFOS)


# ---- bad input: one error line, exit 2, nothing written --------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _bad(tmp_path: Path, payload: bytes, *extra: str):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    out = tmp_path / "out"
    res = _count(out, "--config", str(PCDET_NUSC), "--infos", str(path), *extra)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert not out.exists()
    return lines[0]


def test_a_pickle_that_calls_os_system_is_refused(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps([_Evil(marker)])
    assert b"system" in payload  # the pickle really names os.system (posix.system)
    msg = _bad(tmp_path, payload)
    assert "refused" in msg and "system" in msg and not marker.exists()


def test_truncated_and_foreign_pickles(tmp_path):
    good = (INFOS / "pcdet_nuscenes_infos_train.pkl").read_bytes()
    assert "truncated" in _bad(tmp_path, good[: len(good) // 2])
    assert "not a framework info file" in _bad(tmp_path, pickle.dumps({"a": 1}))
    assert "not a framework info file" in _bad(tmp_path, pickle.dumps(3))
    assert "record 0 is a int" in _bad(tmp_path, pickle.dumps([1, 2]))
    assert "not a readable pickle" in _bad(tmp_path, b"not a pickle at all")
    assert "update_infos_to_v2.py" in _bad(tmp_path, pickle.dumps({"infos": [], "metadata": {"version": "v1.0"}}))
    assert "--db-infos" in _bad(tmp_path, (INFOS / "pcdet_kitti_dbinfos_train.pkl").read_bytes())
    obj = pickle.loads(good)
    obj[1]["gt_boxes"] = obj[1]["gt_boxes"][:, :5]
    assert "gt_boxes has shape" in _bad(tmp_path, pickle.dumps(obj))
    obj = pickle.loads(good)
    obj[2]["gt_boxes"][0, 3] = -1.0
    assert "box size must be > 0" in _bad(tmp_path, pickle.dumps(obj))
    obj = pickle.loads(good)
    obj[0]["num_lidar_pts"] = obj[0]["num_lidar_pts"][:-1]
    assert "num_lidar_pts has" in _bad(tmp_path, pickle.dumps(obj))


def test_info_classes_the_config_does_not_know(tmp_path):
    msg = _bad(tmp_path, (INFOS / "pcdet_kitti_infos_train.pkl").read_bytes())
    assert "none of the config classes" in msg


def test_old_mmdet3d_kitti_list_is_refused():
    with pytest.raises(DataError, match="update_infos_to_v2.py"):
        detect_format([{"image": {"image_idx": 0}, "point_cloud": {"velodyne_path": "x.bin"}}], "old.pkl")


# ---- mmdetection3d v2 -----------------------------------------------------------------------------------------

MM = DATA / "mmdet3d/configs"
MM_NUSC = MM / "pointpillars/pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py"
MM_KITTI = MM / "pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"


def test_mmdet3d_nuscenes_frames_equal_the_dataroot_frames(nusc_source):
    src = open_infos([INFOS / "mmdet3d_nuscenes_infos_train.pkl"])
    assert src.format == "mmdet3d-nuscenes" and src.info.kind == "mmdet3d_infos"
    for a, b in zip(src.frames(), nusc_source.frames()):  # the mmdet3d converter drops no box
        assert a.sample_token == b.sample_token
        np.testing.assert_allclose(a.boxes_lidar[:, :7], b.boxes_lidar[:, :7], atol=1e-9)
        np.testing.assert_allclose(a.boxes_lidar[:, 7:], np.nan_to_num(b.boxes_lidar[:, 7:]), atol=1e-9)
        assert a.detection_class.tolist() == b.detection_class.tolist()  # -1 labels: no class, like the devkit's None
        assert a.num_radar_pts.tolist() == b.num_radar_pts.tolist()


@pytest.mark.parametrize("config", ["centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py",
                                    "pointpillars/pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py"])
def test_count_on_mmdet3d_nuscenes_infos_equals_dataroot(tmp_path, config):
    ra = _count(tmp_path / "a", "--config", str(MM / config))
    rb = _count(tmp_path / "b", "--config", str(MM / config), "--infos",
                str(INFOS / "mmdet3d_nuscenes_infos_train.pkl"))
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    pd.testing.assert_frame_equal(read_report(tmp_path / "a/summary.parquet")[0],
                                  read_report(tmp_path / "b/summary.parquet")[0])


def test_mmdet3d_kitti_boxes_through_lidar2cam_equal_the_pcdet_boxes():
    from assignaudit.config.loader import load_config

    pc = open_infos([INFOS / "pcdet_kitti_infos_train.pkl"])
    mm = open_infos([INFOS / "mmdet3d_kitti_infos_train.pkl"])
    assert mm.sample_tokens() == pc.sample_tokens()
    for a, b in zip(mm.frames(), pc.frames()):
        assert a.detection_class.tolist() == b.detection_class.tolist()  # DontCare (-1) removed
        np.testing.assert_allclose(a.boxes_lidar[:, :7], b.boxes_lidar[:, :7], atol=2e-4)
        assert a.difficulty.tolist() == b.difficulty.tolist() and a.num_lidar_pts.tolist() == b.num_lidar_pts.tolist()
        np.testing.assert_allclose(a.extra["kitti_calib"].r0_rect, b.extra["kitti_calib"].r0_rect)
    # with a 3-class config, the classes it leaves out map to -1 and are removed (_remove_dontcare)
    three = open_infos([INFOS / "mmdet3d_kitti_infos_train.pkl"], config=load_config(str(MM_KITTI)))
    names = {c for f in three.frames() for c in f.detection_class}
    assert names == {"Car", "Pedestrian", "Cyclist"}


def test_mmdet3d_waymo_bottom_centre_boxes_equal_the_pcdet_boxes():
    pc = list(open_infos([INFOS / "pcdet_waymo_infos_train.pkl"]).frames())
    mm = list(open_infos([INFOS / "mmdet3d_waymo_infos_train.pkl"]).frames())
    assert len(pc) == len(mm)
    for a, b in zip(mm, pc):
        keep = b.detection_class != "Sign"  # Sign is -1 in the mmdet3d categories: removed
        np.testing.assert_allclose(a.boxes_lidar[:, :7], b.boxes_lidar[keep, :7], atol=1e-9)
        assert a.detection_class.tolist() == ["Car" if c == "Vehicle" else c for c in b.detection_class[keep]]


def test_mmdet3d_bad_records(tmp_path):
    good = pickle.loads((INFOS / "mmdet3d_kitti_infos_train.pkl").read_bytes())
    bad = pickle.loads(pickle.dumps(good))
    del bad["data_list"][0]["images"]["CAM2"]["lidar2cam"]
    assert "lidar2cam" in _bad(tmp_path, pickle.dumps(bad))
    bad = pickle.loads(pickle.dumps(good))
    bad["data_list"][1]["instances"][0]["bbox_label_3d"] = 42
    assert "bbox_label_3d 42 is not in metainfo.categories" in _bad(tmp_path, pickle.dumps(bad))
    bad = pickle.loads(pickle.dumps(good))
    bad["data_list"][1]["instances"][0]["bbox_3d"] = [1.0, 2.0]
    assert "bbox_3d is not a numeric array" in _bad(tmp_path, pickle.dumps(bad))
    for inst in bad["data_list"][1]["instances"]:
        inst["bbox_3d"] = [1.0, 2.0]
    assert "bbox_3d has shape (9, 2), expected [N, 7]" in _bad(tmp_path, pickle.dumps(bad))


@pytest.mark.parametrize("name", ["pcdet_nuscenes", "pcdet_kitti", "pcdet_waymo", "mmdet3d_nuscenes", "mmdet3d_kitti",
                                  "mmdet3d_waymo"])
def test_info_command_on_every_info_format(name):
    import json

    res = runner.invoke(app, ["info", "--infos", str(INFOS / f"{name}_infos_train.pkl"), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["source"]["kind"] == name.split("_")[0] + "_infos"
    assert payload["source"]["version"] == name.replace("_", "-")
    n = 3 if "kitti" in name else 24
    assert payload["num_samples"] == n and payload["num_annotations"] > 0


# ---- Lyft, ONCE, Argoverse 2 (OpenPCDet layouts built from the nuScenes infos) --------------------------------


def _nusc_records():
    return pickle.loads((INFOS / "pcdet_nuscenes_infos_train.pkl").read_bytes())


def test_lyft_once_argo2_layouts(tmp_path):
    recs = _nusc_records()
    layouts = {
        "pcdet-lyft": [{"lidar_path": r["lidar_path"], "token": r["token"], "gt_boxes": r["gt_boxes"][:, :7],
                        "gt_names": r["gt_names"], "gt_boxes_token": r["gt_boxes_token"]} for r in recs],
        "pcdet-once": [{"sequence_id": "000076", "frame_id": str(1616000000000 + k), "meta_info": {},
                        **({"annos": {"name": r["gt_names"], "boxes_3d": r["gt_boxes"][:, :7],
                                      "num_points_in_gt": r["num_lidar_pts"]}} if k % 4 else {})}
                       for k, r in enumerate(recs)],
        "pcdet-argo2": [{"uuid": f"log/{315967376000 + k}", "sample_idx": k, "image": {},
                         "point_cloud": {"num_features": 3,
                                         "velodyne_path": f"training/velodyne/{315967376000 + k}.bin"},
                         "annos": {"name": r["gt_names"], "location": r["gt_boxes"][:, :3],
                                   "dimensions": r["gt_boxes"][:, 3:6], "rotation_y": r["gt_boxes"][:, 6],
                                   "num_points_in_gt": r["num_lidar_pts"].astype(np.int32)}}
                        for k, r in enumerate(recs)],
    }
    for fmt, obj in layouts.items():
        assert detect_format(obj, "x") == fmt
        path = tmp_path / f"{fmt}.pkl"
        path.write_bytes(pickle.dumps(obj))
        src = open_infos([path])
        kept = [r for k, r in enumerate(recs) if fmt != "pcdet-once" or k % 4]
        assert len(src) == len(kept)
        for f, r in zip(src.frames(), kept):
            tol = 1e-5 if fmt == "pcdet-argo2" else 0  # argo2: float32, as __getitem__
            np.testing.assert_allclose(f.boxes_lidar[:, :6], r["gt_boxes"][:, :6], atol=tol, rtol=1e-6)
            assert f.detection_class.tolist() == r["gt_names"].tolist()
            if fmt == "pcdet-lyft":
                assert (f.num_lidar_pts == -1).all() and np.isnan(f.boxes_lidar[:, 7:]).all()
            else:
                assert f.num_lidar_pts.tolist() == r["num_lidar_pts"].tolist()
    assert open_infos([tmp_path / "pcdet-argo2.pkl"]).sample_tokens()[0] == "315967376000"


def test_committed_fixtures_equal_the_generator(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mif", Path(__file__).parents[1] / "fixtures/make_info_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    written = mod.make_info_fixtures(tmp_path)
    assert sorted(p.name for p in INFOS.glob("*.pkl")) == sorted(written)

    def same(a, b, where):
        assert type(a) is type(b), where
        if isinstance(a, dict):
            assert list(a) == list(b), where
            for k in a:
                same(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b), where
            for k, (x, y) in enumerate(zip(a, b)):
                same(x, y, f"{where}[{k}]")
        elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
            # BLAS rounding may differ between kernels (OPENBLAS_CORETYPE). The KITTI calibration path runs in
            # float32 as OpenPCDet's does (stored as float64), so one float32 ulp (~1.2e-7 relative) can differ.
            assert a.dtype == b.dtype, where
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=where)
        elif isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-6, nan_ok=True), where  # float32 matrix products, as above
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a == b, where

    for name, path in written.items():
        same(pickle.loads(path.read_bytes()), pickle.loads((INFOS / name).read_bytes()), name)


def test_forcing_the_format_and_bad_kitti_calib(tmp_path):
    nus = (INFOS / "pcdet_nuscenes_infos_train.pkl").read_bytes()
    assert "no key 'point_cloud'" in _bad(tmp_path, nus, "--infos-format", "pcdet-kitti")
    assert "unknown format 'pcdet-foo'" in _bad(tmp_path, nus, "--infos-format", "pcdet-foo")
    res = _count(tmp_path / "ok", "--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl"),
                 "--infos-format", "pcdet-nuscenes", "--no-augment")
    assert res.exit_code == 0, res.output
    kitti = pickle.loads((INFOS / "pcdet_kitti_infos_train.pkl").read_bytes())
    del kitti[1]["calib"]["Tr_velo_to_cam"]
    path = tmp_path / "k.pkl"
    path.write_bytes(pickle.dumps(kitti))
    res = _count(tmp_path / "k", "--config", str(PCDET_KITTI), "--infos", str(path))
    assert res.exit_code == 2 and "record 1.calib has no key 'Tr_velo_to_cam'" in res.output
    assert not (tmp_path / "k").exists()
    res = _count(tmp_path / "s", "--config", str(PCDET_KITTI), "--infos", str(INFOS / "pcdet_kitti_infos_train.pkl"),
                 "--split", "val")
    assert res.exit_code == 2 and "--split does not apply" in res.output


def test_mmdet3d_lyft_layout(tmp_path):
    obj = pickle.loads((INFOS / "mmdet3d_nuscenes_infos_train.pkl").read_bytes())
    obj["metainfo"]["dataset"] = "lyft"
    for rec in obj["data_list"]:
        for inst in rec["instances"]:
            for key in ("velocity", "num_lidar_pts", "num_radar_pts", "bbox_3d_isvalid"):
                inst.pop(key)
    assert detect_format(obj, "x") == "mmdet3d-lyft"
    path = tmp_path / "lyft.pkl"
    path.write_bytes(pickle.dumps(obj))
    nus = list(open_infos([INFOS / "mmdet3d_nuscenes_infos_train.pkl"]).frames())
    for a, b in zip(open_infos([path]).frames(), nus):
        np.testing.assert_array_equal(a.boxes_lidar[:, :7], b.boxes_lidar[:, :7])  # gravity centre, as is
        assert (a.num_lidar_pts == -1).all() and np.isnan(a.boxes_lidar[:, 7:]).all()
