"""A report folder's bytes for "identical reports" tests: every report file as written, and the manifest without the
fields that name the run (``run_id``, ``created_utc``), which differ between any two runs by design."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def report_bytes(out: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(Path(out).iterdir())}
    if MANIFEST in files:
        doc = json.loads(files[MANIFEST])
        doc.pop("run_id", None)
        doc.pop("created_utc", None)
        for entry in doc.get("files", {}).values():
            entry.pop("run_id", None)
        files[MANIFEST] = json.dumps(doc, indent=2, sort_keys=True).encode()
    return files
