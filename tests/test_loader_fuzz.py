"""campaign.loader under fuzzing: nothing a user can feed it raises."""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.loader import LoadResult, load_recipients
from campaign.loader.reading import read_table
from campaign.model import Severity

FILES = Path(__file__).parent / "files"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _check(result: LoadResult) -> None:
    """What every result must satisfy, whatever the input."""
    assert isinstance(result, LoadResult)
    assert all(p.code != "internal_error" for p in result.problems), result.problems
    assert all(p.message for p in result.problems)
    file_level = [p for p in result.problems if p.row is None]
    assert result.problems[: len(file_level)] == file_level  # file-level problems first
    rows = [p.row for p in result.problems[len(file_level) :]]
    assert rows == sorted(rows)
    if any(p.severity is Severity.ERROR for p in file_level):
        assert result.recipients == []
    sent_rows = [r.row for r in result.recipients]
    assert sent_rows == sorted(set(sent_rows))
    phones = [r.phone for r in result.recipients]
    assert len(phones) == len(set(phones))
    assert all(p.startswith("+") and p[1:].isdigit() for p in phones)
    accounted = sent_rows + [s.row for s in result.skipped] + [s.row for s in result.invalid]
    assert len(accounted) == len(set(accounted))
    for recipient in result.recipients:
        assert list(recipient.variables) == result.variable_keys


def _load_bytes(folder: Path, data: bytes, suffix: str = ".csv", **kwargs) -> LoadResult:
    path = folder / f"fuzz{suffix}"
    path.write_bytes(data)
    return load_recipients(path, **kwargs)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise(scratch, data):
    """Random bytes give a LoadResult, never an exception."""
    _check(_load_bytes(scratch, data))


CSV_TOKENS = [
    *',;\t|"\n\r ',
    *["+44", "7911", "123456", "0", "phone", "name", "1", "E+11", ".0"],
    *["\ufeff", "é", "\x00", "sep=;", "NA", "x"],
]
CSVISH = st.lists(st.sampled_from(CSV_TOKENS), max_size=40).map("".join)


@FUZZ
@given(
    text=CSVISH,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    variables=st.sampled_from([None, [], ["1"], ["name", "x"]]),
    region=st.sampled_from([None, "GB", "zz"]),
)
def test_random_csvish_text_never_raises(scratch, text, encoding, variables, region):
    """Random CSV-like text, in any of the encodings, gives a LoadResult."""
    data = text.encode(encoding, errors="replace")
    result = _load_bytes(scratch, data, variables=variables, default_region=region)
    _check(result)


@FUZZ
@given(text=CSVISH)
def test_random_text_with_phone_header_never_raises(scratch, text):
    """Random rows below a real header give a LoadResult that accounts for rows."""
    _check(_load_bytes(scratch, ("phone,name,1\n" + text).encode(), body_text="Hi {{1}}"))


CELL_TOKENS = [*'ab ,;"\n\t+0123456789', "\r\n", "é", "NA"]
CELL = st.lists(st.sampled_from(CELL_TOKENS), max_size=8).map("".join)


@FUZZ
@given(
    leading=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["", " "])), max_size=3),
    rows=st.lists(st.lists(CELL, min_size=0, max_size=5), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_pandas_fast_path_and_csv_fallback_agree(leading, rows, delimiter):
    """For any well-quoted CSV, the pandas path and the csv-module path give the same table."""
    buffer = io.StringIO()
    for separators, space in leading:  # blank rows, some wider than the header
        buffer.write(delimiter.join([space] * separators) + "\n")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["phone", "name", "a"])
    writer.writerows(rows)
    text = buffer.getvalue()
    fast = _whole_table(text, delimiter)
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header_index = len(leading)
    assert fast.header == ["phone", "name", "a"]
    assert fast.header_row == header_index + 1
    data = records[header_index + 1 :]
    assert list(fast.rows) == list(range(header_index + 2, len(records) + 1))
    for j, record in enumerate(data):
        cells = [record[k] if k < len(record) else "" for k in range(3)]
        assert [fast.columns[k][j] for k in range(3)] == cells
        extra = record[3:]
        if any(c.strip() for c in extra):
            assert j in fast.extra
        else:
            assert j not in fast.extra


@dataclass
class _WholeTable:
    """A CSV table's blocks joined, as the fuzz test compares them with the csv module."""

    header: list[str]
    header_row: int
    rows: list[int]
    columns: list[list[str]]
    extra: dict[int, int]


def _whole_table(text: str, delimiter: str) -> _WholeTable:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(text.encode())
        table = read_table(path, None, delimiter, None, [])
        blocks = list(table.blocks)
    columns: list[list[str]] = [[] for _ in table.header]
    extra: dict[int, int] = {}
    for block in blocks:
        offset = len(columns[0])
        for column, cells in zip(columns, block.columns, strict=True):
            column += cells
        extra.update({offset + j: count for j, count in block.extra_cells.items()})
    rows = [row for block in blocks for row in block.rows]
    return _WholeTable(table.header, table.header_row, rows, columns, extra)


@settings(max_examples=60, deadline=None, database=None)
@given(
    position=st.integers(min_value=0, max_value=10_000),
    junk=st.binary(min_size=1, max_size=40),
)
def test_damaged_workbooks_never_raise(scratch, position, junk):
    """A real .xlsx with bytes overwritten somewhere gives a LoadResult."""
    original = (FILES / "recipients.xlsx").read_bytes()
    at = position % len(original)
    damaged = original[:at] + junk + original[at + len(junk) :]
    _check(_load_bytes(scratch, damaged, suffix=".xlsx"))


@FUZZ
@given(
    encoding=st.one_of(st.none(), st.text(max_size=10)),
    delimiter=st.one_of(st.none(), st.text(max_size=3)),
    sheet=st.one_of(st.none(), st.text(max_size=5)),
    region=st.one_of(st.none(), st.text(max_size=4)),
    fallback=st.one_of(st.none(), st.text(max_size=5)),
    body=st.one_of(st.none(), st.text(max_size=30)),
    variables=st.one_of(st.none(), st.lists(st.text(max_size=6), max_size=3)),
)
def test_any_arguments_never_raise(encoding, delimiter, sheet, region, fallback, body, variables):
    """Whatever options the user passes, the result is a LoadResult."""
    for name in ("rules.csv", "recipients.xlsx"):
        result = load_recipients(
            FILES / name,
            variables=variables,
            body_text=body,
            default_region=region,
            name_fallback=fallback,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
        )
        _check(result)
