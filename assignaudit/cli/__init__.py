"""Command-line interface. Each command lives in its own module and registers itself on `app`."""

from assignaudit.cli.app import app, main

# Importing a command module registers its command(s) on `app`.
from assignaudit.cli import info as _info  # noqa: E402,F401

__all__ = ["app", "main"]
