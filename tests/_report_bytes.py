"""A report folder's bytes for "identical reports" tests (`assignaudit.report_set.content_bytes`)."""

from assignaudit.report_set import content_bytes as report_bytes  # noqa: F401
