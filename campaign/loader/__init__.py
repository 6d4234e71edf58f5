"""Read a recipients spreadsheet (CSV or XLSX) into Recipients, SkippedRows and Problems.

`load_recipients` never prints and never raises for anything a user can feed it: every
problem with the file or a row comes back as a `Problem` naming its spreadsheet row, the way
a spreadsheet shows it (blank lines count as rows, a quoted value spanning several lines is
one row, the header is the first non-blank row — row 1 unless blank lines come first).
`read_recipients` reads the same file block by block, for a caller that stores each block
and so never holds every row at once.

The parts, in the order a file goes through them:
  reading.py     the bytes decide the format; encodings.py turns text bytes into UTF-8,
                 csv_file.py and xlsx_file.py turn a file into a Table: a header and blocks
                 of rows as text, with their spreadsheet row numbers
  excel_dates.py an XLSX date or time cell as its number format shows it
  mapping.py     headers to the phone, name and template variable columns (or the ones the
                 user chose), first and last names joined
  phone_column.py  each block's phones read (in worker processes for a large file)
  rules.py       the validation rules, one function each, named after their problem code
  checking.py    each block checked by the rules and sorted: recipients, duplicates
                 (first_rows.py remembers every number seen), invalid rows
A file-level ERROR empties `recipients` (nothing may be sent); row-level errors only move
their rows to `invalid`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from campaign.errors import UsageError
from campaign.loader import rules
from campaign.loader.checking import Chunk, RowChecker
from campaign.loader.excel_dates import DateChoice
from campaign.loader.mapping import ColumnChoice, map_columns
from campaign.loader.phone_column import PendingPhones, PhoneReader, worker_count
from campaign.loader.reading import file_size, read_table
from campaign.loader.table import Block, FileError, Table
from campaign.model import Problem, Recipient, Severity, SkippedRow
from campaign.phones import normalize_region

__all__ = [
    "Chunk",
    "ColumnChoice",
    "DateChoice",
    "LoadResult",
    "Reading",
    "load_recipients",
    "read_recipients",
]


@dataclass
class LoadResult:
    """Everything read from one file; `ok` is False when any ERROR was found.

    The counts are the lists' lengths, also when the rows were not kept (keep_rows=False)."""

    recipients: list[Recipient] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    invalid: list[SkippedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    variable_keys: list[str] = field(default_factory=list)
    valid_rows: int = 0
    skipped_rows: int = 0
    invalid_rows: int = 0

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)


