"""CSV text into a Table: the separator, the header, and every row, read by pandas in blocks.

The csv module only looks at the start of the text, to guess the separator and to find the
header row (the first non-blank one) and how many cells it has. Every row is read by pandas'
C parser, with every value kept as text ("NA", "007", "+44…" stay as written), a block of
about a megabyte at a time, so memory stays flat however long the file is.

A block ends at a line break outside quotes (an even number of quote characters before it),
so a quoted value over several lines stays in one block. The parser itself confirms each cut:
a block it refuses either holds a row wider than expected (read again wider) or was cut inside
a quoted value (read again up to a later line break). A quote still open at the end of the file
is the unclosed_quote problem, named by the row where that value starts.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from campaign.loader import encodings
from campaign.loader.encodings import Encoding
from campaign.loader.table import Block, FileError, Table

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
BLOCK_SIZE = 1 << 20  # bytes of text per block, about
SNIFF_SIZE = 65536  # characters of text the separator and the header are looked for in
LONGEST_UNCLOSED = 131_072  # characters: a never-closed quote longer than this is not a value

_SEP_DIRECTIVE = re.compile(r"sep=([^\"\r\n])[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)


def read_csv(
    path: Path, encoding: Encoding, delimiter: str | None, sheet: str | None, notices: list[str]
) -> Table:
    """The file's header and its rows (read as the Table's blocks are iterated)."""
    head = encodings.head_text(path, encoding)
    head_is_all = len(head) < encodings.HEAD_SIZE and len(head.encode()) < encodings.HEAD_SIZE
    encodings.check_not_binary(head)
    if head_is_all and (not head or head.isspace()):
        raise FileError("empty_file", "the file has no rows (it is empty or only blank lines)")

    directive = _SEP_DIRECTIVE.match(head)
    if delimiter is not None:
        delimiter = check_delimiter(delimiter)
    elif directive is not None:
        delimiter = directive.group(1)
    else:
        delimiter = sniff_delimiter(head, truncated=not head_is_all)
    if delimiter != ",":
        named = DELIMITER_NAMES.get(delimiter, repr(delimiter))
        notices.append(f"columns are separated by {named}")
    if sheet is not None:
        notices.append(f'sheet "{sheet}" was ignored: the file is CSV, not an Excel workbook')

    skip = 0
    if directive is not None:
        # Excel's "sep=;" first line names the separator and is not shown as a row.
        head = head[directive.end() :]
        skip = len(directive.group(0).encode("utf-8"))

    def whole() -> str:
        text = head if head_is_all else encodings.whole_text(path, encoding)
        return text[directive.end() :] if directive is not None and not head_is_all else text

    header_index, header = find_header(head, head_is_all, whole, delimiter)
    chunks = encodings.utf8_chunks(path, encoding)
    return Table(
        header=header,
        header_row=header_index + 1,
        blocks=_data_blocks(_skip_bytes(chunks, skip), delimiter, header_index, header),
        extra_cells_are_errors=True,
    )


# --- the separator and the header --------------------------------------------------------------


def check_delimiter(delimiter: str) -> str:
    if isinstance(delimiter, str) and delimiter.lower() in ("\\t", "tab"):
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise FileError(
            "bad_delimiter",
            f"the separator {delimiter!r} cannot be used: give one character such as , ; | or tab",
        )
    if not delimiter.isascii():  # pandas' C parser reads one-byte separators only
        raise FileError(
            "bad_delimiter",
            f"the separator {delimiter!r} cannot be used: give one plain (ASCII) character "
            "such as , ; | or tab",
        )
    return delimiter


def sniff_delimiter(text: str, *, truncated: bool) -> str:
    """Guess the separator from the first rows: the one giving the header most cells
    that the next rows repeat."""
    sample = text[:SNIFF_SIZE]
    truncated = truncated or len(text) > len(sample)
    best: tuple[float, int, int] | None = None
    chosen = ","
    for order, candidate in enumerate(DELIMITERS):
        counts: list[int] = []
        try:
            for record in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate):
                if not is_blank(record):
                    counts.append(len(record))
                    if len(counts) > 20:
                        break
        except csv.Error:
            continue
        if truncated and len(counts) > 1:
            counts.pop()  # the last one may be cut short
        if not counts or counts[0] < 2:
            continue
        rest = counts[1:]
        consistency = sum(c == counts[0] for c in rest) / len(rest) if rest else 1.0
        score = (consistency, counts[0], -order)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def find_header(
    head: str, head_is_all: bool, whole: Callable[[], str], delimiter: str
) -> tuple[int, list[str]]:
    """(index of the first non-blank record, its cells). Reads the start of the text only,
    unless the header is not complete there."""
    attempts = [(head[:SNIFF_SIZE], head_is_all and len(head) <= SNIFF_SIZE)]
    if not attempts[0][1]:
        attempts.append((None, True))
    for chunk, is_all in attempts:
        text = whole() if chunk is None else chunk
        index = 0
        found: tuple[int, list[str]] | None = None
        try:
            for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                if found is not None:
                    return found  # a record follows the header: the header is complete
                if is_blank(record):
                    index += 1
                else:
                    found = (index, record)
        except csv.Error as exc:
            if not is_all:
                continue
            raise FileError(
                "unreadable_file",
                f"row {index + 1} cannot be read as CSV ({exc}); a quoted value may never be "
                "closed",
            ) from exc
        if is_all:
            if found is not None:
                return found
            break
    raise FileError("empty_file", "the file has no rows (it is empty or only blank lines)")


def is_blank(cells: Iterator[str] | list[str] | tuple[str, ...]) -> bool:
    return all(not c or c.isspace() for c in cells)


# --- the rows ----------------------------------------------------------------------------------


def _skip_bytes(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count:
            chunk, count = chunk[count:], max(0, count - len(chunk))
        if chunk:
            yield chunk


def _data_blocks(
    chunks: Iterator[bytes], delimiter: str, header_index: int, header: list[str]
) -> Iterator[Block]:
    """The rows below the header, a block at a time."""
    width = len(header)
    record = 0  # index of the next record: a spreadsheet shows it as row record + 1
    for columns in _record_blocks(chunks, delimiter, width):
        count = len(columns[0])
        start = max(0, header_index + 1 - record)  # records up to the header are not data
        if record <= header_index < record + count:
            read = [columns[k][header_index - record] for k in range(width)]
            if read != header:
                raise AssertionError(f"pandas read the header as {read}, the csv module {header}")
        if start < count:
            yield _block(columns, width, start, first_row=record + start + 1)
        record += count


def _block(columns: list[list[str]], width: int, start: int, first_row: int) -> Block:
    if start:
        columns = [column[start:] for column in columns]
    extra: dict[int, int] = {}
    for k in range(len(columns) - 1, width - 1, -1):  # from the last cell: a row's count
        column = columns[k]
        if any(column):
            for j, cell in enumerate(column):
                if cell and not cell.isspace():
                    extra.setdefault(j, k + 1)
    return Block(first_row=first_row, columns=columns[:width], extra_cells=extra)


def _record_blocks(
    chunks: Iterator[bytes], delimiter: str, width: int
) -> Iterator[list[list[str]]]:
    """Every record of the text (blank ones included), as the columns of consecutive blocks;
    a record's cells past its own end are ""."""
    text = _Text(chunks)
    while text.fill(BLOCK_SIZE):
        cut = text.first_cut()
        quotes_closed = text.quotes_before(cut) % 2 == 0
        columns = _parse(text.peek(cut), delimiter, width, quotes_closed)
        while columns is None:  # cut inside a quoted value, or a row wider than expected
            cut = text.next_cut_outside_quotes(after=cut)
            if cut is None:
                raise _never_closed(text, delimiter, width)
            columns = _parse(text.peek(cut), delimiter, width, quotes_closed=True)
        text.drop(cut)
        text.records_before += len(columns[0])
        yield columns


