"""`assignaudit info`: annotations per class and BEV range band of a dataset split (parse, call, render)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from rich.console import Console
from rich.table import Table

from assignaudit.cli.app import (
    Av2RootOpt, BandsOpt, CacheDirOpt, NoCacheOpt, BoxesOpt, DatarootOpt, DataPathOpt, InfosFormatOpt, InfosOpt, JsonOpt, KittiRootOpt,
    SourceArgs, SplitOpt, VersionOpt, app, cli_errors,
)


@app.command("info", help="Count annotations per class and range band (default: the bundled nuScenes fixture).")
@cli_errors
def info_cmd(
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
        help="Detector config whose dataset section names the train infos (with --data-path).")] = None,
    bands: BandsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from assignaudit.bands import Bands
    from assignaudit.info import dataset_info

    band_spec = Bands.parse(bands)  # validate the cheap option before loading a dataset
    cfg = None
    if config is not None:
        from assignaudit.config import load_config

        cfg = load_config(config)
    source = SourceArgs(dataroot, version, split, boxes, tuple(infos or ()), infos_format, data_path, kitti_root,
                        av2_root, not no_cache, cache_dir).open(cfg)
    result = dataset_info(source, band_spec)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    _render(result)


def _render(result: dict) -> None:
    src = result["source"]
    where = f"{src['dataroot']}" + (f"  {src['version']}  split={src['split']}" if src["kind"] == "nuscenes" else "")
    title = (f"{src['kind']}: {where}\n{result['num_scenes']} scenes, {result['num_samples']} samples, "
             f"{result['num_annotations']} annotations")
    table = Table()
    table.add_column("class", no_wrap=True)
    for b in result["bands"]:
        table.add_column(f"{b} m", justify="right")
    table.add_column("total", justify="right")
    table.add_column("0 pts", justify="right")
    for name, row in result["classes"].items():
        table.add_row(name, *(str(v) for v in row["by_band"].values()), str(row["num_annotations"]),
                      str(row["num_zero_lidar_pts"]))
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    console.print(table)
    if result["none_categories"]:
        cats = ", ".join(f"{k} ({v})" for k, v in result["none_categories"].items())
        console.print(f"(none) = categories without a detection class: {cats}")
