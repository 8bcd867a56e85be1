"""Bad input on the `count` / `config show` surfaces added for the new families (mmdet3d .py + --cfg-options, CenterHead
and query heads in our YAML and OpenPCDet YAML, --queries dumps, --compare-config / --compare-pipeline).

Every case goes through typer's CliRunner and must end the way README promises: exit code 2, exactly one line on
stderr starting with ``error: `` that names the file / key / flag, and never a traceback. The last tests check the
inputs that must keep working (a new leaf through --cfg-options, diverged NaN dumps) and that ``--json`` is valid JSON
for a center and a query config.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.sources.open import open_source

DATA = Path(__file__).parent / "data"
MM = DATA / "mmdet3d" / "configs"
PP_NUS = MM / "pointpillars" / "pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py"
PP_KITTI = MM / "pointpillars" / "pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"
CP_NUS = MM / "centerpoint" / "centerpoint_voxel0075_second_secfpn_8xb4-cyclic-20e_nus-3d.py"
PCDET = DATA / "pcdet" / "tools" / "cfgs"
PC_CP = PCDET / "nuscenes_models" / "cbgs_voxel0075_res3d_centerpoint.yaml"
PC_PP = PCDET / "nuscenes_models" / "cbgs_pp_multihead.yaml"
PC_DATASET = PCDET / "dataset_configs" / "nuscenes_dataset.yaml"

runner = CliRunner()

# A small two-class config of our schema, completed per head family below.
_BASE = {"assignaudit": 1, "class_names": ["car", "pedestrian"],
         "point_cloud_range": [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], "voxel_size": [0.1, 0.1, 0.2]}
_HEATMAP = {"feature_map_stride": 8, "heads": [["car"], ["pedestrian"]]}
_QUERY = {"cost": "detr3d", "num_queries": 30, "num_layers": 2}
NUM_QUERIES, NUM_LAYERS = _QUERY["num_queries"], _QUERY["num_layers"]


class Files(dict):
    """name -> path (str) of the inputs written once for the module."""

    def __getattr__(self, name: str) -> str:
        return self[name]


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> Files:
    root = tmp_path_factory.mktemp("bad_inputs")
    files = Files()

    def text(name: str, body: str) -> None:
        (root / name).write_text(textwrap.dedent(body))
        files[name.split(".")[0]] = str(root / name)

    def ours(name: str, **kw) -> None:
        text(f"{name}.yaml", yaml.safe_dump({**_BASE, **kw}))

    def pcdet(name: str, src: Path, mutate) -> None:
        raw = yaml.safe_load(src.read_text())
        raw["DATA_CONFIG"]["_BASE_CONFIG_"] = str(PC_DATASET)  # the copy lives outside tools/cfgs
        mutate(raw["MODEL"]["DENSE_HEAD"])
        text(f"{name}.yaml", yaml.safe_dump(raw))

    # mmdetection3d .py configs
    text("py_syntax.py", "model = dict(\n")
    text("py_not_detector.py", "x = 1\n")
    text("py_missing_base.py", "_base_ = ['./no_such_base.py']\n")
    text("py_freeanchor.py", f"_base_ = ['{PP_NUS}']\nmodel = dict(pts_bbox_head=dict(type='FreeAnchor3DHead'))\n")
    text("py_pointrpn.py", f"_base_ = ['{PP_KITTI}']\n"
                           "model = dict(bbox_head=dict(_delete_=True, type='PointRPNHead', num_classes=3))\n")
    text("py_atss_assigner.py", f"_base_ = ['{PP_NUS}']\nmodel = dict(train_cfg=dict(pts=dict(assigner=dict("
                                "_delete_=True, type='ATSSAssigner', topk=9))))\n")
    text("py_tasks_partial.py", f"_base_ = ['{CP_NUS}']\n"
                                "model = dict(pts_bbox_head=dict(tasks=[dict(num_class=1, class_names=['car'])]))\n")
    text("py_osf0.py", f"_base_ = ['{CP_NUS}']\nmodel = dict(train_cfg=dict(pts=dict(out_size_factor=0)))\n")
    detr3d = ("class_names = ['car', 'pedestrian']\n"
              "point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]\n"
              "model = dict(type='DETR3D', pts_bbox_head=dict(type='DETR3DHead', num_query=30, transformer={tr}),\n"
              "             train_cfg=dict(pts=dict(assigner=dict(type='HungarianAssigner3D'))))\n"
              "train_dataloader = dict(dataset=dict(type='NuScenesDataset', metainfo=dict(classes=class_names),\n"
              "    pipeline=[dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range)]))\n")
    text("py_detr3d.py", detr3d.format(tr="dict(decoder=dict(num_layers=2))"))
    text("py_detr3d_bad_transformer.py", detr3d.format(tr="'Detr3DTransformer'"))

    # our schema
    ours("center_no_heatmap", head="center")
    ours("query_with_heatmap", head="query", query=_QUERY, heatmap=_HEATMAP)
    ours("center_voxel0", head="center", heatmap=_HEATMAP, voxel_size=[0.0, 0.1, 0.2])
    ours("center_stride0", head="center", heatmap={**_HEATMAP, "feature_map_stride": 0})
    ours("center_stride_huge", head="center", heatmap={**_HEATMAP, "feature_map_stride": 4096})
    ours("center_uncovered", head="center", heatmap={**_HEATMAP, "heads": [["car"]]})
    ours("center_framework_clash", head="center", framework="pcdet", heatmap={**_HEATMAP, "variant": "mmdet3d"})
    ours("center", head="center", heatmap=_HEATMAP)
    ours("query", head="query", query=_QUERY)

    # OpenPCDet YAML: CenterHead, ATSS, TransFusionHead
    pcdet("pc_center_uncovered", PC_CP, lambda h: h.update(CLASS_NAMES_EACH_HEAD=[["car"]]))
    pcdet("pc_center_unknown_key", PC_CP, lambda h: h["TARGET_ASSIGNER_CONFIG"].update(BOGUS=1))
    pcdet("pc_atss_topk0", PC_PP, lambda h: h["TARGET_ASSIGNER_CONFIG"].update(NAME="ATSS", TOPK=0))
    pcdet("pc_atss_topk_str", PC_PP, lambda h: h["TARGET_ASSIGNER_CONFIG"].update(NAME="ATSS", TOPK="nine"))

    def transfusion(**kw):
        def mutate(head):
            head.clear()
            head.update(NAME="TransFusionHead", NUM_PROPOSALS=200, TARGET_ASSIGNER_CONFIG={"HUNGARIAN_ASSIGNER": {}})
            head.update(kw)
        return mutate

    pcdet("pc_transfusion_q0", PC_CP, transfusion(NUM_PROPOSALS=0))
    pcdet("pc_transfusion_cost", PC_CP, transfusion(TARGET_ASSIGNER_CONFIG={
        "HUNGARIAN_ASSIGNER": {"cls_cost": {"weight": 1.0}}}))

    # query dumps (docs/query-dumps.md layout A), against the fixture's sample tokens and the 2-class query configs
    tokens = np.array([fr.sample_token for fr in open_source().frames()])
    s = len(tokens)

    def dump(name: str, tok=tokens, boxes=None, logits=None) -> None:
        n = len(tok)
        np.savez(root / f"{name}.npz", sample_token=tok,
                 boxes=np.zeros((n, NUM_LAYERS, NUM_QUERIES, 10)) if boxes is None else boxes,
                 logits=np.zeros((n, NUM_LAYERS, NUM_QUERIES, 2)) if logits is None else logits)
        files[name] = str(root / f"{name}.npz")

    dump("dump_ok")
    dump("dump_box_cols", boxes=np.zeros((s, NUM_LAYERS, NUM_QUERIES, 9)))
    dump("dump_three_logits", logits=np.zeros((s, NUM_LAYERS, NUM_QUERIES, 3)))
    dump("dump_no_first_sample", tok=tokens[1:])
    dump("dump_nan", boxes=np.full((s, NUM_LAYERS, NUM_QUERIES, 10), np.nan))
    text("dump_txt.txt", "sample_token,boxes\n")
    text("dump_junk.npz", "not a zip archive")
    files["root"] = str(root)
    files["tokens"] = tokens
    return files


# (id, argv built from the files, a needle the single error line must contain)
CASES = [
    # --- mmdetection3d .py configs and --cfg-options ---
    ("py syntax error", lambda f: ["config", "show", f.py_syntax],
     "py_syntax.py: cannot read the mmdetection3d config: SyntaxError"),
    ("py not a detector", lambda f: ["config", "show", f.py_not_detector], "py_not_detector.py: model: missing "
                                                                           "required key"),
    ("_base_ missing", lambda f: ["config", "show", f.py_missing_base], "no_such_base.py"),
    ("cfg-options without =", lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "pos_iou_thr"],
     "--cfg-options needs KEY=VALUE"),
    ("cfg-options empty key", lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "=0.5"],
     "--cfg-options: expected key=value, got '=0.5'"),
    ("cfg-options unknown assigner key",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.train_cfg.pts.assigner.pos_iou_th=0.5"],
     "model.train_cfg.pts.assigner.pos_iou_th: key 'pos_iou_th' not found under model.train_cfg.pts.assigner; "
     "did you mean 'pos_iou_thr'?"),
    # a misspelt new leaf: mmengine would add it and train the unchanged config (issue 11)
    ("cfg-options misspelt head leaf",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.pts_bbox_head.assign_per_clas=False"],
     "key 'assign_per_clas' not found under model.pts_bbox_head; did you mean 'assign_per_class'?"),
    ("cfg-options misspelt dataset leaf",
     lambda f: ["config", "show", str(CP_NUS), "--cfg-options", "train_dataloader.dataset.dataset.use_valid_flg=False"],
     "key 'use_valid_flg' not found under train_dataloader.dataset.dataset; did you mean 'use_valid_flag'?"),
    ("cfg-options new leaf nobody reads",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.test_cfg.pts.zzz=1"],
     "key 'zzz' not found under model.test_cfg.pts and assignaudit reads no such key, so it would change nothing"),
    ("cfg-options misspelt test_cfg leaf",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.test_cfg.pts.nms_thrr=0.1"],
     "key 'nms_thrr' not found under model.test_cfg.pts; did you mean 'nms_thr'?"),
    # mmengine would create `pts_bbox_hed` and train the unchanged head: the counts would silently be the old ones.
    ("cfg-options typo on the path",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.pts_bbox_hed.anchor_generator.rotations=[0]"],
     "model.pts_bbox_hed.anchor_generator.rotations: key 'pts_bbox_hed' not found under model; did you mean "
     "'pts_bbox_head'?"),
    ("cfg-options typo at the top",
     lambda f: ["count", "--config", str(PP_NUS), "--cfg-options", "modle.train_cfg.pts.assigner.pos_iou_thr=0.5"],
     "key 'modle' not found under the config's top level"),
    ("cfg-options index out of range",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.pts_bbox_head.anchor_generator.ranges.9=[0]"],
     "index 9 out of range for model.pts_bbox_head.anchor_generator.ranges (a list of 7)"),
    ("cfg-options through a scalar",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.pts_bbox_head.type.x=1"],
     "model.pts_bbox_head.type is str 'Anchor3DHead', not a mapping or list"),
    ("cfg-options wrong type",
     lambda f: ["count", "--config", str(PP_NUS), "--cfg-options", "model.train_cfg.pts.assigner.pos_iou_thr=abc"],
     "model.train_cfg.pts.assigner.pos_iou_thr: expected a number, got 'abc'"),
    ("cfg-options imbalanced",
     lambda f: ["config", "show", str(PP_NUS), "--cfg-options", "model.pts_bbox_head.anchor_generator.rotations=[0,"],
     "imbalanced brackets"),
    ("cfg-options on our YAML", lambda f: ["config", "show", f.center, "--cfg-options", "heatmap.min_radius=1"],
     "--cfg-options applies to mmdetection3d .py configs only"),
    ("cfg-options on OpenPCDet YAML", lambda f: ["count", "--config", str(PC_PP), "--cfg-options", "a=1"],
     "--cfg-options applies to mmdetection3d .py configs only"),
    ("--set on a .py", lambda f: ["count", "--config", str(PP_NUS), "--set", "model.x", "1"],
     "--set does not apply to mmdetection3d .py configs; use --cfg-options model.x=1"),
    ("unsupported head FreeAnchor3DHead", lambda f: ["config", "show", f.py_freeanchor],
     "model.pts_bbox_head.type: 'FreeAnchor3DHead' is not supported"),
    ("unsupported head PointRPNHead", lambda f: ["count", "--config", f.py_pointrpn],
     "model.bbox_head.type: 'PointRPNHead' is not supported"),
    ("unsupported assigner", lambda f: ["config", "show", f.py_atss_assigner],
     "model.train_cfg.pts.assigner.type: 'ATSSAssigner' is not supported"),
    ("CenterPoint tasks miss classes", lambda f: ["config", "show", f.py_tasks_partial],
     "class 'truck' of class_names is in no head"),
    ("CenterPoint out_size_factor 0", lambda f: ["config", "show", f.py_osf0],
     "model.train_cfg.pts.out_size_factor: expected an integer >= 1, got 0"),
    ("CenterPoint voxel 0 via cfg-options",
     lambda f: ["config", "show", str(CP_NUS), "--cfg-options", "model.data_preprocessor.voxel_layer.voxel_size=0,0,0"],
     "model.data_preprocessor.voxel_layer.voxel_size[0]: expected a positive number, got 0"),
    ("DETR3D transformer not a mapping", lambda f: ["config", "show", f.py_detr3d_bad_transformer],
     "model.pts_bbox_head.transformer: expected a mapping"),
    # --- our YAML: head center / query ---
    ("center without heatmap", lambda f: ["config", "show", f.center_no_heatmap],
     "heatmap: missing required key (head: center needs a heatmap section)"),
    ("query with heatmap", lambda f: ["count", "--config", f.query_with_heatmap],
     "heatmap: does not apply to head: query"),
    ("heatmap voxel 0", lambda f: ["config", "show", f.center_voxel0], "voxel_size[0]: expected a positive number"),
    ("heatmap stride 0", lambda f: ["count", "--config", f.center_stride0],
     "heatmap.feature_map_stride: expected an integer >= 1, got 0"),
    ("heatmap stride 0 via --set",
     lambda f: ["count", "--config", f.center, "--set", "heatmap.feature_map_stride", "0"],
     "heatmap.feature_map_stride: expected an integer >= 1, got 0"),
    ("heatmap stride leaves no cell", lambda f: ["config", "show", f.center_stride_huge],
     "feature map size (0, 0) is empty"),
    ("heads miss a class", lambda f: ["config", "show", f.center_uncovered],
     "class 'pedestrian' of class_names is in no head"),
    # reports would say [center, pcdet] while the mmdet3d rules ran
    ("framework contradicts variant", lambda f: ["config", "show", f.center_framework_clash],
     "heatmap.variant: 'mmdet3d' contradicts framework: pcdet"),
    # --- OpenPCDet YAML: CenterHead, ATSS, TransFusionHead ---
    ("pcdet heads miss classes", lambda f: ["config", "show", f.pc_center_uncovered],
     "MODEL.DENSE_HEAD.CLASS_NAMES_EACH_HEAD.heads: class 'truck' of class_names is in no head"),
    ("pcdet CenterHead unknown key", lambda f: ["config", "show", f.pc_center_unknown_key],
     "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.BOGUS: key not understood for CenterHead"),
    ("pcdet CenterHead stride 0",
     lambda f: ["count", "--config", str(PC_CP), "--set", "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.FEATURE_MAP_STRIDE",
                "0"],
     "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.FEATURE_MAP_STRIDE: expected an integer >= 1, got 0"),
    ("pcdet ATSS TOPK 0", lambda f: ["config", "show", f.pc_atss_topk0],
     "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.TOPK: expected an integer >= 1, got 0"),
    ("pcdet ATSS TOPK str", lambda f: ["config", "show", f.pc_atss_topk_str],
     "MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.TOPK: expected an integer, got 'nine'"),
    ("pcdet TransFusion 0 proposals", lambda f: ["config", "show", f.pc_transfusion_q0],
     "MODEL.DENSE_HEAD.NUM_PROPOSALS: expected an integer >= 1, got 0"),
    ("pcdet TransFusion cost", lambda f: ["config", "show", f.pc_transfusion_cost],
     "HUNGARIAN_ASSIGNER.cls_cost.weight: 1.0 is not reproduced"),
    # --- --queries ---
    ("queries missing file", lambda f: ["count", "--config", f.query, "--queries", f.root + "/nope.npz"],
     "nope.npz: no such file"),
    ("queries wrong extension", lambda f: ["count", "--config", f.query, "--queries", f.dump_txt],
     "dump_txt.txt: unknown format .txt; use .npz or .parquet"),
    ("queries not an npz", lambda f: ["count", "--config", f.query, "--queries", f.dump_junk], "dump_junk.npz: "),
    ("queries wrong box shape", lambda f: ["count", "--config", f.query, "--queries", f.dump_box_cols],
     f"'boxes' must have shape [S, L, Q, 10], got [24, {NUM_LAYERS}, {NUM_QUERIES}, 9]"),
    ("queries logits != classes", lambda f: ["count", "--config", f.query, "--queries", f.dump_three_logits],
     "3 logit columns but config 'query' has 2 classes"),
    ("queries sample missing", lambda f: ["count", "--config", f.query, "--queries", f.dump_no_first_sample,
                                          "--max-frames", "2"],
     "no entry for sample_token"),
    ("queries with an anchor config", lambda f: ["count", "--queries", f.dump_ok],
     "--queries is for query heads; config 'pcdet-nuscenes-pointpillars-multihead' has head 'anchor'"),
    ("queries with a center config", lambda f: ["count", "--config", f.center, "--queries", f.dump_ok],
     "--queries is for query heads; config 'center' has head 'center'"),
    ("queries with compare", lambda f: ["count", "--config", f.query, "--queries", f.dump_ok, "--compare-config",
                                        f.center],
     "--queries cannot be combined with --compare-config"),
    # --- --compare-config / --compare-pipeline ---
    ("compare-config missing", lambda f: ["count", "--compare-config", f.root + "/nope.yaml"],
     "nope.yaml: config file not found"),
    ("compare-config unknown preset", lambda f: ["count", "--compare-config", "no-such-preset"],
     "unknown preset 'no-such-preset'"),
    ("compare-config bad file", lambda f: ["count", "--compare-config", f.py_syntax], "py_syntax.py: cannot read"),
    ("compare-config bad schema", lambda f: ["count", "--compare-config", f.center_no_heatmap],
     "center_no_heatmap.yaml: heatmap: missing required key"),
    ("compare-pipeline bogus", lambda f: ["count", "--compare-config", f.center, "--compare-pipeline", "bogus"],
     "--compare-pipeline must be one of a, own, got 'bogus'"),
    # without --compare-config the flag did nothing at all before: silently ignored
    ("compare-pipeline alone", lambda f: ["count", "--compare-pipeline", "own"],
     "--compare-pipeline only applies with --compare-config"),
]


@pytest.mark.parametrize("argv,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_exit_2(f, tmp_path, argv, needle):
    args = argv(f)
    if args[0] == "count":
        args += ["--quiet", "--max-frames", "1", "--out", str(tmp_path / "out")] if "--max-frames" not in args \
            else ["--quiet", "--out", str(tmp_path / "out")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_cfg_options_accept_either_train_cfg_layout():
    # README: model.train_cfg.assigner.pos_iou_thr on an MVX config whose settings live under train_cfg.pts.
    res = runner.invoke(app, ["config", "show", str(PP_NUS), "--json", "--cfg-options",
                              "model.train_cfg.assigner.pos_iou_thr=0.5", "model.test_cfg.nms_thr=0.3"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["anchors"]["anchor_sets"][0]["matched_threshold"] == 0.5
    assert out["post_processing"]["nms_thresh"] == 0.3


def test_cfg_options_may_still_add_a_leaf_to_an_existing_mapping():
    # The nuScenes SECFPN assigner does not spell gt_max_assign_all (mmdet's default True); adding it is legitimate.
    res = runner.invoke(app, ["config", "show", str(PP_NUS), "--json", "--cfg-options",
                              "model.train_cfg.pts.assigner.gt_max_assign_all=false",
                              "model.train_cfg.pts.assigner.pos_iou_thr=0.55"])
    assert res.exit_code == 0, res.output
    assigner = json.loads(res.stdout)["assigner"]
    assert assigner["gt_max_assign_all"] is False
    assert json.loads(res.stdout)["anchors"]["anchor_sets"][0]["matched_threshold"] == 0.55


def _json_count(args, tmp_path):
    res = runner.invoke(app, ["count", "--quiet", "--json", "--max-frames", "2", "--out", str(tmp_path), *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # must be valid JSON: NaN -> null, no progress or log lines on stdout


@pytest.mark.parametrize("head", ["center", "query"])
def test_json_for_center_and_query_without_dump(f, tmp_path, head):
    payload = _json_count(["--config", f[head]], tmp_path)
    assert payload["meta"]["head"] == head and payload["meta"]["query_dump"] is None
    rows = {(r["class"], r["band"]): r for r in payload["summary"]}
    assert {c for c, _ in rows} == {"car", "pedestrian"}
    assert sum(rows[(c, "all")]["num_gt"] for c in ("car", "pedestrian")) > 0
    if head == "query":
        # Without a dump every GT is matched once in the last layer (K per frame, K <= Q = 30 here), none useless.
        for c in ("car", "pedestrian"):
            assert rows[(c, "all")]["num_pos"] == rows[(c, "all")]["num_gt"]
            assert rows[(c, "all")]["num_gt_zero_pos"] == 0


def test_json_for_mmdet3d_detr3d_py_config(f, tmp_path):
    payload = _json_count(["--config", f.py_detr3d], tmp_path)
    assert payload["meta"]["head"] == "query" and payload["meta"]["framework"] == "mmdet3d"


def test_nan_dump_is_diverged_queries_not_an_error(f, tmp_path):
    # docs/query-dumps.md: NaN costs become 100 (PETR), diverged queries get IoU 0. With Q = 30 >= K every GT is
    # still matched once in each layer, and each match is useless (IoU 0 < 0.1): num_gt_useless == num_pos == num_gt.
    payload = _json_count(["--config", f.query, "--queries", f.dump_nan], tmp_path)
    all_rows = [r for r in payload["summary"] if r["band"] == "all"]
    assert sum(r["num_gt"] for r in all_rows) > 0
    for r in all_rows:
        assert r["num_pos"] == r["num_gt"] == r["num_gt_useless"], r
