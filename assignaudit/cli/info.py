"""`assignaudit info` (command module; registers itself on the shared app)."""

from assignaudit.cli.app import app  # noqa: F401
