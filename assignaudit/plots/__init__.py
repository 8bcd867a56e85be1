"""The pictures of every command, in one place: `bev` draws a bird's-eye view of one frame's assignment
(`assignaudit show`, the report's thumbnails), `charts` draws the report and `yaw --plot` charts.

matplotlib is imported lazily (only when a picture is drawn) and always with the Agg backend, so no command pays for it
at start-up and no display is ever needed.
"""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fig_bytes(fig, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure encoded as ``fmt`` (png, svg), then closed. No ``bbox_inches='tight'``: pixel positions stay those of
    the figure's own transforms (the image tests rely on it)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Software": None} if fmt == "png" else {"Date": None})
    pyplot().close(fig)
    return buf.getvalue()
