"""Read a recipients spreadsheet (CSV or XLSX) into Recipients and Problems.

`load_recipients` never prints and never raises for anything a user can feed it: every
problem with the file or a row comes back as a `Problem` naming its spreadsheet row, the way
a spreadsheet shows it (blank lines count as rows, a quoted value spanning several lines is
one row, the header is the first non-blank row — row 1 unless blank lines come first).

Reading
  * The bytes decide the format, not the name: a ZIP holding xl/workbook.xml is an Excel
    workbook (first sheet, or `sheet=`); other known formats (.xls, .ods, PDF, images,
    archives) are refused by name; anything else must be text, read as CSV.
  * CSV text: BOM (UTF-8/16/32), else UTF-16 without BOM if every other byte is zero, else
    UTF-8, else cp1252 with a notice; `encoding=` overrides. Separator: `,` `;` tab `|`
    guessed from the first rows, or Excel's "sep=;" first line, or `delimiter=`.
  * Rows are parsed by pandas' C parser with every value kept as text ("NA", "null", "007",
    "+44…" stay as written). A file pandas refuses (a quote never closed, an odd first row)
    is read again with the csv module, which numbers rows the same way and finds the row
    whose quote is never closed. Rows with more cells than the header are found on both
    paths; empty trailing cells do not count.
  * XLSX cells become the text a user sees: numbers keep every digit (447911123456, never
    4.47911e11 or "….0"), booleans TRUE/FALSE, dates ISO. Values outside the header's
    columns are an ignored, unnamed column (no too_many_cells for workbooks).

Rules (each finding a Problem; see the codes listed in load_recipients)
  * Phone: campaign.phones (E.164; Excel damage named; invalid numbers are errors).
  * Duplicates: the first row with a number keeps it — even if that row has another error —
    and later rows are skipped (SKIP, "duplicate of row N"); their other problems are not
    reported, since they will never be sent.
  * Name: trimmed; empty takes `name_fallback`; empty without fallback, or over 255
    characters, is an error. No name column and no fallback is one file-level error.
  * Variables: trimmed; empty, a line break or tab or more than four spaces in a row, over
    1,600 characters, or (with `body_text`) a filled-in body over 1,024 characters: errors.
  * Blank rows are ignored. A file-level ERROR empties `recipients` (nothing may be sent);
    row-level errors only move their rows to `invalid`.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import gc
import io
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from campaign.model import Problem, Recipient, Severity, SkippedRow
from campaign.phones import PhoneNormalizer, PhoneResult, normalize_region

__all__ = ["LoadResult", "load_recipients"]

MAX_NAME = 255
MAX_VALUE = 1600
MAX_BODY = 1024

PHONE_ALIASES = (
    "phone",
    "phonenumber",
    "recipientphone",
    "mobile",
    "mobilenumber",
    "mobilephone",
    "whatsapp",
    "whatsappnumber",
    "msisdn",
    "cellphone",
    "telephone",
)
NAME_ALIASES = ("name", "recipientname", "fullname")
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Any of these in a template value is refused by WhatsApp: line breaks, tabs, 5+ spaces.
_BAD_WS = re.compile(r"[\n\r\t\x0b\x0c\x85\u2028\u2029]| {5,}")
_BAD_WS_CHARS = ("\n", "\r", "\t", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "     ")
_HEADER_JUNK = re.compile(r"[\s_\-\ufeff\u200b]+")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SEP_DIRECTIVE = re.compile(r"sep=([^\"\r\n])[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)
_PANDAS_WIDTH = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass
class LoadResult:
    """Everything read from one file; `ok` is False when any ERROR was found."""

    recipients: list[Recipient] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    invalid: list[SkippedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    variable_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)


class _FileError(Exception):
    """A problem with the whole file that stops reading it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Table:
    """The cells of a file as text: the header and one list of values per column."""

    header: list[str]
    header_row: int
    columns: list[list[str]]  # columns[k][j]: column k of data row j ("" when absent)
    rows: Sequence[int]  # rows[j]: the spreadsheet row number of data row j
    extra: dict[int, int] = field(default_factory=dict)  # data row j -> its cell count, when
    # it has non-empty cells beyond the header (CSV only)


# --- helpers ---------------------------------------------------------------------------------


def _short(value: str, limit: int = 60) -> str:
    value = value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _norm_header(header: str) -> str:
    return _HEADER_JUNK.sub("", header.casefold()).strip("{}")


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _list_headers(header: list[str]) -> str:
    named = [f'"{_short(h.strip(), 40)}"' for h in header if h.strip()]
    return ", ".join(named) if named else "none"


