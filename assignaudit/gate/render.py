"""Renderings of a `GateResult` that need no terminal: rows of strings, Markdown (a PR comment), JUnit XML, JSON.

The rich table lives in ``assignaudit/cli/gate.py`` and draws the same `table_rows`.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

from assignaudit.errors import ReportError
from assignaudit.gate.compare import GateResult
from assignaudit.gate.rules import RULES_BY_NAME, Status, Verdict, format_threshold, format_value
from assignaudit.report import atomic_write_text

TABLE_HEADER: Final = ("verdict", "report", "class", "band", "metric", "rule", "baseline", "current", "delta", "limit")


def format_delta(v: Verdict) -> str:
    """``+12`` / ``-3.1%`` style: absolute for counts and rates, plus the relative change where defined."""
    if v.delta is None:
        return "-"
    if v.metric.startswith("num_"):
        text = f"{v.delta:+.0f}"
    elif v.metric in ("flip_rate", "dup_rate_post_nms"):
        text = f"{100 * v.delta:+.2f} pp"
    else:
        text = f"{v.delta:+.4g}"
    rel = v.rel_delta
    if rel is not None and not v.metric.endswith("_rate"):
        text += f" ({100 * rel:+.1f}%)"
    return text


def verdict_row(v: Verdict) -> tuple[str, ...]:
    """One row of `TABLE_HEADER` as strings."""
    return (v.status.value.upper(), v.report, v.class_name, v.band, v.metric, v.rule or "",
            format_value(v.metric, v.baseline), format_value(v.metric, v.current), format_delta(v),
            format_threshold(v.rule, v.threshold))


def table_rows(result: GateResult) -> list[tuple[str, ...]]:
    return [verdict_row(v) for v in result.verdicts]


def headline(result: GateResult) -> str:
    """One line: PASSED/FAILED and the verdict counts."""
    n_fail = result.count(Status.FAIL)
    state = "PASSED" if result.passed else "FAILED"
    return (f"assignaudit gate {state}: {n_fail} violation{'s' if n_fail != 1 else ''}, "
            f"{result.count(Status.PASS)} passed, {result.count(Status.SKIP)} not judged (small counts), "
            f"{result.count(Status.INFO)} compared without a rule")


# ------------------------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------------------------


def _md_cell(text: Any) -> str:
    # A pipe would split the cell and a newline would end the row.
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
        return value[:12]  # a sha256: the prefix is what people compare by eye
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def to_markdown(result: GateResult) -> str:
    """A Markdown report ready to post as a PR comment: headline, violations, provenance, every compared cell."""
    icon = ":white_check_mark:" if result.passed else ":x:"
    lines = [f"## {icon} {headline(result)}", "",
             f"Baseline `{result.baseline}`, current `{result.current}`"
             + (f", policy `{result.policy_source}`" if result.policy_source else "") + ".", ""]
    violations = result.violations
    if violations:
        lines += ["### Violations", ""]
        lines += _md_table(TABLE_HEADER, [verdict_row(v) for v in violations])
        lines += [""]
    if result.provenance:
        lines += ["### Provenance", ""]
        rows = [(p.report, p.field, _short(p.baseline), _short(p.current),
                 "same" if p.matches else ("DIFFERS" if p.required else "changed")) for p in result.provenance]
        lines += _md_table(("report", "field", "baseline", "current", ""), rows)
        lines += [""]
    if result.notes:
        lines += ["### Notes", ""] + [f"- {_md_cell(n)}" for n in result.notes] + [""]
    lines += ["<details><summary>All compared cells</summary>", ""]
    lines += _md_table(TABLE_HEADER, table_rows(result))
    lines += ["", "</details>", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# JUnit XML
# ------------------------------------------------------------------------------------------------------------------


def to_junit_xml(result: GateResult) -> str:
    """JUnit XML: one testcase per judged (rule, class, band); violations are failures, small counts skipped.

    ``classname`` is ``assignaudit.gate.<rule>`` and ``name`` is ``<class> [<band>]``, so CI test views group the
    failures by rule and name the class and band.
    """
    judged = [v for v in result.verdicts if v.rule is not None]
    n_fail = sum(v.status is Status.FAIL for v in judged)
    n_skip = sum(v.status is Status.SKIP for v in judged)
    suites = ET.Element("testsuites", name="assignaudit gate", tests=str(len(judged)), failures=str(n_fail),
                        errors="0", skipped=str(n_skip))
    suite = ET.SubElement(suites, "testsuite", name="assignaudit.gate", tests=str(len(judged)),
                          failures=str(n_fail), errors="0", skipped=str(n_skip), time="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline", value=result.baseline)
    ET.SubElement(props, "property", name="current", value=result.current)
    if result.policy_source:
        ET.SubElement(props, "property", name="policy", value=result.policy_source)
    for v in judged:
        case = ET.SubElement(suite, "testcase", classname=f"assignaudit.gate.{v.rule}",
                             name=f"{v.class_name} [{v.band}]", time="0")
        if v.status is Status.FAIL:
            failure = ET.SubElement(case, "failure", message=v.message, type=v.rule or "")
            failure.text = (f"{RULES_BY_NAME[v.rule].label}: {v.metric} {format_value(v.metric, v.baseline)} -> "
                            f"{format_value(v.metric, v.current)}, limit {format_threshold(v.rule, v.threshold)}")
        elif v.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=v.message)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# ------------------------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json_dict(result: GateResult) -> dict[str, Any]:
    """Verdicts and provenance as plain JSON types (NaN -> null); ``passed`` is what exit code 1 means."""
    return {
        "passed": result.passed,
        "num_violations": len(result.violations),
        "baseline": result.baseline,
        "current": result.current,
        "policy": result.policy_source,
        "notes": list(result.notes),
        "provenance": [{"report": p.report, "field": p.field, "baseline": p.baseline, "current": p.current,
                        "required": p.required, "matches": p.matches} for p in result.provenance],
        "verdicts": [{"status": v.status.value, "report": v.report, "rule": v.rule, "class": v.class_name,
                      "band": v.band, "metric": v.metric, "baseline": _jsonable(v.baseline),
                      "current": _jsonable(v.current), "delta": _jsonable(v.delta),
                      "threshold": _jsonable(v.threshold), "message": v.message} for v in result.verdicts],
    }


def to_json(result: GateResult) -> str:
    return json.dumps(to_json_dict(result), indent=2, default=str)


# ------------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------------


def _write(path: Path, text: str, what: str) -> None:
    try:
        atomic_write_text(Path(path), text)
    except OSError as err:
        raise ReportError(f"cannot write {what} file {path}: {err.strerror or err}") from err


def write_markdown(path: Path, result: GateResult) -> None:
    """`to_markdown` written atomically; `ReportError` if the path cannot be written."""
    _write(path, to_markdown(result), "--md")


def write_junit(path: Path, result: GateResult) -> None:
    """`to_junit_xml` written atomically; `ReportError` if the path cannot be written."""
    _write(path, to_junit_xml(result), "--junit")


def write_outputs(result: GateResult, md: Path | None = None, junit: Path | None = None) -> None:
    """The Markdown and JUnit reports, both replaced or neither (`assignaudit.report.atomic_write_files`)."""
    from assignaudit.report import atomic_write_files

    contents: dict[Path, bytes] = {}
    names: dict[Path, str] = {}
    if md is not None:
        contents[Path(md)], names[Path(md)] = to_markdown(result).encode(), "--md"
    if junit is not None:
        contents[Path(junit)], names[Path(junit)] = to_junit_xml(result).encode(), "--junit"
    atomic_write_files(contents, names)
