"""Headers to meaning: which column is the phone, which the name, which each template variable.

Headers match ignoring case, spaces, underscores and dashes ("Recipient Phone" is
recipient_phone). With the template's variables known, a column gives {{n}} by its position
("1", "{{1}}") or by the variable's name; without them, every other named column is a
variable, keyed by its header. Columns nobody reads are listed in one notice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from campaign.loader.table import FileError
from campaign.model import Problem

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

_HEADER_JUNK = re.compile(r"[\s_\-\ufeff\u200b]+")


@dataclass(frozen=True)
class Variable:
    """One template variable and the column that fills it."""

    key: str  # its key in Recipient.variables
    label: str  # how messages name it: 'variable {{1}} ("first_name")'
    column: int  # the column's index
    heading: str  # the column as a Problem names it: its header, or its letter


@dataclass(frozen=True)
class Columns:
    """Which column gives what."""

    phone: int
    name: int | None  # None: every row takes the name fallback
    variables: list[Variable]
    unread: list[int]  # the header's columns that nothing reads, in order

    @property
    def variable_keys(self) -> list[str]:
        return [v.key for v in self.variables]


def norm_header(header: str) -> str:
    return _HEADER_JUNK.sub("", header.casefold()).strip("{}")


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def short(value: str, limit: int = 60) -> str:
    """A value as messages quote it: line breaks and tabs shown, long ones cut."""
    value = value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def list_headers(header: list[str]) -> str:
    named = [f'"{short(h.strip(), 40)}"' for h in header if h.strip()]
    return ", ".join(named) if named else "none"


def map_columns(
    header: list[str], variables: Sequence[str] | None, name_fallback: str | None
) -> tuple[Columns, list[Problem]]:
    """The columns, and the file-level problems of the headers. A FileError when there is no
    phone column: nothing else can be checked then."""
    problems: list[Problem] = []
    normed = [norm_header(h) for h in header]

    def find(aliases: Sequence[str]) -> list[int]:
        found = [(aliases.index(n), k) for k, n in enumerate(normed) if n in aliases]
        return [k for _, k in sorted(found)]

    phone_cols = find(PHONE_ALIASES)
    if not phone_cols:
        raise FileError(
            "missing_column",
            "no phone column: name one phone, phone_number, mobile, whatsapp or msisdn; "
            f"the headers found are: {list_headers(header)}",
        )
    if len(phone_cols) > 1:
        problems.append(_ambiguous("phone", header, phone_cols))

    name_cols = find(NAME_ALIASES)
    if len(name_cols) > 1:
        problems.append(_ambiguous("name", header, name_cols))
    if not name_cols and not name_fallback:
        problems.append(
            Problem.for_file(
                "missing_column",
                "no name column (name, recipient_name or full_name) and no name fallback; "
                "the API needs a name for every recipient",
            )
        )

    used = set(phone_cols) | set(name_cols)
    if variables is not None:
        found, claimed = _template_variables(header, normed, variables, problems)
    else:
        found, claimed = _every_other_column(header, used, problems)
    used |= claimed
    columns = Columns(
        phone=phone_cols[0],
        name=name_cols[0] if name_cols else None,
        variables=found,
        unread=[k for k in range(len(header)) if k not in used],
    )
    return columns, problems


def _template_variables(
    header: list[str], normed: list[str], variables: Sequence[str], problems: list[Problem]
) -> tuple[list[Variable], set[int]]:
    """Variables keyed "1", "2"…, each from the column named after its position or name;
    and every column that names one."""
    found: list[Variable] = []
    claimed: set[int] = set()
    for position, var_name in enumerate(variables, start=1):
        var_name = str(var_name)
        targets = {str(position), norm_header(var_name)}
        cols = [k for k, n in enumerate(normed) if n and n in targets]
        label = f'variable {{{{{position}}}}} ("{short(var_name, 40)}")'
        if not cols:
            problems.append(
                Problem.for_file(
                    "missing_column",
                    f'the template needs {label} but no column is named "{var_name}" or '
                    f'"{position}"; the headers found are: {list_headers(header)}',
                )
            )
            continue
        if len(cols) > 1:
            names = " and ".join(f'"{header[k].strip()}"' for k in cols)
            problems.append(
                Problem.for_file(
                    "ambiguous_column", f"columns {names} both give {label}; keep only one of them"
                )
            )
        found.append(Variable(str(position), label, cols[0], _heading(header, cols[0])))
        claimed.update(cols)
    return found, claimed


def _every_other_column(
    header: list[str], used: set[int], problems: list[Problem]
) -> tuple[list[Variable], set[int]]:
    """Template unknown: every named column but phone and name, keyed by its header; and
    every column that names one."""
    found: list[Variable] = []
    claimed: set[int] = set()
    seen: dict[str, int] = {}
    for k, h in enumerate(header):
        key = h.strip().lstrip("\ufeff")
        if k in used or not key:
            continue
        if key in seen:
            problems.append(
                Problem.for_file(
                    "ambiguous_column",
                    f'two columns are named "{short(key, 40)}" (columns '
                    f"{column_letter(seen[key])} and {column_letter(k)}); rename one",
                )
            )
            claimed.add(k)
            continue
        seen[key] = k
        found.append(Variable(key, f'variable "{short(key, 40)}"', k, _heading(header, k)))
        claimed.add(k)
    return found, claimed


def _heading(header: list[str], column: int) -> str:
    return header[column].strip() or column_letter(column)


def _ambiguous(what: str, header: list[str], cols: list[int]) -> Problem:
    names = ", ".join(f'"{header[k].strip()}"' for k in cols)
    return Problem.for_file(
        "ambiguous_column",
        f'several columns could hold the {what} ({names}); "{header[cols[0]].strip()}" was '
        "used — rename or remove the others",
    )


def unread_columns_notice(header: list[str], columns: Columns, filled: set[int]) -> str | None:
    """The notice listing the columns nothing reads: named ones, and unnamed ones that hold a
    value in some row (`filled`: a blank header's, or past the header's in a workbook)."""
    listed = []
    unread = set(columns.unread)
    for k in range(max(len(header), max(filled, default=-1) + 1)):
        named = header[k].strip() if k < len(header) else ""
        if k in unread and named:
            listed.append(named)
        elif (k in unread or k >= len(header)) and k in filled:
            listed.append(f"column {column_letter(k)} (no header)")
    return "ignored columns: " + ", ".join(listed) if listed else None
