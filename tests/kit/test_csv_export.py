"""Every CSV the platform writes goes through kit.csv_export: a cell a spreadsheet would run as
a formula is written as text (a leading single quote, as OWASP advises), numbers stay numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from kit.csv_export import safe_cell, wants_csv, write_csv


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://x")',
        "+1+1",
        "-1+1",
        "=1+1",
        "@SUM(A1:A2)",
        "\t=1",
        "\r=1",
        "-",
        "+",
        "@",
        "=",
        "-2e5",
    ],
)
def test_cells_a_spreadsheet_would_evaluate_are_quoted(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("-5.00", "-5.00"),
        (Decimal("-5.00"), "-5.00"),
        ("+3", "+3"),
        (-12, "-12"),
        ("12.5", "12.5"),
        ("PyCon", "PyCon"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (3, "3"),
    ],
)
def test_plain_numbers_and_text_are_left_alone(value, written):
    assert safe_cell(value) == written


def test_write_csv_escapes_every_cell_and_stays_parseable():
    body = write_csv(
        ["title", "net"],
        [['=HYPERLINK("http://x")', Decimal("-5.00")], ['Beta, "the sequel"', "0.00"]],
    )
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [
        ["title", "net"],
        ['\'=HYPERLINK("http://x")', "-5.00"],
        ['Beta, "the sequel"', "0.00"],
    ]
    assert body.endswith("\r\n")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", False),
        ("text/csv", True),
        ("application/json", False),
        ("text/csv, application/json", True),
        ("application/json, text/csv", False),
        ("application/json;q=0.5, text/csv", True),
        ("text/csv;q=0.1, */*", False),
        ("text/csv;q=junk, application/json", False),
        ("text/html", False),
    ],
)
def test_one_negotiation_decides_json_or_csv(accept: str, expected: bool) -> None:
    assert wants_csv(accept) is expected