def load_recipients(
    path: str | Path,
    *,
    variables: Sequence[str] | None = None,
    body_text: str | None = None,
    default_region: str | None = None,
    name_fallback: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    workers: int | None = None,
    columns: ColumnChoice | None = None,
    dates: DateChoice | None = None,
    keep_rows: bool = True,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> LoadResult:
    """Read a CSV or XLSX file of recipients; never raises for bad input, never prints.

    `variables`: the template's variable names in the order of {{1}}, {{2}}…; each
    Recipient's variables are then keyed "1", "2"…, filled from the column named after the
    position ("1", "{{1}}") or the name (case, spaces, underscores and dashes ignored). A name
    no column gives is a file-level error; unused columns are listed in one notice.
    None (template unknown): every column but phone and name is a variable, keyed by its
    header as written (trimmed).
    `workers`: processes reading phone numbers; None: one per core for a large file, none
    (this process) for a small one. `keep_rows` False: only count the rows (the problems are
    kept), so that checking a file of millions of rows takes little memory. `on_chunk` is
    given each Chunk of rows as it is read (to store them as they come); if the result is not
    `ok`, what it was given does not count. `columns`: the phone, name and variable columns
    the user chose; one the file lacks raises UsageError (the only input that raises: it is
    a wrong option, not a wrong file). `dates`: strftime patterns for an XLSX's date and
    time cells, instead of their number formats.

    Problem codes. File level (row None): unreadable_file, empty_file, binary_file,
    unsupported_format, bad_encoding, bad_delimiter, unknown_region, missing_sheet,
    unclosed_quote, no_rows, missing_column, ambiguous_column, name_too_long (the fallback),
    unrendered_date_format (WARNING: a column's date format, sent as ISO text instead).
    Row level: missing_phone, invalid_phone, excel_scientific, excel_float_repaired
    (WARNING), duplicate (SKIP), missing_name, name_too_long, empty_variable, bad_whitespace,
    value_too_long, body_too_long, too_many_cells. `invalid[i].reason` joins the row's ERROR
    messages with "; ".
    """
    reading = read_recipients(
        path,
        variables=variables,
        body_text=body_text,
        default_region=default_region,
        name_fallback=name_fallback,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        workers=workers,
        columns=columns,
        dates=dates,
    )
    result = LoadResult(notices=reading.notices)
    row_problems: list[Problem] = []
    for chunk in reading:
        result.valid_rows += len(chunk.recipients)
        result.skipped_rows += len(chunk.skipped)
        result.invalid_rows += len(chunk.invalid)
        row_problems += chunk.problems
        if on_chunk is not None:
            on_chunk(chunk)
        if keep_rows:
            result.recipients += chunk.recipients
            result.skipped += chunk.skipped
            result.invalid += chunk.invalid
    if reading.stopped:  # the rows read before a file-level error do not count
        result = LoadResult(notices=reading.notices)
        row_problems = []
    result.variable_keys = reading.variable_keys
    result.problems = reading.file_problems + row_problems
    if not reading.ok:
        result.recipients, result.valid_rows = [], 0
    return result


def read_recipients(
    path: str | Path,
    *,
    variables: Sequence[str] | None = None,
    body_text: str | None = None,
    default_region: str | None = None,
    name_fallback: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    workers: int | None = None,
    columns: ColumnChoice | None = None,
    dates: DateChoice | None = None,
) -> Reading:
    """Start reading a file (the options are load_recipients'); iterate the Reading for its
    rows, a Chunk at a time. The header is read here: a file-level problem found so far is
    in `file_problems` already."""
    return Reading(
        path,
        variables=[str(variables)] if isinstance(variables, str | bytes) else variables,
        body_text=body_text,
        default_region=default_region,
        name_fallback=name_fallback.strip() if isinstance(name_fallback, str) else "",
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        workers=workers,
        columns=columns,
        dates=dates,
    )


class Reading:
    """A recipients file being read: iterate it (once) for its rows, a Chunk at a time.

    File-level problems gather in `file_problems`, some only as the rows are read (no_rows,
    unclosed_quote). If one of them stops the reading (`stopped`), the chunks already given
    do not count. `ok`: no file-level ERROR; rows may still be invalid.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        variables: Sequence[str] | None,
        body_text: str | None,
        default_region: str | None,
        name_fallback: str,
        encoding: str | None,
        delimiter: str | None,
        sheet: str | None,
        workers: int | None,
        columns: ColumnChoice | None = None,
        dates: DateChoice | None = None,
    ) -> None:
        self.notices: list[str] = []
        self.file_problems: list[Problem] = []
        self.variable_keys: list[str] = []
        self.stopped = False
        self.region = None
        if default_region is not None and default_region != "":
            self.region = normalize_region(default_region)
            if self.region is None:
                self.file_problems.append(rules.unknown_region(default_region))
        self._workers = worker_count(file_size(path), workers)
        self._table: Table | None = None
        self._checker: RowChecker | None = None
        try:
            table = read_table(path, encoding, delimiter, sheet, self.notices, dates)
            # The first block is read now: a small file's every reading problem (an unclosed
            # quote, say) comes before any about its headers.
            blocks = table.blocks
            first = next(blocks, None)
            table.blocks = itertools.chain([first] if first else [], blocks)
            self._table = table
            mapped, problems = map_columns(
                table.header, variables, name_fallback or None, columns, self.notices
            )
        except FileError as exc:
            self._stop(exc)
            return
        except UsageError:  # a column the user named is not there: the file is closed
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
            raise
        self.file_problems += problems
        too_long = rules.fallback_too_long(name_fallback)
        if too_long is not None:
            self.file_problems.append(too_long)
        self.variable_keys = mapped.variable_keys
        body = rules.body_size(body_text, variables, mapped.variables)
        self._checker = RowChecker(self._table, mapped, name_fallback or None, body)

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.file_problems)

    def __iter__(self) -> Iterator[Chunk]:
        table, checker = self._table, self._checker
        self._table = self._checker = None  # a file is read once
        if table is None or checker is None:
            return
        phones = PhoneReader(self.region, self._workers)
        try:
            yield from self._checked(table, checker, phones)
            notice = checker.unread_columns_notice()
            if notice:
                self.notices.append(notice)
            self.file_problems += rules.unrendered_dates(table.header, table.unrendered_dates)
            checker.check_some_rows()
        except FileError as exc:
            self._stop(exc)
        finally:
            phones.close()

    def _checked(self, table: Table, checker: RowChecker, phones: PhoneReader) -> Iterator[Chunk]:
        """The blocks, checked in order; with workers, a few blocks' phones are read ahead."""
        ahead = 2 * phones.workers
        pending: deque[tuple[Block, PendingPhones]] = deque()
        phone_column = checker.columns.phone
        for block in table.blocks:
            pending.append((block, phones.submit(block.columns[phone_column])))
            if len(pending) > ahead:
                block, read = pending.popleft()
                yield checker.check(block, read.result())
        while pending:
            block, read = pending.popleft()
            yield checker.check(block, read.result())

    def _stop(self, error: FileError) -> None:
        self.file_problems.append(error.problem())
        self.stopped = True
