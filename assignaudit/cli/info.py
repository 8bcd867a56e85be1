"""`assignaudit info`: annotations per class and BEV range band of a dataset split (parse, call, render)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from assignaudit.cli.app import BandsOpt, BoxesOpt, DatarootOpt, JsonOpt, SplitOpt, VersionOpt, app, cli_errors


@app.command("info", help="Count annotations per class and range band (default: the bundled nuScenes fixture).")
@cli_errors
def info_cmd(
    dataroot: DatarootOpt = None,
    version: VersionOpt = None,
    split: SplitOpt = None,
    boxes: BoxesOpt = None,
    bands: BandsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from assignaudit.bands import Bands
    from assignaudit.info import dataset_info
    from assignaudit.sources.open import open_source

    band_spec = Bands.parse(bands)  # validate the cheap option before loading a dataset
    source = open_source(dataroot=dataroot, version=version, split=split, boxes=boxes)
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
