"""User-facing error types.

Everything a user can get wrong (a path, a config value, a malformed file) raises a subclass of
`AssignAuditError` with a one-line message that says what is wrong and, where possible, what to do.
The CLI turns these into one line on stderr and exit code 2. `assert` is kept for internal invariants.
"""

from __future__ import annotations


class AssignAuditError(Exception):
    """Base class: a problem with the user's input, reported as one line, exit code 2."""

    exit_code = 2


class DataError(AssignAuditError):
    """The dataset, box table or prediction file is missing, malformed or inconsistent."""


class ConfigError(AssignAuditError):
    """The detector config (preset, YAML, override) is unknown, malformed or unsupported."""


class ReportError(AssignAuditError):
    """A report file is missing, foreign (not written by assignaudit) or has the wrong schema."""
