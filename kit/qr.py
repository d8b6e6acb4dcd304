"""Text drawn as a QR code (segno): booking serves tickets' codes as SVG, notifications
attaches them to e-mails as PNG."""

from __future__ import annotations

import io

import segno


# The data mask, fixed. Left to segno, it draws the symbol under all eight masks and keeps the
# one with the lowest penalty score: four fifths of the drawing's time, for a choice any reader
# copes without. Mask 2 is the one that search picks most often for our ticket secrets. See
# docs/architecture.md, "QR codes with a fixed mask".
MASK = 2


def _code(text: str) -> segno.QRCode:
    # error correction M: survives a scuffed phone screen
    return segno.make(text, error="m", mask=MASK)


def qr_svg(text: str) -> bytes:
    """``text`` as a standalone SVG QR code (the usual 4-module quiet zone)."""
    buf = io.BytesIO()
    _code(text).save(buf, kind="svg", scale=4, border=4, title="Ticket")
    return buf.getvalue()


def qr_png(text: str) -> bytes:
    """``text`` as a PNG QR code, 6 pixels per module (the usual 4-module quiet zone)."""
    buf = io.BytesIO()
    _code(text).save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()