def _has_bad_whitespace(text: str) -> bool:
    """Whether _BAD_WS would match: substring search is much faster on a whole column."""
    return any(bad in text for bad in _BAD_WS_CHARS)


def _is_blank_record(record: Iterable[str]) -> bool:
    return all(not c or c.isspace() for c in record)


# --- reading bytes ---------------------------------------------------------------------------


def _read_bytes(path: str | Path) -> tuple[Path, bytes]:
    try:
        p = Path(path)
    except TypeError as exc:
        raise _FileError("unreadable_file", f"{path!r} is not a file path") from exc
    try:
        return p, p.read_bytes()
    except FileNotFoundError as exc:
        raise _FileError("unreadable_file", f'file "{p}" does not exist') from exc
    except IsADirectoryError as exc:
        raise _FileError("unreadable_file", f'"{p}" is a folder, not a file') from exc
    except PermissionError as exc:
        raise _FileError("unreadable_file", f'no permission to read "{p}"') from exc
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _FileError("unreadable_file", f'file "{p}" cannot be read: {reason}') from exc


_MAGIC = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Excel 97-2003 .xls file or a password-protected "
        "workbook; save it as .xlsx (without a password) or as CSV",
    ),
    (b"%PDF", "a PDF document, not a spreadsheet"),
    (b"\x89PNG", "an image, not a spreadsheet"),
    (b"\xff\xd8\xff", "an image, not a spreadsheet"),
    (b"GIF8", "an image, not a spreadsheet"),
    (b"\x1f\x8b", "a compressed (gzip) file; decompress it first"),
    (b"7z\xbc\xaf", "a compressed (7z) archive; extract it first"),
    (b"Rar!", "a compressed (RAR) archive; extract it first"),
    (b"{\\rtf", "an RTF document, not a spreadsheet"),
)


def _zip_kind(raw: bytes) -> str:
    """ "xlsx", or raise a _FileError naming what the ZIP is."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = set(archive.namelist())
    except Exception as exc:
        raise _FileError(
            "unreadable_file",
            "the file looks like an Excel workbook (a ZIP archive) but is damaged; "
            "save it again from Excel",
        ) from exc
    if "xl/workbook.xml" in names or any(n.endswith("workbook.xml") for n in names):
        return "xlsx"
    if "content.xml" in names and "mimetype" in names:
        what = "an OpenDocument file (LibreOffice/Numbers); save it as .xlsx or as CSV"
    elif "word/document.xml" in names:
        what = "a Word document, not a spreadsheet"
    else:
        what = "a ZIP archive, not a spreadsheet; extract it first"
    raise _FileError("unsupported_format", f"the file is {what}")


# --- text decoding ---------------------------------------------------------------------------


def _decode(raw: bytes, encoding: str | None, notices: list[str]) -> tuple[str, bool]:
    """The text of the file, and whether `raw` is that text's UTF-8 encoding unchanged."""
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except (LookupError, TypeError, ValueError) as exc:
            raise _FileError("bad_encoding", f'"{encoding}" is not a known encoding') from exc
        if name == "utf-8":
            name = "utf-8-sig"
        elif name in ("utf-16", "utf-32") and not raw.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        ):
            name += "-le"
        try:
            text = raw.decode(name)
        except UnicodeDecodeError as exc:
            raise _FileError(
                "bad_encoding",
                f"the file is not valid {encoding}: byte 0x{raw[exc.start]:02x} at position "
                f"{exc.start} cannot be decoded",
            ) from exc
        except Exception as exc:  # e.g. a bytes-to-bytes codec such as base64
            raise _FileError(
                "bad_encoding", f'the file cannot be decoded as "{encoding}": {exc}'
            ) from exc
        return text, name == "utf-8-sig" and not raw.startswith(codecs.BOM_UTF8)

    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return raw.decode(name), False
            except UnicodeDecodeError as exc:
                raise _FileError(
                    "bad_encoding",
                    f"the file starts with a {name.upper().replace('-SIG', '')} byte-order mark "
                    f"but is not valid {name.replace('-sig', '')} text after position "
                    f"{exc.start}",
                ) from exc

    head = raw[:4096]
    if b"\x00" in head:
        # UTF-16 without a byte-order mark: every other byte is zero in mostly-ASCII text.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        half = len(head) // 2
        if half and odd > 0.4 * half and even < 0.05 * half:
            name = "utf-16-le"
        elif half and even > 0.4 * half and odd < 0.05 * half:
            name = "utf-16-be"
        else:
            raise _FileError("binary_file", "the file is binary data, not a CSV or XLSX file")
        try:
            text = raw.decode(name)
        except UnicodeDecodeError as exc:
            raise _FileError(
                "binary_file", "the file is binary data, not a CSV or XLSX file"
            ) from exc
        notices.append(f"read as {name.upper()} (the file has no byte-order mark)")
        return text, False

    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise _FileError(
            "bad_encoding",
            "the file is neither UTF-8 nor Windows (cp1252) text; save it as CSV UTF-8 or "
            "give its encoding",
        ) from exc
    notices.append("read as cp1252 because it is not valid UTF-8")
    return text, False


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _FileError("binary_file", "the file is binary data, not a CSV or XLSX file")
    sample = text[:100_000]
    if len(_CONTROL.findall(sample)) * 100 > len(sample):
        raise _FileError("binary_file", "the file is binary data, not a CSV or XLSX file")


