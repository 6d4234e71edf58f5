"""An Excel workbook (.xlsx) into a Table: one sheet's cells as the text a user sees.

The first sheet is read, or the one `sheet=` names (case and spaces ignored). Numbers keep every
digit (447911123456, never 4.47911e11 or "….0"), booleans read TRUE/FALSE, dates and times as
their cell's format shows them (excel_dates.py; ISO where it cannot, noted in the Table). Cells
past the header's last column are an unnamed column, ignored (listed in a notice), not an
error as in a CSV file. Rows are read a block at a time, so a long sheet is never held whole.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import openpyxl

from campaign.loader.excel_dates import DateChoice, DateFormat, date_format
from campaign.loader.table import Block, FileError, Table

BLOCK_ROWS = 10_000
UNREADABLE_FORMAT = DateFormat("?", (), True, True, "its number format cannot be read")


def read_xlsx(
    path: Path, sheet: str | None, notices: list[str], dates: DateChoice | None = None
) -> Table:
    """The chosen sheet's header and rows (read as the Table's blocks are iterated)."""
    workbook = _open(path)
    cells = CellText(dates or DateChoice())
    try:
        records = _records(_worksheet(workbook, sheet, notices), cells)
        header_index = 0
        for header in records:
            if not is_blank(header):
                break
            header_index += 1
        else:
            raise FileError("empty_file", "the sheet has no rows (it is empty)")
    except BaseException:
        workbook.close()
        raise
    width = max(i for i, c in enumerate(header) if c and not c.isspace()) + 1
    return Table(
        header=header[:width],
        header_row=header_index + 1,
        blocks=_blocks(workbook, records, width, first_row=header_index + 2),
        extra_cells_are_errors=False,
        unrendered_dates=cells.unrendered,
    )


class CellText:
    """Cells as text; a date or time cell as its number format shows it.

    `unrendered` gathers, by column, the first format that could not be rendered (and why),
    for one warning per column."""

    def __init__(self, dates: DateChoice) -> None:
        self.dates = dates
        self.unrendered: dict[int, tuple[str, str]] = {}
        self._formats: dict[int, DateFormat] = {}  # by the format's id in the workbook

    def row(self, cells: tuple[Any, ...]) -> list[str]:
        return [
            self._date(k, c) if c.data_type == "d" else cell_text(c.value)
            for k, c in enumerate(cells)
        ]

    def _date(self, column: int, cell: Any) -> str:
        value = cell.value
        shown = self._format(cell)
        text = self.dates.text(value, shown)
        if text is not None:
            return text
        self.unrendered.setdefault(column, (shown.code, shown.why))
        return cell_text(value)

    def _format(self, cell: Any) -> DateFormat:
        try:
            format_id = cell.style_array.numFmtId
            shown = self._formats.get(format_id)
            if shown is None:
                shown = self._formats[format_id] = date_format(cell.number_format, format_id)
        except (AttributeError, IndexError, KeyError, TypeError):  # a damaged style table
            return UNREADABLE_FORMAT
        return shown


def cell_text(value: object) -> str:
    """A cell's value as the text a user sees in Excel."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))  # a phone stored as a number keeps every digit
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def is_blank(cells: list[str]) -> bool:
    return all(not c or c.isspace() for c in cells)


def _damaged(exc: BaseException) -> FileError:
    return FileError(
        "unreadable_file",
        f"the Excel workbook cannot be read ({type(exc).__name__}); it may be damaged — "
        "save it again from Excel",
    )


def _open(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl fails in many ways on a damaged file
            raise _damaged(exc) from exc


def _worksheet(workbook: Any, sheet: str | None, notices: list[str]) -> Any:
    try:
        names = list(workbook.sheetnames)
        worksheets = workbook.worksheets
    except Exception as exc:  # openpyxl reads the sheets' list lazily from the file
        raise _damaged(exc) from exc
    if not worksheets:
        raise FileError("empty_file", "the workbook has no worksheet")
    if sheet is not None:
        wanted = str(sheet)
        matches = [n for n in names if n == wanted] or [
            n for n in names if n.strip().casefold() == wanted.strip().casefold()
        ]
        if not matches:
            listed = ", ".join(f'"{n}"' for n in names)
            raise FileError(
                "missing_sheet", f'the workbook has no sheet "{wanted}"; its sheets are: {listed}'
            )
        worksheet = workbook[matches[0]]
    else:
        worksheet = worksheets[0]
        if len(names) > 1:
            notices.append(f'read sheet "{worksheet.title}", the first of {len(names)} sheets')
    if not hasattr(worksheet, "iter_rows"):
        raise FileError("unsupported_format", f'sheet "{worksheet.title}" is a chart')
    return worksheet


def _records(worksheet: Any, cells: CellText) -> Iterator[list[str]]:
    """Every row of the sheet, blank ones included, as text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if hasattr(worksheet, "reset_dimensions"):
                worksheet.reset_dimensions()  # do not trust the stored size
            rows = worksheet.iter_rows()  # cells, not values: a date needs its format
        except Exception as exc:
            raise _damaged(exc) from exc
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                values = next(rows, None)
            except Exception as exc:  # openpyxl parses the sheet's XML as it goes
                raise _damaged(exc) from exc
        if values is None:
            return
        yield cells.row(values)


def _blocks(
    workbook: Any, records: Iterator[list[str]], width: int, first_row: int
) -> Iterator[Block]:
    try:
        while batch := list(itertools.islice(records, BLOCK_ROWS)):
            yield _block(batch, width, first_row)
            first_row += len(batch)
    finally:
        workbook.close()


def _block(records: list[list[str]], width: int, first_row: int) -> Block:
    columns = [[r[k] if k < len(r) else "" for r in records] for k in range(width)]
    extra: dict[int, int] = {}
    wide: set[int] = set()
    for j, record in enumerate(records):
        filled = [k for k in range(width, len(record)) if record[k] and not record[k].isspace()]
        if filled:
            extra[j] = filled[-1] + 1
            wide.update(filled)
    return Block(first_row=first_row, columns=columns, extra_cells=extra, wide_columns=wide)
