"""QR codes are drawn with a fixed data mask (kit.qr.MASK) instead of segno's penalty search:
they must read back, with a real reader (ZXing), exactly as the searched ones do."""

from __future__ import annotations

import io
import uuid

import segno

from apps.booking.adapters import tickets as ticketing
from kit.qr import MASK, qr_png
from tests.support.qr import read_qr_png


def _png(code: segno.QRCode) -> bytes:
    buf = io.BytesIO()
    code.save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()


def test_ticket_codes_with_the_fixed_mask_read_back_as_segnos_own_choice_does():
    key = ticketing._new_key(uuid.uuid4())
    for secret in (ticketing.sign(key, uuid.uuid4()) for _ in range(20)):
        searched = segno.make(secret, error="m")
        assert read_qr_png(qr_png(secret)) == [secret]
        assert read_qr_png(_png(searched)) == [secret]
        # the same symbol size and error correction as the searched one: only the mask differs
        fixed = segno.make(secret, error="m", mask=MASK)
        assert (fixed.version, fixed.error) == (searched.version, searched.error)
