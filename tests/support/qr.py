"""Read QR codes back the way a phone would: decode a PNG (greyscale or palette, as QR
generators write them) into a greyscale bitmap and hand it to the ZXing reader (zxing-cpp)."""

from __future__ import annotations

import struct
import zlib

import zxingcpp


def _unfilter(raw: bytes, width_bytes: int, height: int, bpp: int) -> list[bytearray]:
    rows: list[bytearray] = []
    prev = bytearray(width_bytes)
    pos = 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1 : pos + 1 + width_bytes])
        pos += 1 + width_bytes
        for i in range(width_bytes):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return rows


def png_to_grey(png: bytes) -> tuple[bytes, int, int]:
    """``(pixels, width, height)``: one byte of grey per pixel."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, palette = 8, b"", None
    width = height = depth = colour = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert interlace == 0 and colour in (0, 3), (colour, interlace)
        elif kind == b"PLTE":
            palette = [sum(data[i : i + 3]) // 3 for i in range(0, len(data), 3)]
        elif kind == b"IDAT":
            idat += data
    width_bytes = (width * depth + 7) // 8
    rows = _unfilter(zlib.decompress(idat), width_bytes, height, max(1, depth // 8))
    out = bytearray()
    top = (1 << depth) - 1
    for row in rows:
        for x in range(width):
            bit = x * depth
            value = (row[bit // 8] >> (8 - depth - bit % 8)) & top
            out.append(palette[value] if palette is not None else value * 255 // top)
    return bytes(out), width, height


def read_qr_png(png: bytes) -> list[str]:
    """The texts of every QR code in the PNG image."""
    pixels, width, height = png_to_grey(png)
    image = memoryview(pixels).cast("B", (height, width))
    return [b.text for b in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
