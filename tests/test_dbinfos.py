"""gt_sampling from the user's database (``--db-infos`` / the config's DB_INFO_PATH under --data-path): which file
is used (`choose_database`), the frameworks' PREPARE filters on the file's own fields, and pasted objects carrying
the file's point counts."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.config.loader import load_config
from assignaudit.errors import DataError
from assignaudit.report import read_report
from assignaudit.sources.dbinfos import choose_database, load_database

DATA = Path(__file__).parent / "data"
INFOS = DATA / "infos"
PCDET_NUSC = DATA / "pcdet/tools/cfgs/nuscenes_models/cbgs_pp_multihead.yaml"
PCDET_KITTI = DATA / "pcdet/tools/cfgs/kitti_models/pointpillar.yaml"
PCDET_WAYMO = DATA / "pcdet/tools/cfgs/waymo_models/pointpillar_1x.yaml"
MM_KITTI = DATA / "mmdet3d/configs/pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"
runner = CliRunner()


def _count(out: Path, *args: str):
    return runner.invoke(app, ["count", "--quiet", "--out", str(out), *args])


def test_pasted_objects_carry_the_files_point_counts(tmp_path):
    # the fixture's dbinfos count 3 * num_lidar_pts + 1 points per object: a pasted row from it is 1 mod 3
    res = _count(tmp_path, "--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl"),
                 "--db-infos", str(INFOS / "pcdet_nuscenes_dbinfos_train.pkl"))
    assert res.exit_code == 0, res.output
    _, meta = read_report(tmp_path / "summary.parquet")
    assert meta["gt_database"]["kind"] == "file" and meta["gt_database"]["reason"] == "--db-infos"
    assert meta["gt_database"]["files"] == [str(INFOS / "pcdet_nuscenes_dbinfos_train.pkl")]
    objects, _ = read_report(tmp_path / "objects.parquet")
    pasted = objects[objects.source != "dataset"]
    assert len(pasted) > 0 and (pasted.num_lidar_pts % 3 == 1).all()
    db = pickle.loads((INFOS / "pcdet_nuscenes_dbinfos_train.pkl").read_bytes())
    for cls, group in pasted.groupby("class"):
        assert set(group.num_lidar_pts) <= {e["num_points_in_gt"] for e in db[cls]}


def test_the_rebuilt_database_stays_the_fallback(tmp_path):
    res = _count(tmp_path, "--config", str(PCDET_NUSC), "--infos", str(INFOS / "pcdet_nuscenes_infos_train.pkl"),
                 "--only-summary")
    assert res.exit_code == 0, res.output
    _, meta = read_report(tmp_path / "summary.parquet")
    assert meta["gt_database"]["kind"] == "rebuilt"
    assert "nuscenes_dbinfos_10sweeps_withvelo.pkl" in meta["gt_database"]["reason"]


def test_config_database_found_under_data_path(tmp_path):
    shutil.copy(INFOS / "pcdet_nuscenes_infos_train.pkl", tmp_path / "nuscenes_infos_10sweeps_train.pkl")
    shutil.copy(INFOS / "pcdet_nuscenes_dbinfos_train.pkl", tmp_path / "nuscenes_dbinfos_10sweeps_withvelo.pkl")
    res = _count(tmp_path / "out", "--config", str(PCDET_NUSC), "--data-path", str(tmp_path), "--only-summary")
    assert res.exit_code == 0, res.output
    _, meta = read_report(tmp_path / "out/summary.parquet")
    assert meta["gt_database"]["files"] == [str(tmp_path / "nuscenes_dbinfos_10sweeps_withvelo.pkl")]


def test_backup_db_info_is_used_when_the_first_file_is_missing(tmp_path):
    cfg = load_config(str(PCDET_WAYMO))
    assert choose_database(cfg, (), tmp_path).kind == "rebuilt"
    backup = tmp_path / cfg.dataset.backup_db_infos[0]
    backup.write_bytes(b"")
    choice = choose_database(cfg, (), tmp_path)
    assert choice.kind == "file" and choice.paths == (backup,) and "BACKUP_DB_INFO" in choice.reason
    main = tmp_path / cfg.dataset.db_infos[0]
    main.write_bytes(b"")
    assert choose_database(cfg, (), tmp_path).paths == (main,)
    assert choose_database(cfg, (backup,), None).reason == "--db-infos"


def test_mmdet3d_info_path_with_the_data_root_prefix(tmp_path):
    cfg = load_config(str(MM_KITTI))
    assert cfg.dataset.db_infos == ("data/kitti/kitti_dbinfos_train.pkl",)
    (tmp_path / "kitti_dbinfos_train.pkl").write_bytes(b"")
    assert choose_database(cfg, (), tmp_path).paths == (tmp_path / "kitti_dbinfos_train.pkl",)


@pytest.mark.parametrize("config, name", [(PCDET_KITTI, "pcdet_kitti"), (MM_KITTI, "mmdet3d_kitti")])
def test_prepare_filters_read_the_files_fields(config, name):
    cfg = load_config(str(config))
    raw = pickle.loads((INFOS / f"{name}_dbinfos_train.pkl").read_bytes())
    db = load_database([INFOS / f"{name}_dbinfos_train.pkl"], cfg)
    from assignaudit.augment.database import gt_sampling_op

    op = gt_sampling_op(cfg)
    min_pts = dict(op.min_points)
    assert op.filter_by_difficulty == (-1,)
    for cls in cfg.class_names:
        kept = [e for e in raw[cls] if e["difficulty"] != -1 and e["num_points_in_gt"] >= min_pts.get(cls, 0)]
        assert len(db[cls]) == len(kept)
        assert db[cls].num_lidar_pts.tolist() == [e["num_points_in_gt"] for e in kept]
        boxes = np.array([e["box3d_lidar"] for e in kept]).reshape(-1, 7)
        if name.startswith("mmdet3d"):
            boxes[:, 2] += boxes[:, 5] / 2  # mmdet3d database boxes: bottom centre
        np.testing.assert_allclose(db[cls].boxes[:, :6], boxes[:, :6])


def test_bad_database_files(tmp_path):
    cfg = load_config(str(PCDET_KITTI))
    with pytest.raises(DataError, match="file not found"):
        choose_database(cfg, (tmp_path / "nope.pkl",))
    p = tmp_path / "db.pkl"
    p.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="not a gt_sampling database"):
        load_database([p], cfg)
    p.write_bytes(pickle.dumps({"Car": []}))
    with pytest.raises(DataError, match="no class 'Pedestrian'"):
        load_database([p], cfg)
    raw = pickle.loads((INFOS / "pcdet_kitti_dbinfos_train.pkl").read_bytes())
    del raw["Car"][0]["num_points_in_gt"]
    p.write_bytes(pickle.dumps(raw))
    with pytest.raises(DataError, match="no key 'num_points_in_gt'"):
        load_database([p], cfg)
    no_sampling = dataclasses.replace(cfg, augmentations=())
    res = _count(tmp_path / "out", "--config", str(PCDET_KITTI), "--infos", str(INFOS / "pcdet_kitti_infos_train.pkl"),
                 "--db-infos", str(p))
    assert res.exit_code == 2 and res.output.startswith("error:") and not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="no gt_sampling"):
        load_database([INFOS / "pcdet_kitti_dbinfos_train.pkl"], no_sampling)


def test_mmdet3d_config_finds_infos_and_database_under_data_path(tmp_path):
    # ann_file 'kitti_infos_train.pkl', db_sampler.info_path 'data/kitti/kitti_dbinfos_train.pkl' (data_root prefix)
    shutil.copy(INFOS / "mmdet3d_kitti_infos_train.pkl", tmp_path / "kitti_infos_train.pkl")
    shutil.copy(INFOS / "mmdet3d_kitti_dbinfos_train.pkl", tmp_path / "kitti_dbinfos_train.pkl")
    res = _count(tmp_path / "out", "--config", str(MM_KITTI), "--data-path", str(tmp_path))
    assert res.exit_code == 0, res.output
    _, meta = read_report(tmp_path / "out/summary.parquet")
    assert meta["dataset"]["kind"] == "mmdet3d_infos"
    assert meta["gt_database"]["kind"] == "file"
    assert meta["gt_database"]["files"] == [str(tmp_path / "kitti_dbinfos_train.pkl")]
    objects, _ = read_report(tmp_path / "out/objects.parquet")
    raw = pickle.loads((INFOS / "mmdet3d_kitti_dbinfos_train.pkl").read_bytes())
    pasted = objects[objects.source != "dataset"]
    for cls, group in pasted.groupby("class"):
        assert set(group.num_lidar_pts) <= {e["num_points_in_gt"] for e in raw[cls]}