class _Text:
    """The UTF-8 text not yet cut into blocks, and where its lines end outside quotes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._data = b""
        self._more = True  # the text goes on past _data
        self.records_before = 0  # records in the blocks already cut

    @property
    def size(self) -> int:
        return len(self._data)

    def fill(self, size: int) -> bool:
        """Read until `size` bytes are held or the text ends; False when nothing is left."""
        parts = [self._data]
        held = len(self._data)
        while self._more and held < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._more = False
            else:
                parts.append(chunk)
                held += len(chunk)
        self._data = b"".join(parts)
        return bool(self._data)

    def peek(self, end: int) -> bytes:
        return self._data[:end]

    def drop(self, end: int) -> None:
        self._data = self._data[end:]

    def quotes_before(self, end: int) -> int:
        return self._data.count(b'"', 0, end)

    def first_cut(self) -> int:
        """Where the next block should end: after the last line, within BLOCK_SIZE bytes, that
        ends outside quotes; else after the last line within them; else after the first
        line (reading on until one ends); at the end of the text, its end."""
        while self._more or len(self._data) > BLOCK_SIZE:
            data, limit, more = self._data, min(BLOCK_SIZE, len(self._data)), self._more
            cut = next(_outside_quotes(data, _line_ends_backwards(data, limit, more), limit), 0)
            cut = cut or next(_line_ends_backwards(data, limit, more), 0)
            cut = cut or self._first_line_end(after=limit)
            if cut:
                return cut
            if not self._more:
                break
            self.fill(len(self._data) + BLOCK_SIZE)
        return len(self._data)

    def _first_line_end(self, after: int) -> int:
        """The end of the first line ending after `after` (0: none in the text held)."""
        match = _LINE_END.search(self._data, after)
        if match is None or (match.group() == b"\r" and match.end() == self.size and self._more):
            return 0  # none, or maybe the "\r" of a "\r\n" cut in two
        return match.end()

    def next_cut_outside_quotes(self, after: int) -> int | None:
        """After `after`, the end of the first line that ends outside quotes, reading more
        text as needed; else the end of the text (None: no text after `after`)."""
        scanned = after
        quotes = self._data.count(b'"', 0, after)
        while True:
            for match in _LINE_END.finditer(self._data, scanned):
                if match.end() == len(self._data) and self._more and match.group() == b"\r":
                    break  # a line break "\r\n" may be cut in two: wait for the rest
                quotes += self._data.count(b'"', scanned, match.end())
                scanned = match.end()
                if quotes % 2 == 0:
                    return scanned
            if not self._more:
                return len(self._data) if len(self._data) > after else None
            self.fill(len(self._data) + BLOCK_SIZE)


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _line_ends_backwards(data: bytes, end: int | None = None, more: bool = False) -> Iterator[int]:
    """The ends of the lines of data[:end] ("\n", "\r\n" or a lone "\r"), last first. With
    `more`, text follows `data`: a "\r" ending it may be half of a "\r\n"."""
    end = len(data) if end is None else end
    while True:
        at = max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end))
        if at < 0:
            return
        after = data[at + 1 : at + 2]
        if data[at] == 10 or (after != b"\n" and (after or not more)):  # 10: "\n"
            yield at + 1
        end = at


def _outside_quotes(data: bytes, line_ends: Iterator[int], end: int) -> Iterator[int]:
    """Of line ends in data[:end], last first, those with an even number of quotes before."""
    quotes = data.count(b'"', 0, end)
    for at in line_ends:
        quotes -= data.count(b'"', at, end)
        end = at
        if quotes % 2 == 0:
            yield at


MAX_CELLS = 20_000_000  # a block is never read wider than this many cells in all


def _parse(data: bytes, delimiter: str, width: int, quotes_closed: bool) -> list[list[str]] | None:
    """The columns of every record of `data`, or None when pandas refuses it.

    Each line is given room for all its separators. A row over several lines may need more:
    a refused block whose quotes are all closed is read again up to three times, twice as
    wide each time."""
    separator = delimiter.encode()
    lines = data.split(b"\n")
    width = max(width, max(line.count(separator) for line in lines) + 1)
    widest = min(data.count(separator) + 1, MAX_CELLS // len(lines))  # no row has more cells
    for _attempt in range(4 if quotes_closed else 1):
        columns = _read_with_pandas(data, delimiter, width)
        if columns is not None or width >= widest:
            return columns
        width = min(width * 2, widest)
    return None


def _read_with_pandas(
    data: bytes, delimiter: str, width: int, records: int | None = None
) -> list[list[str]] | None:
    """The columns of the first `records` records of `data` (all: None); None if refused."""
    # A line break first: pandas would drop a byte-order mark starting the data, and would
    # cut a first row wider than `width` short (with a warning) instead of refusing it. And
    # one last: pandas 3.1 refuses some data ending without one ("a\r,,"), and it adds no row.
    last = b"" if data.endswith((b"\n", b"\r")) else b"\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(
                io.BytesIO(b"\n" + data + last),
                sep=delimiter,
                header=None,
                names=list(range(width)),
                index_col=False,
                dtype=object,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                quotechar='"',
                doublequote=True,
                engine="c",
                encoding="utf-8",
                nrows=None if records is None else records + 1,
            )
        except pd.errors.ParserError:
            return None  # a row wider than `width`, or a quote open at the end of the data
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        return None  # not expected after the line break, but then pandas dropped cells
    return [frame[k].tolist()[1:] for k in range(width)]


def _never_closed(text: _Text, delimiter: str, width: int) -> FileError:
    """The problem of a quote still open at the end of the file, naming the row it opens."""
    data = text.peek(text.size)
    row = text.records_before + _complete_records(data, delimiter, width) + 1
    # Its value runs from about the last line that ends outside quotes to the end.
    start = next(_outside_quotes(data, _line_ends_backwards(data), len(data)), 0)
    rest = data[start : start + 4 * LONGEST_UNCLOSED].decode("utf-8", "ignore")
    if len(rest) > LONGEST_UNCLOSED:
        return FileError(
            "unreadable_file",
            f"row {row} cannot be read as CSV: the quoted value it opens runs to the end of the "
            f"file, over {LONGEST_UNCLOSED:,} characters, without being closed; fix the quotes",
        )
    return FileError(
        "unclosed_quote",
        f"row {row} opens a quoted value that is never closed, so every line after it would "
        "be read as part of that value; fix the quotes",
    )


def _complete_records(data: bytes, delimiter: str, width: int) -> int:
    """How many records `data` holds before the one whose quote is never closed: pandas reads
    the first k records of `data` exactly when k is at most that many."""
    lines = data.split(b"\n")
    width = 4 * max(width, max(line.count(delimiter.encode()) for line in lines) + 1)
    low, high = 0, len(lines) + data.count(b"\r")  # reads low records; not high
    while high - low > 1:
        middle = (low + high) // 2
        if _read_with_pandas(data, delimiter, min(width, MAX_CELLS // middle), middle) is not None:
            low = middle
        else:
            high = middle
    return low
