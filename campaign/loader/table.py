"""What reading a file gives the rest of the loader: a header and blocks of rows, as text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from campaign.model import Problem


class FileError(Exception):
    """A problem with the whole file that stops reading it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def problem(self) -> Problem:
        return Problem.for_file(self.code, self.message)


@dataclass
class Block:
    """Consecutive data rows of a file, column by column, as the text a user sees."""

    first_row: int  # the spreadsheet row number of the block's first row
    columns: list[list[str]]  # columns[k][j]: header column k of row j ("" when absent)
    # Row j -> its cell count, when it has non-blank cells past the header's columns.
    extra_cells: dict[int, int] = field(default_factory=dict)
    # Columns past the header's that hold a non-blank cell (a workbook's unnamed columns).
    wide_columns: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    @property
    def rows(self) -> range:
        return range(self.first_row, self.first_row + len(self))


@dataclass
class Table:
    """A file as a header and its data rows, read block by block as `blocks` is iterated.

    Rows are numbered as a spreadsheet shows them: blank lines count, a quoted value over
    several lines is one row, the header is the first non-blank row.
    """

    header: list[str]
    header_row: int
    blocks: Iterator[Block]
    # CSV: a row with cells past the header's is an error (a separator inside a value).
    # XLSX: cells past the header are an unnamed column, ignored.
    extra_cells_are_errors: bool
    # XLSX: column -> (number format, why) of date cells sent as ISO text because their
    # format could not be rendered; filled as the blocks are read.
    unrendered_dates: dict[int, tuple[str, str]] = field(default_factory=dict)