# --- CSV -------------------------------------------------------------------------------------


def _check_delimiter(delimiter: str) -> str:
    if isinstance(delimiter, str) and delimiter.lower() in ("\\t", "tab"):
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise _FileError(
            "bad_delimiter",
            f"the separator {delimiter!r} cannot be used: give one character such as , ; | or tab",
        )
    return delimiter


def _sniff_delimiter(text: str) -> str:
    """Guess the separator from the first rows: the one giving the header most cells
    that the next rows repeat."""
    sample = text[:65536]
    truncated = len(text) > len(sample)
    best: tuple[float, int, int] | None = None
    chosen = ","
    for order, candidate in enumerate(DELIMITERS):
        counts: list[int] = []
        try:
            for record in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate):
                if not _is_blank_record(record):
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


def _find_header(text: str, delimiter: str) -> tuple[int, list[str]]:
    """(index of the first non-blank record, its cells). Reads the start of the text only,
    unless the header is not complete there."""
    for limit in (65536, None):
        chunk = text if limit is None or len(text) <= limit else text[:limit]
        whole = chunk is text
        index = 0
        found: tuple[int, list[str]] | None = None
        try:
            for record in csv.reader(io.StringIO(chunk, newline=""), delimiter=delimiter):
                if found is not None:
                    return found  # a record follows the header: the header is complete
                if _is_blank_record(record):
                    index += 1
                else:
                    found = (index, record)
        except csv.Error as exc:
            if not whole:
                continue
            raise _FileError(
                "unreadable_file",
                f"row {index + 1} cannot be read as CSV ({exc}); a quoted value may never be "
                "closed",
            ) from exc
        if whole:
            if found is not None:
                return found
            break
    raise _FileError("empty_file", "the file has no rows (it is empty or only blank lines)")


def _read_csv_pandas(data: bytes, delimiter: str, width: int) -> tuple[list[list[str]], int] | None:
    """Columns of every record (header and blank lines included) with pandas' C parser, and the
    width read; None when pandas refuses the file."""
    import pandas as pd

    for _attempt in range(4):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = pd.read_csv(
                    io.BytesIO(data),
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
                    low_memory=True,
                )
        except pd.errors.ParserError as exc:
            match = _PANDAS_WIDTH.search(str(exc))
            if match is None or int(match.group(3)) <= width:
                return None
            width = int(match.group(3))  # trailing cells: read them and look at them
            continue
        except MemoryError:
            raise
        except Exception:
            return None
        if caught:
            # e.g. "Length of header or names does not match length of data": pandas dropped
            # cells of a first row wider than the header instead of refusing the file.
            return None
        columns = [frame[k].tolist() for k in range(width)]
        del frame
        return columns, width
    return None


def _read_csv_module(text: str, delimiter: str) -> list[list[str]]:
    """Every record with the csv module; raise a _FileError for a quote never closed."""
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    last_start = 1
    try:
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            records.append(record)
            last_start = start
    except csv.Error as exc:
        raise _FileError(
            "unreadable_file",
            f"row {len(records) + 1} cannot be read as CSV ({exc}); a quoted value may never "
            "be closed",
        ) from exc
    if records:
        # Only the last record can have swallowed the rest of the file: check its quotes.
        lines = io.StringIO(text, newline="")
        for _ in range(last_start - 1):
            lines.readline()
        try:
            list(
                csv.reader(io.StringIO(lines.read(), newline=""), delimiter=delimiter, strict=True)
            )
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise _unclosed_quote(len(records)) from exc
    return records


