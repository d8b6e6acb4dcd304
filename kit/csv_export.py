"""CSV for people who open it in a spreadsheet: the one writer every CSV export goes through.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets, so a title such as ``=HYPERLINK("http://evil", "click")``
typed by one user would run on the machine of whoever opens the export (CSV/formula injection).
Such a cell is written with a leading single quote, as OWASP advises: the spreadsheet shows it as
text. A cell that is a plain decimal number (``-5.00``, a negative amount) is left alone: it is
a number to the spreadsheet, not a formula, and quoting it would make it text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.responses import Response

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value: Any) -> str:
    """``value`` as the text of one CSV cell that no spreadsheet evaluates (None: empty)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A whole CSV document (RFC 4180: comma-separated, quoted as needed, CRLF line ends), every
    cell, the header's too, passed through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue()


CSV = "text/csv"


def csv_response(body: str, filename: str, *, headers: dict[str, str] | None = None) -> Response:
    """``body`` (from :func:`write_csv`) as a CSV download named ``filename``."""
    return Response(
        body,
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


def wants_csv(accept: str) -> bool:
    """Content negotiation between JSON (the default) and CSV on an ``Accept`` header's
    q-values; at equal q the type listed first wins."""
    best, best_q = "application/json", 0.0
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        q -= i * 1e-6
        if media in (CSV, "application/json", "application/*", "*/*") and q > best_q:
            best, best_q = (CSV if media == CSV else "application/json"), q
    return best == CSV
