"""Open a recipients file as a Table: its bytes, not its name, decide how it is read.

A ZIP holding xl/workbook.xml is an Excel workbook (campaign.loader.xlsx_file); other known
formats (.xls, .ods, PDF, images, archives) are refused by name; anything else must be text,
read as CSV (campaign.loader.encodings, then campaign.loader.csv_file).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from campaign.loader import encodings
from campaign.loader.csv_file import read_csv
from campaign.loader.excel_dates import DateChoice
from campaign.loader.table import FileError, Table
from campaign.loader.xlsx_file import read_xlsx

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


def read_table(
    path: str | Path,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    notices: list[str],
    dates: DateChoice | None = None,
) -> Table:
    """The file's header, and its rows as the Table's blocks are iterated (`dates`: how an
    XLSX's date cells read)."""
    p, head = _head(path)
    if not head:
        raise FileError("empty_file", "the file is empty")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _check_workbook(p)
        return read_xlsx(p, sheet, notices, dates)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise FileError("unsupported_format", f"the file is {what}")
    if p.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        notices.append(f'"{p.name}" is not an Excel workbook inside; it was read as CSV text')
    chosen = encodings.choose_encoding(p, head, encoding, notices)
    return read_csv(p, chosen, delimiter, sheet, notices)


def file_size(path: str | Path) -> int:
    try:
        return Path(path).stat().st_size
    except (TypeError, OSError, ValueError):
        return 0


def _head(path: str | Path) -> tuple[Path, bytes]:
    """The path, and the first bytes of the file."""
    try:
        p = Path(path)
    except TypeError as exc:
        raise FileError("unreadable_file", f"{path!r} is not a file path") from exc
    try:
        with p.open("rb") as f:
            return p, f.read(encodings.HEAD_SIZE)
    except FileNotFoundError as exc:
        raise FileError("unreadable_file", f'file "{p}" does not exist') from exc
    except IsADirectoryError as exc:
        raise FileError("unreadable_file", f'"{p}" is a folder, not a file') from exc
    except PermissionError as exc:
        raise FileError("unreadable_file", f'no permission to read "{p}"') from exc
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise FileError("unreadable_file", f'file "{p}" cannot be read: {reason}') from exc


def _check_workbook(path: Path) -> None:
    """Return if the ZIP is an Excel workbook, else raise a FileError naming what it is."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except Exception as exc:  # zipfile fails in many ways on a damaged archive
        raise FileError(
            "unreadable_file",
            "the file looks like an Excel workbook (a ZIP archive) but is damaged; "
            "save it again from Excel",
        ) from exc
    if "xl/workbook.xml" in names or any(n.endswith("workbook.xml") for n in names):
        return
    if "content.xml" in names and "mimetype" in names:
        what = "an OpenDocument file (LibreOffice/Numbers); save it as .xlsx or as CSV"
    elif "word/document.xml" in names:
        what = "a Word document, not a spreadsheet"
    else:
        what = "a ZIP archive, not a spreadsheet; extract it first"
    raise FileError("unsupported_format", f"the file is {what}")