def _unclosed_quote(row: int) -> _FileError:
    return _FileError(
        "unclosed_quote",
        f"row {row} opens a quoted value that is never closed, so every line after it would "
        "be read as part of that value; fix the quotes",
    )


def _csv_table(text: str, utf8: bytes | None, delimiter: str) -> _Table:
    header_index, header = _find_header(text, delimiter)
    width = len(header)
    data = utf8 if utf8 is not None else text.encode("utf-8")
    read = _read_csv_pandas(data, delimiter, width)
    del data
    if read is not None:
        columns, read_width = read
        n = len(columns[0]) if columns else 0
        # Check that pandas saw the same records as the csv module up to the header.
        if (
            n > header_index
            and [columns[k][header_index] for k in range(width)] == header
            and (
                read_width == width
                or all(
                    c == "" for c in (columns[k][header_index] for k in range(width, read_width))
                )
            )
        ):
            start = header_index + 1
            extra: dict[int, int] = {}
            if read_width > width:
                extra_cols = [col[start:] for col in columns[width:]]
                for j, cells in enumerate(zip(*extra_cols, strict=True)):
                    if not _is_blank_record(cells):
                        last = max(i for i, c in enumerate(cells) if c and not c.isspace())
                        extra[j] = width + last + 1
            data_columns = [col[start:] for col in columns[:width]]
            del columns
            return _Table(
                header=header,
                header_row=header_index + 1,
                columns=data_columns,
                rows=range(header_index + 2, n + 1),
                extra=extra,
            )
    records = _read_csv_module(text, delimiter)
    data_records = records[header_index + 1 :]
    columns = [[r[k] if k < len(r) else "" for r in data_records] for k in range(width)]
    extra = {}
    for j, r in enumerate(data_records):
        if len(r) > width and not _is_blank_record(r[width:]):
            extra[j] = max(i for i, c in enumerate(r) if c and not c.isspace()) + 1
    return _Table(
        header=header,
        header_row=header_index + 1,
        columns=columns,
        rows=range(header_index + 2, len(records) + 1),
        extra=extra,
    )


# --- XLSX ------------------------------------------------------------------------------------


def _cell_text(value: object) -> str:
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


def _xlsx_table(raw: bytes, sheet: str | None, notices: list[str]) -> _Table:
    import openpyxl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        except Exception as exc:
            raise _FileError(
                "unreadable_file",
                f"the Excel workbook cannot be read ({type(exc).__name__}); it may be damaged — "
                "save it again from Excel",
            ) from exc
        try:
            names = list(workbook.sheetnames)
            if not workbook.worksheets:
                raise _FileError("empty_file", "the workbook has no worksheet")
            if sheet is not None:
                wanted = str(sheet)
                matches = [n for n in names if n == wanted] or [
                    n for n in names if n.strip().casefold() == wanted.strip().casefold()
                ]
                if not matches:
                    listed = ", ".join(f'"{n}"' for n in names)
                    raise _FileError(
                        "missing_sheet",
                        f'the workbook has no sheet "{wanted}"; its sheets are: {listed}',
                    )
                worksheet = workbook[matches[0]]
            else:
                worksheet = workbook.worksheets[0]
                if len(names) > 1:
                    notices.append(
                        f'read sheet "{worksheet.title}", the first of {len(names)} sheets'
                    )
            if not hasattr(worksheet, "iter_rows"):
                raise _FileError("unsupported_format", f'sheet "{worksheet.title}" is a chart')
            if hasattr(worksheet, "reset_dimensions"):
                worksheet.reset_dimensions()  # do not trust the stored size
            records = [
                [_cell_text(v) for v in row] for row in worksheet.iter_rows(values_only=True)
            ]
        except _FileError:
            raise
        except Exception as exc:
            raise _FileError(
                "unreadable_file",
                f"the Excel workbook cannot be read ({type(exc).__name__}); it may be damaged — "
                "save it again from Excel",
            ) from exc
        finally:
            workbook.close()

    header_index = next((i for i, r in enumerate(records) if not _is_blank_record(r)), None)
    if header_index is None:
        raise _FileError("empty_file", "the sheet has no rows (it is empty)")
    width = max(
        (max((i for i, c in enumerate(r) if c and not c.isspace()), default=-1) + 1)
        for r in records
    )
    header = records[header_index][:width]
    header += [""] * (width - len(header))
    data_records = records[header_index + 1 :]
    columns = [[r[k] if k < len(r) else "" for r in data_records] for k in range(width)]
    return _Table(
        header=header,
        header_row=header_index + 1,
        columns=columns,
        rows=range(header_index + 2, len(records) + 1),
    )


