"""`assignaudit report DIR...`: one self-contained HTML page from count / yaw / gate report directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import app, cli_errors


@app.command("report", help="Write one self-contained HTML page (images inline, no network, no JavaScript) from the "
                            "reports count, yaw and gate wrote.")
@cli_errors
def report_cmd(
    dirs: Annotated[list[Path], typer.Argument(help="Report directories (or report files).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML file (default DIR/report.html of the first "
                                                "directory).", show_default=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Two count report directories side by side "
                                                            "(A = first, B = second).")] = False,
    eval_iou: Annotated[float, typer.Option("--eval-iou", help="Evaluation IoU threshold drawn on the IoU "
                                                               "distributions.")] = 0.5,
    thumbnails: Annotated[int, typer.Option("--thumbnails", help="BEV thumbnails per class in the zero-positive "
                                                                 "ledger.")] = 3,
) -> None:
    from assignaudit.html_report import ReportOptions, write_html_report
    from assignaudit.report_set import check_out_file

    if out is not None:
        check_out_file(out, "--out")  # before any report is read

    path = write_html_report(list(dirs), out, ReportOptions(compare=compare, eval_iou=eval_iou,
                                                            thumbnails=thumbnails))
    typer.echo(f"wrote {path}")
