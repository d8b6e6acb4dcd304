"""A ticket secret drawn as a QR code (segno)."""

from __future__ import annotations

import io

import segno


def qr_svg(text: str) -> bytes:
    """``text`` as a standalone SVG QR code (error correction M, the usual 4-module margin)."""
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="svg", scale=4, border=4, title="Ticket")
    return buf.getvalue()