def _read_table(
    path: str | Path,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    notices: list[str],
) -> _Table:
    p, raw = _read_bytes(path)
    if not raw:
        raise _FileError("empty_file", "the file is empty")
    if raw.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _zip_kind(raw)
        return _xlsx_table(raw, sheet, notices)
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise _FileError("unsupported_format", f"the file is {what}")
    if p.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        notices.append(f'"{p.name}" is not an Excel workbook inside; it was read as CSV text')
    text, raw_is_utf8 = _decode(raw, encoding, notices)
    _check_text(text)
    if not text or text.isspace():
        raise _FileError("empty_file", "the file has no rows (it is empty or only blank lines)")
    directive = _SEP_DIRECTIVE.match(text)
    if delimiter is not None:
        delimiter = _check_delimiter(delimiter)
    elif directive is not None:
        delimiter = directive.group(1)
    else:
        delimiter = _sniff_delimiter(text)
    if delimiter != ",":
        notices.append(
            f"columns are separated by {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}"
        )
    utf8 = raw if raw_is_utf8 else None
    del raw
    if directive is not None:
        # Excel's "sep=;" first line names the separator and is not shown as a row.
        text = text[directive.end() :]
        if utf8 is not None:
            utf8 = utf8[len(directive.group(0).encode("utf-8")) :]
    if sheet is not None:
        notices.append(f'sheet "{sheet}" was ignored: the file is CSV, not an Excel workbook')
    return _csv_table(text, utf8, delimiter)


# --- the rules -------------------------------------------------------------------------------


@dataclass
class _Variable:
    key: str  # the key in Recipient.variables
    label: str  # how messages name it
    column: int


def _map_columns(
    table: _Table,
    variables: Sequence[str] | None,
    name_fallback: str | None,
    file_problems: list[Problem],
    notices: list[str],
) -> tuple[int, int | None, list[_Variable]]:
    header = table.header
    normed = [_norm_header(h) for h in header]

    def find(aliases: Sequence[str]) -> list[int]:
        found = [(aliases.index(n), k) for k, n in enumerate(normed) if n in aliases]
        return [k for _, k in sorted(found)]

    phone_cols = find(PHONE_ALIASES)
    if not phone_cols:
        raise _FileError(
            "missing_column",
            "no phone column: name one phone, phone_number, mobile, whatsapp or msisdn; "
            f"the headers found are: {_list_headers(header)}",
        )
    if len(phone_cols) > 1:
        file_problems.append(_ambiguous("phone", header, phone_cols))
    phone_col = phone_cols[0]

    name_cols = find(NAME_ALIASES)
    name_col = name_cols[0] if name_cols else None
    if len(name_cols) > 1:
        file_problems.append(_ambiguous("name", header, name_cols))
    if name_col is None and not name_fallback:
        file_problems.append(
            Problem(
                None,
                None,
                None,
                "missing_column",
                "no name column (name, recipient_name or full_name) and no name fallback; "
                "the API needs a name for every recipient",
            )
        )

    used = {phone_col} | set(phone_cols) | set(name_cols)
    out: list[_Variable] = []
    if variables is not None:
        for position, var_name in enumerate(variables, start=1):
            var_name = str(var_name)
            targets = {str(position), _norm_header(var_name)}
            cols = [k for k, n in enumerate(normed) if n and n in targets]
            label = f'variable {{{{{position}}}}} ("{_short(var_name, 40)}")'
            if not cols:
                file_problems.append(
                    Problem(
                        None,
                        None,
                        None,
                        "missing_column",
                        f'the template needs {label} but no column is named "{var_name}" or '
                        f'"{position}"; the headers found are: {_list_headers(header)}',
                    )
                )
                continue
            if len(cols) > 1:
                names = " and ".join(f'"{header[k].strip()}"' for k in cols)
                file_problems.append(
                    Problem(
                        None,
                        None,
                        None,
                        "ambiguous_column",
                        f"columns {names} both give {label}; keep only one of them",
                    )
                )
            out.append(_Variable(str(position), label, cols[0]))
            used.update(cols)
    else:
        seen: dict[str, int] = {}
        for k, h in enumerate(header):
            key = h.strip().lstrip("\ufeff")
            if k in used or not key:
                continue
            if key in seen:
                file_problems.append(
                    Problem(
                        None,
                        None,
                        None,
                        "ambiguous_column",
                        f'two columns are named "{_short(key, 40)}" (columns '
                        f"{_column_letter(seen[key])} and {_column_letter(k)}); rename one",
                    )
                )
                used.add(k)
                continue
            seen[key] = k
            out.append(_Variable(key, f'variable "{_short(key, 40)}"', k))
            used.add(k)

    ignored = []
    for k, h in enumerate(header):
        if k in used:
            continue
        if h.strip():
            ignored.append(h.strip())
        elif not _is_blank_record(table.columns[k]):
            ignored.append(f"column {_column_letter(k)} (no header)")
    if ignored:
        notices.append("ignored columns: " + ", ".join(ignored))
    return phone_col, name_col, out


