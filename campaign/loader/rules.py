"""The validation rules: one function per rule, named after the problem code it reports.

Column rules take a block's values of one column (trimmed) and their spreadsheet rows, and
return the Problems they find, in row order. Each first asks one cheap question of the whole
column ("is any value empty?", "is any too long?") and looks at single values only when the
answer is yes, since a million clean rows should cost next to nothing. Row rules take one row.
To change what a rule accepts, or what it says, change its function: no other one reads it.

The order of a row's problems is the order of the rules in `checking.py`.

Where each problem code is decided, if not here:
  missing_phone, invalid_phone, excel_scientific, excel_float_repaired  campaign/phones.py
  missing_column, ambiguous_column                                      mapping.py
  unreadable_file, empty_file, unsupported_format                       reading.py, csv_file.py,
                                                                        xlsx_file.py
  binary_file, bad_encoding                                             encodings.py
  bad_delimiter, unclosed_quote                                         csv_file.py
  missing_sheet                                                         xlsx_file.py
  no_rows                                                               checking.py
  (unrendered_date_format is here; the formats are read in excel_dates.py)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from campaign.loader.mapping import Variable, column_letter, norm_header, short
from campaign.model import Problem, Severity
from campaign.phones import PhoneResult

MAX_NAME = 255  # characters the API accepts in a name
MAX_VALUE = 1600  # characters WhatsApp accepts in one template value
MAX_BODY = 1024  # characters WhatsApp accepts in a message body, values filled in

# Any of these in a template value is refused by WhatsApp: line breaks, tabs, 5+ spaces.
_BAD_WHITESPACE = re.compile(r"[\n\r\t\x0b\x0c\x85\u2028\u2029]| {5,}")
_BAD_WHITESPACE_PARTS = ("\n", "\r", "\t", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "     ")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


# --- the file's options --------------------------------------------------------------------------


def unknown_region(given: str) -> Problem:
    return Problem.for_file(
        "unknown_region",
        f'"{given}" is not a known region code; use a two-letter code such as "GB" or "US"',
    )


def fallback_too_long(fallback: str) -> Problem | None:
    """The name fallback (name_too_long, for the whole file)."""
    if len(fallback) <= MAX_NAME:
        return None
    return Problem.for_file(
        "name_too_long",
        f"the name fallback is {len(fallback):,} characters long; the API accepts at most "
        f"{MAX_NAME}",
    )


def unrendered_dates(header: list[str], formats: dict[int, tuple[str, str]]) -> list[Problem]:
    """One WARNING per XLSX column whose date format could not be rendered as Excel shows it:
    its dates went out as ISO text (2026-01-15, 09:30:00), and the user may choose."""
    problems = []
    for column, (code, why) in sorted(formats.items()):
        heading = header[column].strip() if column < len(header) else ""
        heading = heading or column_letter(column)
        problems.append(
            Problem(
                None,
                heading,
                code,
                "unrendered_date_format",
                f'dates formatted "{short(code, 40)}" cannot be shown as Excel shows them '
                f"({why}): they are sent as ISO text (2026-01-15); --date-format or "
                "--time-format chooses a pattern (e.g. %d/%m/%Y)",
                Severity.WARNING,
            )
        )
    return problems


# --- one row -------------------------------------------------------------------------------------


def too_many_cells(row: int, cells: int, width: int) -> Problem:
    """More cells than the header has: most often a separator inside an unquoted value."""
    return Problem(
        row,
        None,
        None,
        "too_many_cells",
        f"row has {cells} cells but the header has {width}; a value may hold an unquoted "
        "separator — quote it or remove the extra cells",
    )


def phone_problem(row: int, column: str, raw: str, phone: PhoneResult) -> Problem:
    """missing_phone, invalid_phone, excel_scientific, excel_float_repaired: as
    campaign.phones read the cell."""
    assert phone.code is not None and phone.message is not None
    return Problem(row, column, raw.strip(), phone.code, phone.message, phone.severity)


def duplicate(row: int, column: str, raw: str, e164: str, first_row: int) -> Problem:
    """A number an earlier row has: this row is skipped, whatever else is wrong with it."""
    return Problem(
        row,
        column,
        raw.strip(),
        "duplicate",
        f"phone {e164} is a duplicate of row {first_row}; this row is skipped",
        Severity.SKIP,
    )


# --- the name column -----------------------------------------------------------------------------


def missing_name(names: list[str], rows: Sequence[int], column: str) -> list[Problem]:
    """An empty name (the name fallback, when set, has filled them already)."""
    if "" not in names:
        return []
    return [
        Problem(rows[j], column, "", "missing_name", "name is empty and no name fallback is set")
        for j, name in enumerate(names)
        if not name
    ]


def name_too_long(names: list[str], rows: Sequence[int], column: str) -> list[Problem]:
    if not names or max(map(len, names)) <= MAX_NAME:
        return []
    return [
        Problem(
            rows[j],
            column,
            name,
            "name_too_long",
            f'name "{short(name, 40)}" is {len(name):,} characters long; the API accepts at '
            f"most {MAX_NAME}",
        )
        for j, name in enumerate(names)
        if len(name) > MAX_NAME
    ]


# --- a template variable's column ----------------------------------------------------------------


def empty_variable(values: list[str], rows: Sequence[int], variable: Variable) -> list[Problem]:
    if "" not in values:
        return []
    return [
        Problem(rows[j], variable.heading, "", "empty_variable", f"{variable.label} is empty")
        for j, value in enumerate(values)
        if not value
    ]


def bad_whitespace(values: list[str], rows: Sequence[int], variable: Variable) -> list[Problem]:
    """A line break, a tab, or more than four spaces in a row: WhatsApp refuses them."""
    joined = "\x1f".join(values)  # one substring search per kind over the whole column
    if not any(part in joined for part in _BAD_WHITESPACE_PARTS):
        return []
    problems = []
    for j, value in enumerate(values):
        bad = _BAD_WHITESPACE.search(value)
        if bad:
            what = bad.group(0)
            kind = (
                "a tab"
                if what == "\t"
                else "a run of more than four spaces"
                if what.startswith(" ")
                else "a line break"
            )
            problems.append(
                Problem(
                    rows[j],
                    variable.heading,
                    value,
                    "bad_whitespace",
                    f'{variable.label} "{short(value)}" holds {kind}, which WhatsApp refuses in '
                    "template values",
                )
            )
    return problems


def value_too_long(values: list[str], rows: Sequence[int], variable: Variable) -> list[Problem]:
    if not values or max(map(len, values)) <= MAX_VALUE:
        return []
    return [
        Problem(
            rows[j],
            variable.heading,
            value,
            "value_too_long",
            f"{variable.label} is {len(value):,} characters long; WhatsApp accepts at most "
            f"{MAX_VALUE:,}",
        )
        for j, value in enumerate(values)
        if len(value) > MAX_VALUE
    ]


# --- the message body, values filled in ----------------------------------------------------------


@dataclass(frozen=True)
class BodySize:
    """How long the template's body is once a row's values fill its placeholders."""

    fixed: int  # characters of the body but the placeholders rows fill
    uses: dict[int, int]  # variable index -> how many placeholders it fills

    def of_row(self, values: list[list[str]], j: int) -> int:
        return self.fixed + sum(n * len(values[i][j]) for i, n in self.uses.items())


def body_size(
    body_text: str | None, variables: Sequence[str] | None, found: list[Variable]
) -> BodySize | None:
    """The body's size as rows fill it; None when there is no body to check."""
    if not body_text or not isinstance(body_text, str) or not found:
        return None
    by_key = {v.key: i for i, v in enumerate(found)}
    by_name: dict[str, int] = {}
    if variables is not None:
        for position, var_name in enumerate(variables, start=1):
            index = by_key.get(str(position))
            if index is not None:
                by_name.setdefault(norm_header(str(var_name)), index)
    else:
        for i, v in enumerate(found):
            by_name.setdefault(norm_header(v.key), i)
    fixed = len(body_text)
    uses: dict[int, int] = {}
    for match in _PLACEHOLDER.finditer(body_text):
        token = match.group(1)
        index = by_key.get(token)
        if index is None:
            index = by_name.get(norm_header(token))
        if index is None:
            continue  # nothing fills it: it stays as written
        fixed -= len(match.group(0))
        uses[index] = uses.get(index, 0) + 1
    return BodySize(fixed, uses)


def body_too_long(values: list[list[str]], rows: Sequence[int], body: BodySize) -> list[Problem]:
    """The body with this row's values over MAX_BODY characters."""
    widest = body.fixed + sum(n * max(map(len, values[i]), default=0) for i, n in body.uses.items())
    if widest <= MAX_BODY:
        return []
    problems = []
    for j, row in enumerate(rows):
        length = body.of_row(values, j)
        if length > MAX_BODY:
            problems.append(
                Problem(
                    row,
                    None,
                    None,
                    "body_too_long",
                    f"the message body with this row's values is {length:,} characters long; "
                    f"WhatsApp accepts at most {MAX_BODY:,}",
                )
            )
    return problems
