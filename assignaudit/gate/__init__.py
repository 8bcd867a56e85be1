"""The CI gate: compare a baseline and a current report set per (class, band) and judge the policy's rules.

``run_gate(baseline, current, policy) -> GateResult``; `assignaudit.gate.render` turns the result into Markdown,
JUnit XML and JSON. No typer or rich here: ``assignaudit/cli/gate.py`` parses flags, calls and renders.
"""

from assignaudit.gate.compare import FieldCheck, GateResult, load_report_set, read_summary_file, run_gate
from assignaudit.gate.policy import Override, Policy, load_policy, policy_from_mapping
from assignaudit.gate.rules import RULES, RuleKind, RuleSpec, Status, Thresholds, Verdict

__all__ = [
    "FieldCheck", "GateResult", "Override", "Policy", "RULES", "RuleKind", "RuleSpec", "Status", "Thresholds",
    "Verdict", "load_policy", "load_report_set", "policy_from_mapping", "read_summary_file", "run_gate",
]