def _ambiguous(what: str, header: list[str], cols: list[int]) -> Problem:
    names = ", ".join(f'"{header[k].strip()}"' for k in cols)
    return Problem(
        None,
        None,
        None,
        "ambiguous_column",
        f'several columns could hold the {what} ({names}); "{header[cols[0]].strip()}" was '
        "used — rename or remove the others",
    )


def _body_lengths(
    body_text: str, variables: Sequence[str] | None, specs: list[_Variable]
) -> tuple[int, dict[int, int]]:
    """(length of the body without the placeholders that rows fill, {spec index: count})."""
    by_key = {s.key: i for i, s in enumerate(specs)}
    by_name: dict[str, int] = {}
    if variables is not None:
        for position, var_name in enumerate(variables, start=1):
            index = by_key.get(str(position))
            if index is not None:
                by_name.setdefault(_norm_header(str(var_name)), index)
    else:
        for i, s in enumerate(specs):
            by_name.setdefault(_norm_header(s.key), i)
    base = len(body_text)
    counts: dict[int, int] = {}
    for match in _PLACEHOLDER.finditer(body_text):
        token = match.group(1)
        index = by_key.get(token)
        if index is None:
            index = by_name.get(_norm_header(token))
        if index is None:
            continue  # nothing fills it: it stays as written
        base -= len(match.group(0))
        counts[index] = counts.get(index, 0) + 1
    return base, counts


