"""The CSV writing of the exports (storage/exports.py): RFC 4180 quoting that a CSV reader undoes,
and no field a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from storage.exports import cell, csv_lines, export_filename

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@given(st.lists(st.lists(st.text(), min_size=1, max_size=5), min_size=1, max_size=5))
def test_text_reads_back_and_never_starts_a_formula(rows: list[list[str]]) -> None:
    text = csv_lines(rows)
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert len(back) == len(rows)
    for got, sent in zip(back, rows, strict=True):
        for field, value in zip(got, sent, strict=True):
            assert not field.startswith(_FORMULA)
            assert field == ("'" + value if value.startswith(_FORMULA) else value)
    assert text.endswith("\r\n")


def test_values_are_written_as_spreadsheets_read_them() -> None:
    assert cell(None) == ""
    assert cell(-45.5) == "-45.5"  # a number stays a number, sign and all
    assert cell(float("nan")) == ""
    assert cell(3) == "3"
    assert cell(True) == "true"
    assert cell(date(2026, 11, 1)) == "2026-11-01"
    hanoi = timezone(timedelta(hours=7))
    assert cell(datetime(2026, 11, 1, 7, 0, tzinfo=hanoi)) == "2026-11-01T00:00:00Z"
    assert cell(datetime(2026, 11, 1, 0, 0, 0, 250, tzinfo=UTC)) == "2026-11-01T00:00:00.000250Z"
    assert cell("-1+2") == "'-1+2"
    assert csv_lines([["a,b", 'say "hi"', "two\nlines"]]) == '"a,b","say ""hi""","two\nlines"\r\n'


def test_file_names_hold_no_header_or_path_characters() -> None:
    assert export_filename("readings", "wq-1", "20261101T0000Z") == "readings-wq-1-20261101T0000Z.csv"
    assert export_filename("alerts", 'a"b/..\\c', "", "Đà") == "alerts-a_b_.._c-__.csv"
