"""`assignaudit yaw`: yaw residuals, 180-degree flips, 90-degree swaps, nuScenes AOE and duplicates before/after NMS.

Thin: parse, resolve the options, call `assignaudit.yaw.pipeline`, render. See docs/yaw.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import (
    Av2RootOpt, BandsOpt, CacheDirOpt, NoCacheOpt, BoxesOpt, DatarootOpt, DataPathOpt, InfosFormatOpt, InfosOpt, JsonOpt, KittiRootOpt,
    OutOpt, QuietOpt, SourceArgs, SplitOpt, VersionOpt, app, cli_errors,
)
from assignaudit.errors import ConfigError


def _floats(text: str | None, option: str) -> tuple[float, ...]:
    if text is None:
        return ()
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated numbers like 0.01,0.1,0.2, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option} expects at least one number, got {text!r}")
    return values


@app.command("yaw", help="Yaw residuals, flips and duplicates of predictions against the GT (docs/yaw.md).")
@cli_errors
def yaw_cmd(
    ctx: typer.Context,
    predictions: Annotated[Optional[Path], typer.Option(
        "--predictions", "--result-path", "--result_path",
        help="nuScenes submission JSON (results_nusc.json), a Parquet/CSV table of LiDAR-frame boxes "
             "(frame_id, class, score, x..yaw), an OpenPCDet result.pkl, an mmdetection3d KITTI results .pkl, or "
             "KITTI label-format .txt files (a directory or one file). Default: the predictions shipped for the "
             "bundled fixture.")] = None,
    dataroot: DatarootOpt = None,
    version: VersionOpt = None,
    split: SplitOpt = None,
    boxes: BoxesOpt = None,
    infos: InfosOpt = None,
    infos_format: InfosFormatOpt = None,
    data_path: DataPathOpt = None,
    kitti_root: KittiRootOpt = None,
    av2_root: Av2RootOpt = None,
    no_cache: NoCacheOpt = False,
    cache_dir: CacheDirOpt = None,
    config: Annotated[Optional[str], typer.Option(
        "--config", "--cfg_file", "--cfg-file",
        help="Detector config (preset or file) whose post_processing gives the NMS defaults.")] = None,
    match: Annotated[str, typer.Option("--match", help="center (nuScenes) | iou (rotated BEV IoU).")] = "center",
    match_threshold: Annotated[Optional[float], typer.Option(
        "--match-threshold", help="Metres for center (default 2.0, strict <), IoU for iou (default 0.5, >).")] = None,
    nusc_filters: Annotated[bool, typer.Option(
        "--nusc-filters", help="Apply DetectionEval's filters first (class ranges, 0-point GT, bike racks, "
                               "<= 500 boxes per sample).")] = False,
    bins: Annotated[int, typer.Option("--bins", help="Histogram bins over [-180, 180] degrees.")] = 72,
    flip_deg: Annotated[float, typer.Option("--flip-deg", help="|residual| >= this is a flip (degrees).")] = 150.0,
    swap_deg: Annotated[float, typer.Option(
        "--swap-deg", help="| |residual| - 90 | <= this is a length/width swap (degrees).")] = 30.0,
    bands: BandsOpt = None,
    dup_dist: Annotated[float, typer.Option(
        "--dup-dist", help="Duplicate: an earlier same-class prediction within this BEV centre distance (m).")] = 0.5,
    dup_iou: Annotated[Optional[float], typer.Option(
        "--dup-iou", help="Duplicate by rotated BEV IoU > T instead of distance.")] = None,
    nms_type: Annotated[Optional[str], typer.Option("--nms-type", help="rotate | circle.")] = None,
    nms_thresh: Annotated[Optional[float], typer.Option(
        "--nms-thresh", help="Rotated NMS: suppress when IoU > this (default 0.2 or the config's).")] = None,
    circle_radius_sq: Annotated[Optional[float], typer.Option(
        "--circle-radius-sq", help="Circle NMS: suppress when squared centre distance <= this (m^2).")] = None,
    nms_class_agnostic: Annotated[Optional[bool], typer.Option(
        "--nms-class-agnostic/--nms-per-class",
        help="Class-agnostic or per-class NMS (default per class, or the config's MULTI_CLASSES_NMS).")] = None,
    nms_pre_max: Annotated[Optional[int], typer.Option("--nms-pre-max", help="NMS pre max size.")] = None,
    nms_post_max: Annotated[Optional[int], typer.Option("--nms-post-max", help="NMS post max size.")] = None,
    nms_score_thresh: Annotated[Optional[float], typer.Option(
        "--nms-score-thresh", help="Drop boxes with score below this before NMS (default 0 or the config's).")] = None,
    nms_sweep: Annotated[Optional[str], typer.Option(
        "--nms-sweep", help="Comma-separated NMS thresholds (IoU; m^2 for circle) to sweep, e.g. 0.01,0.1,0.2.")] = None,
    out: OutOpt = Path("assignaudit-out"),
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also save the residual histograms as a PNG.")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not list the written report files.")] = False,
) -> None:
    from assignaudit.bands import Bands
    from assignaudit.yaw.analysis import YawOptions
    from assignaudit.yaw.pipeline import NmsOverrides, resolve_nms, run_yaw, write_yaw_reports
    from assignaudit.yaw.render import json_payload, plot_png, render

    from assignaudit.report_set import check_out_dir, check_out_file, locked

    check_out_dir(out)  # before anything is read; the lock refuses a second run into the same --out
    if plot is not None:
        check_out_file(plot, "--plot")
    ctx.with_resource(locked(out))
    cfg = None
    if config is not None:
        from assignaudit.config import load_config

        cfg = load_config(config)
    nms = resolve_nms(NmsOverrides(nms_type=nms_type, thresh=nms_thresh, circle_radius_sq=circle_radius_sq,
                                   class_agnostic=nms_class_agnostic, pre_max=nms_pre_max, post_max=nms_post_max,
                                   score_thresh=nms_score_thresh), cfg)
    options = YawOptions(match=match, match_threshold=match_threshold, bins=bins, flip_deg=flip_deg,
                         swap_tol_deg=swap_deg, bands=Bands.parse(bands), dup_dist_m=dup_dist, dup_iou=dup_iou,
                         nms=nms, nms_sweep=_floats(nms_sweep, "--nms-sweep"))
    sources = SourceArgs(dataroot, version, split, boxes, tuple(infos or ()), infos_format, data_path, kitti_root,
                         av2_root, not no_cache, cache_dir)
    report = run_yaw(predictions, sources=sources, nusc_filters=nusc_filters, options=options, config_spec=config,
                     config=cfg)
    written = write_yaw_reports(report, out, plot=plot)
    if plot is not None and plot.resolve() not in {p.resolve() for p in written}:
        written.append(plot_png(report, plot))
    if as_json:
        typer.echo(json_payload(report, written))
        return
    render(report)
    if not quiet:
        for p in written:
            typer.echo(f"wrote {p}")
