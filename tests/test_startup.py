"""Start-up stays light: `--help`, `config show` and `gate` import neither torch nor the nuScenes devkit (nor
matplotlib / scipy / sklearn). Checked twice per command in a fresh interpreter: ``sys.modules`` after the command
ran, and the module list ``python -X importtime`` printed (an independent record of every import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "nuscenes", "matplotlib", "scipy", "sklearn")

_PROBE = """
import sys
from assignaudit.cli import main
sys.argv = ["assignaudit", *{args!r}]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("EXIT", code)
print("HEAVY", sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _run(args: list[str], tmp_path: Path) -> tuple[str, set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _PROBE.format(args=args, heavy=HEAVY)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    return proc.stdout, imported


@pytest.mark.parametrize("args", [
    ["--help"],
    ["config", "show"],
    ["config", "show", "mmdet3d-nuscenes-pointpillars-secfpn"],
    ["config", "presets"],
    ["gate", "no-such-baseline", "no-such-current"],  # fails on input (exit 2) after importing the gate code
    ["gate", "--help"],
])
def test_light_commands_import_no_heavy_module(args: list[str], tmp_path: Path) -> None:
    out, imported = _run(args, tmp_path)
    assert "HEAVY []" in out, out
    top = {name.split(".")[0] for name in imported}
    assert not top & set(HEAVY), sorted(top & set(HEAVY))
    assert "assignaudit.cli.app" in imported  # the probe really ran our CLI (importtime saw it)
    expected_exit = "EXIT 2" if args[0] == "gate" and "--help" not in args else "EXIT 0"
    assert expected_exit in out, out


def test_gate_code_imports_no_torch(tmp_path: Path) -> None:
    """The gate modules themselves (what `gate` runs on real reports) are torch- and devkit-free."""
    code = ("import sys, assignaudit.gate, assignaudit.gate.render, assignaudit.report; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
