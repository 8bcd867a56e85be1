"""`assignaudit gate BASELINE CURRENT`: the CI gate. Parse, call `assignaudit.gate.run_gate`, render.

Exit codes: 0 every rule passed (or --exit-zero), 1 a rule is violated, 2 usage or input error (missing file, not an
assignaudit report, schema mismatch, reports made from different data without --allow-mismatch, bad policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import EXIT_GATE_FAILED, JsonOpt, app, cli_errors
# assignaudit.gate (pandas) is imported inside the command: the other commands (config show) start without it.

_RULES = "Rules (flags win over the policy file's global rules)"
_OUT = "Outputs"

_STYLE = {"FAIL": "bold red", "PASS": "green", "SKIP": "yellow", "INFO": "dim"}  # by Status name


def _render_table(result, verbose: bool = False) -> None:
    """Violations and one summary line; ``verbose``: every compared cell, the notes and the config hash too."""
    from rich.console import Console
    from rich.table import Table

    from assignaudit.gate.render import TABLE_HEADER, headline, table_rows

    console = Console()
    if not console.is_terminal:
        # CI logs are not terminals; rich would fold the table into 80 columns.
        console = Console(width=160)
    # Only what differs, and the config hash (the change under review); --md and --json carry every field.
    shown = [p for p in result.provenance if not p.matches or (verbose and p.field == "config_sha256")]
    if shown:
        prov = Table(title="provenance (differences and config hash)", title_justify="left")
        for name in ("report", "field", "baseline", "current", ""):
            prov.add_column(name)
        for p in shown:
            flag = "same" if p.matches else ("[bold red]DIFFERS[/]" if p.required else "[yellow]changed[/]")
            prov.add_row(p.report, p.field, _short(p.baseline), _short(p.current), flag)
        console.print(prov)
    rows = [(v, row) for v, row in zip(result.verdicts, table_rows(result)) if verbose or v.status.name == "FAIL"]
    if rows:
        title = ("gate: every compared cell (violations first)" if verbose
                 else "gate: violations (--verbose: every cell)")
        table = Table(title=title, title_justify="left")
        for name in TABLE_HEADER:
            table.add_column(name, justify="right" if name in ("baseline", "current", "delta", "limit") else "left")
        for verdict, row in rows:
            table.add_row(*row, style=_STYLE[verdict.status.name])
        console.print(table)
    if verbose:
        for note in result.notes:
            console.print(f"note: {note}", style="yellow", markup=False, highlight=False)
    for v in result.violations:
        console.print(f"FAIL {v.message}", style="bold red", markup=False, highlight=False)
    console.print(headline(result), style="bold red" if not result.passed else "bold green", markup=False,
                  highlight=False)


def _short(value) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 48 else text[:45] + "..."


@app.command("gate")
@cli_errors
def gate(
    baseline: Annotated[Path, typer.Argument(help="Baseline report directory (or its summary.parquet).",
                                             show_default=False)],
    current: Annotated[Path, typer.Argument(help="Current report directory (or its summary.parquet).",
                                            show_default=False)],
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Gate policy YAML (rules, per-class/band "
                                                   "overrides); see docs/ci-gate.md.")] = None,
    max_pos_drop: Annotated[Optional[str], typer.Option(
        "--max-pos-drop", help="Largest relative drop of positives per class and band, e.g. 10% (off: no rule). "
        "Default 10%.", rich_help_panel=_RULES)] = None,
    max_pos_per_gt_drop: Annotated[Optional[str], typer.Option(
        "--max-pos-per-gt-drop", help="Largest relative drop of positives per GT. Default 10%.",
        rich_help_panel=_RULES)] = None,
    max_zero_pos_increase: Annotated[Optional[str], typer.Option(
        "--max-zero-pos-increase", help="Largest absolute increase of GT with zero positives, per class and band. "
        "Default 2.", rich_help_panel=_RULES)] = None,
    fail_on_zero_pos_class: Annotated[Optional[bool], typer.Option(
        "--fail-on-zero-pos-class/--no-fail-on-zero-pos-class",
        help="Fail when a class has GT but no positives. Default on.", rich_help_panel=_RULES,
        show_default=False)] = None,
    max_flip_rate: Annotated[Optional[str], typer.Option(
        "--max-flip-rate", help="Ceiling on the yaw report's 180-degree flip rate, e.g. 0.02. Default off.",
        rich_help_panel=_RULES)] = None,
    max_dup_rate: Annotated[Optional[str], typer.Option(
        "--max-dup-rate", help="Ceiling on the yaw report's duplicate rate after NMS. Default off.",
        rich_help_panel=_RULES)] = None,
    max_aoe_increase: Annotated[Optional[str], typer.Option(
        "--max-aoe-increase", help="Largest increase of nuScenes AOE in radians (or e.g. 3deg). Default off.",
        rich_help_panel=_RULES)] = None,
    min_count: Annotated[Optional[str], typer.Option(
        "--min-count", help="Counts below this are not judged by relative or rate rules (noise). Default 20.",
        rich_help_panel=_RULES)] = None,
    tie_tolerance: Annotated[Optional[str], typer.Option(
        "--tie-tolerance", help="Positives of a drop absorbed before a relative rule is judged (forced-match "
        "ties differ between float paths). Default 2.", rich_help_panel=_RULES)] = None,
    allow_mismatch: Annotated[bool, typer.Option(
        "--allow-mismatch", help="Compare reports made from different datasets, splits, seeds, replays, class "
        "lists or bands.")] = False,
    exit_zero: Annotated[bool, typer.Option(
        "--exit-zero", help="Exit 0 even when a rule is violated (input errors still exit 2).")] = False,
    md: Annotated[Optional[Path], typer.Option("--md", help="Write a Markdown report (a PR comment) here.",
                                               rich_help_panel=_OUT)] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML here (one testcase per rule, "
                                                  "class and band).", rich_help_panel=_OUT)] = None,
    json_: JsonOpt = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Print every compared cell, the notes and the config hash, not only the violations "
                                "and the summary line.")] = False,
) -> None:
    """Compare two `count` (and `yaw`) reports per class and band; exit 1 when a rule is violated."""
    from assignaudit.gate import load_policy, run_gate
    from assignaudit.gate.render import to_json, write_junit, write_markdown

    flags = dict(max_pos_drop=max_pos_drop, max_pos_per_gt_drop=max_pos_per_gt_drop,
                 max_zero_pos_increase=max_zero_pos_increase, fail_on_zero_pos_class=fail_on_zero_pos_class,
                 max_flip_rate=max_flip_rate, max_dup_rate=max_dup_rate, max_aoe_increase=max_aoe_increase,
                 min_count=min_count, tie_tolerance=tie_tolerance)
    from assignaudit.gate import load_policy, run_gate
    from assignaudit.gate.render import to_json, write_outputs
    from assignaudit.report_set import check_out_file

    outputs = {opt: path for opt, path in (("--md", md), ("--junit", junit)) if path is not None}
    for opt, path in outputs.items():  # before any report is read
        check_out_file(path, opt)
    resolved = load_policy(policy).with_flags(flags)
    result = run_gate(baseline, current, resolved, allow_mismatch=allow_mismatch)
    if outputs:
        write_outputs(result, md=md, junit=junit)  # both or neither
    if json_:
        typer.echo(to_json(result))
    else:
        _render_table(result, verbose=verbose)
    if not result.passed and not exit_zero:
        raise typer.Exit(EXIT_GATE_FAILED)