def _check_rows(
    table: _Table,
    phone_col: int,
    name_col: int | None,
    specs: list[_Variable],
    *,
    variables: Sequence[str] | None,
    body_text: str | None,
    default_region: str | None,
    name_fallback: str | None,
    result: LoadResult,
) -> None:
    columns = table.columns
    rows = table.rows
    n = len(rows)
    header = table.header
    phone_header = header[phone_col].strip()
    name_header = header[name_col].strip() if name_col is not None else None

    # Blank rows: only rows without a phone can be blank.
    phone_raw = columns[phone_col]
    blank: set[int] = set()
    for j, value in enumerate(phone_raw):
        if (
            (not value or value.isspace())
            and j not in table.extra
            and all(not col[j] or col[j].isspace() for col in columns)
        ):
            blank.add(j)
    if len(blank) == n:
        heads = _list_headers(header)
        raise _FileError("no_rows", f"the file has a header row ({heads}) but no rows below it")

    # Column checks: one pass in C over each column, then a Python loop only over bad values.
    later: dict[int, list[Problem]] = {}

    def add(j: int, problem: Problem) -> None:
        if j in blank:
            return
        found = later.get(j)
        if found is None:
            later[j] = [problem]
        else:
            found.append(problem)

    fallback = name_fallback
    if name_col is not None:
        names = [v.strip() for v in columns[name_col]]
        if fallback:
            names = [v or fallback for v in names]
        elif "" in names:
            for j, v in enumerate(names):
                if not v:
                    add(
                        j,
                        Problem(
                            rows[j],
                            name_header,
                            "",
                            "missing_name",
                            "name is empty and no name fallback is set",
                        ),
                    )
        if names and max(map(len, names)) > MAX_NAME:
            for j, v in enumerate(names):
                if len(v) > MAX_NAME:
                    add(
                        j,
                        Problem(
                            rows[j],
                            name_header,
                            v,
                            "name_too_long",
                            f'name "{_short(v, 40)}" is {len(v):,} characters long; the '
                            f"API accepts at most {MAX_NAME}",
                        ),
                    )
    else:
        names = [fallback or ""] * n

    values: list[list[str]] = []
    for spec in specs:
        column = header[spec.column].strip() or _column_letter(spec.column)
        vals = [v.strip() for v in columns[spec.column]]
        values.append(vals)
        if "" in vals:
            for j, v in enumerate(vals):
                if not v:
                    add(j, Problem(rows[j], column, "", "empty_variable", f"{spec.label} is empty"))
        if _has_bad_whitespace("\x1f".join(vals)):
            for j, v in enumerate(vals):
                bad = _BAD_WS.search(v)
                if bad:
                    what = bad.group(0)
                    kind = (
                        "a tab"
                        if what == "\t"
                        else "a run of more than four spaces"
                        if what.startswith(" ")
                        else "a line break"
                    )
                    add(
                        j,
                        Problem(
                            rows[j],
                            column,
                            v,
                            "bad_whitespace",
                            f'{spec.label} "{_short(v)}" holds {kind}, which WhatsApp '
                            "refuses in template values",
                        ),
                    )
        if vals and max(map(len, vals)) > MAX_VALUE:
            for j, v in enumerate(vals):
                if len(v) > MAX_VALUE:
                    add(
                        j,
                        Problem(
                            rows[j],
                            column,
                            v,
                            "value_too_long",
                            f"{spec.label} is {len(v):,} characters long; WhatsApp "
                            f"accepts at most {MAX_VALUE:,}",
                        ),
                    )

    if body_text and isinstance(body_text, str) and specs:
        base, counts = _body_lengths(body_text, variables, specs)
        widest = base + sum(c * max(map(len, values[i]), default=0) for i, c in counts.items())
        if widest > MAX_BODY:
            for j in range(n):
                length = base + sum(c * len(values[i][j]) for i, c in counts.items())
                if length > MAX_BODY:
                    add(
                        j,
                        Problem(
                            rows[j],
                            None,
                            None,
                            "body_too_long",
                            f"the message body with this row's values is {length:,} "
                            f"characters long; WhatsApp accepts at most {MAX_BODY:,}",
                        ),
                    )

    # One pass over the rows: phone, duplicates, and where each row goes.
    lookup = PhoneNormalizer(default_region).lookup
    extra = {rows[j]: cells for j, cells in table.extra.items()}
    later_by_row = {rows[j]: found for j, found in later.items()}
    special = later_by_row.keys() | extra.keys()
    blank_rows = {rows[j] for j in blank}
    keys = [s.key for s in specs]
    width = len(header)
    seen: dict[str, int] = {}
    first_row = seen.setdefault
    append_recipient = result.recipients.append
    make = _make_recipient
    row_problems: list[Problem] = []
    error = Severity.ERROR
    value_rows: Iterable[tuple[str, ...]] = (
        zip(*values, strict=True) if values else iter(lambda: (), None)
    )
    # Phones first, in a loop of their own: parsing makes many short-lived objects, and
    # interleaving them with the Recipients built below costs about a third more time.
    phones = [lookup(raw) for raw in phone_raw]
    for row, raw, read, name, vals in zip(rows, phone_raw, phones, names, value_rows, strict=False):
        if read.__class__ is str:  # the common case: a clean number
            if row not in special and first_row(read, row) == row:
                append_recipient(make(row, read, name, dict(zip(keys, vals, strict=True))))
                continue
            phone = PhoneResult(read)
        else:
            phone = read
        e164 = phone.e164
        if e164 is not None:
            first = first_row(e164, row)
        elif row in blank_rows:
            continue
        else:
            first = row
        if first != row:
            result.skipped.append(SkippedRow(row, e164, name, f"duplicate of row {first}"))
            row_problems.append(
                Problem(
                    row,
                    phone_header,
                    raw.strip(),
                    "duplicate",
                    f"phone {e164} is a duplicate of row {first}; this row is skipped",
                    Severity.SKIP,
                )
            )
            continue
        problems: list[Problem] = []
        if row in extra:
            problems.append(
                Problem(
                    row,
                    None,
                    None,
                    "too_many_cells",
                    f"row has {extra[row]} cells but the header has {width}; a value may hold "
                    "an unquoted separator — quote it or remove the extra cells",
                )
            )
        if phone.code is not None:
            problems.append(
                Problem(row, phone_header, raw.strip(), phone.code, phone.message, phone.severity)
            )
        problems.extend(later_by_row.get(row, ()))
        row_problems.extend(problems)
        errors = [p.message for p in problems if p.severity is error]
        if errors:
            result.invalid.append(SkippedRow(row, e164 or raw.strip(), name, "; ".join(errors)))
        else:
            append_recipient(make(row, e164, name, dict(zip(keys, vals, strict=True))))
    result.problems.extend(row_problems)


