"""Command-line interface. Each command lives in its own module and registers itself on `app` when imported."""

from assignaudit.cli.app import app, main
from assignaudit.cli import info, config_cmd, count, yaw, gate, show, report_cmd  # noqa: E402,F401  (registration)

__all__ = ["app", "main"]