def _init_recipient(row: int, phone: str, name: str, variables: dict[str, str]) -> Recipient:
    return Recipient(row, phone, name, variables)


def _fast_recipient(row: int, phone: str, name: str, variables: dict[str, str]) -> Recipient:
    """A Recipient equal to Recipient(row, phone, name, variables), without the cost of the
    frozen dataclass __init__ (four object.__setattr__ calls): a million rows make a
    million of them."""
    obj = _new(Recipient)
    state = obj.__dict__
    state["row"] = row
    state["phone"] = phone
    state["name"] = name
    state["variables"] = variables
    return obj


_new = object.__new__


def _pick_recipient_factory():  # type: ignore[no-untyped-def]
    """The fast factory if Recipient is still the plain four-field dataclass it was written
    for, else its own constructor."""
    try:
        names = tuple(f.name for f in dataclasses.fields(Recipient))
        probe = _fast_recipient(2, "+447911123456", "A", {"1": "x"})
        if names == ("row", "phone", "name", "variables") and probe == Recipient(
            2, "+447911123456", "A", {"1": "x"}
        ):
            return _fast_recipient
    except Exception:
        pass
    return _init_recipient


_make_recipient = _pick_recipient_factory()


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
) -> LoadResult:
    """Read a CSV or XLSX file of recipients; never raises for bad input, never prints.

    `variables`: the template's variable names in the order of {{1}}, {{2}}…; each
    Recipient's variables are then keyed "1", "2"…, filled from the column named after the
    position ("1", "{{1}}") or the name (case, spaces, underscores and dashes ignored). A name
    no column gives is a file-level error; unused columns are listed in one notice.
    None (template unknown): every column but phone and name is a variable, keyed by its
    header as written (trimmed).

    Problem codes. File level (row None): unreadable_file, empty_file, binary_file,
    unsupported_format, bad_encoding, bad_delimiter, unknown_region, missing_sheet,
    unclosed_quote, no_rows, missing_column, ambiguous_column, name_too_long (the fallback),
    internal_error (a bug: never expected). Row level: missing_phone, invalid_phone,
    excel_scientific, excel_float_repaired (WARNING), duplicate (SKIP), missing_name,
    name_too_long, empty_variable, bad_whitespace, value_too_long, body_too_long,
    too_many_cells. `invalid[i].reason` joins the row's ERROR messages with "; ".
    """
    result = LoadResult()
    file_problems: list[Problem] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects and no cycles: the collector would only slow us
    try:
        region = None
        if default_region is not None and default_region != "":
            region = normalize_region(default_region)
            if region is None:
                file_problems.append(
                    Problem(
                        None,
                        None,
                        None,
                        "unknown_region",
                        f'"{default_region}" is not a known region code; use a two-letter '
                        'code such as "GB" or "US"',
                    )
                )
        if variables is not None and isinstance(variables, str | bytes):
            variables = [str(variables)]
        table = _read_table(path, encoding, delimiter, sheet, result.notices)
        fallback = name_fallback.strip() if isinstance(name_fallback, str) else ""
        phone_col, name_col, specs = _map_columns(
            table, variables, fallback or None, file_problems, result.notices
        )
        if len(fallback) > MAX_NAME:
            file_problems.append(
                Problem(
                    None,
                    None,
                    None,
                    "name_too_long",
                    f"the name fallback is {len(fallback):,} characters long; "
                    f"the API accepts at most {MAX_NAME}",
                )
            )
        result.variable_keys = [s.key for s in specs]
        _check_rows(
            table,
            phone_col,
            name_col,
            specs,
            variables=variables,
            body_text=body_text,
            default_region=region,
            name_fallback=fallback or None,
            result=result,
        )
    except _FileError as exc:
        file_problems.append(Problem(None, None, None, exc.code, exc.message))
        result.recipients, result.skipped, result.invalid = [], [], []
        result.problems = []
    except MemoryError:
        raise
    except Exception as exc:  # a bug: still a Problem, never a traceback for the user
        file_problems.append(
            Problem(
                None,
                None,
                None,
                "internal_error",
                f"the file could not be read because of an unexpected error "
                f"({type(exc).__name__}: {exc})",
            )
        )
        result.recipients, result.skipped, result.invalid = [], [], []
        result.problems = []
    finally:
        if gc_was_enabled:
            gc.enable()
    result.problems[:0] = file_problems
    if any(p.severity is Severity.ERROR for p in file_problems):
        result.recipients = []
    return result
