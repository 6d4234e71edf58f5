"""Headers to meaning: which column is the phone, which the name, which each template variable.

Headers match ignoring case, spaces, underscores and dashes ("Recipient Phone" is
recipient_phone). With the template's variables known, a column gives {{n}} by its position
("1", "{{1}}") or by the variable's name; without them, every other named column is a
variable, keyed by its header. Columns nobody reads are listed in one notice.

Without a name column, a first-name and a last-name column (as CRMs export them) are joined
with a space, with a notice. The user's own choice (ColumnChoice: --phone-column,
--name-column, --var) wins over every guess; a choice naming a column the file lacks is a
UsageError: the flag is wrong, not the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from campaign.errors import UsageError
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
# Split names, as CRMs export them (HubSpot, Salesforce, Mailchimp…): joined when the file
# has no name column. The first alias found of each list is used.
FIRST_NAME_ALIASES = ("firstname", "givenname", "forename", "fname", "vorname", "prénom", "prenom")
LAST_NAME_ALIASES = ("lastname", "familyname", "surname", "lname", "nachname", "nom", "sobrenome")

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

_HEADER_JUNK = re.compile(r"[\s_\-\ufeff\u200b]+")


@dataclass(frozen=True)
class Variable:
    """One template variable and the column that fills it."""

    key: str  # its key in Recipient.variables
    label: str  # how messages name it: 'variable {{1}} ("first_name")'
    column: int  # the column's index
    heading: str  # the column as a Problem names it: its header, or its letter


@dataclass(frozen=True)
class ColumnChoice:
    """The columns a user named; each wins over the guesses."""

    phone: str | None = None
    name: str | None = None  # a column, or a pattern such as "{First Name} {Last Name}"
    variables: tuple[tuple[str, str], ...] = ()  # (template variable, column)


@dataclass(frozen=True)
class NamePattern:
    """A name made of several columns and text: "{First Name} {Last Name}"."""

    parts: tuple[str | int, ...]  # literal text, or a column's index
    heading: str  # how problems name it

    @property
    def columns(self) -> set[int]:
        return {p for p in self.parts if isinstance(p, int)}

    def names(self, columns: list[list[str]], rows: int) -> list[str]:
        """Each row's name; runs of spaces are one, so an empty part leaves no gap. A row
        whose every column is empty has no name (not the pattern's bare text)."""
        pieces = [[p] * rows if isinstance(p, str) else columns[p] for p in self.parts]
        named = zip(*(columns[k] for k in sorted(self.columns)), strict=True)
        return [
            " ".join("".join(row).split()) if any(v.strip() for v in values) else ""
            for row, values in zip(zip(*pieces, strict=True), named, strict=True)
        ]


@dataclass(frozen=True)
class Columns:
    """Which column gives what."""

    phone: int
    name: int | None  # None: the name pattern, or else every row takes the name fallback
    variables: list[Variable]
    unread: list[int]  # the header's columns that nothing reads, in order
    name_pattern: NamePattern | None = None

    @property
    def variable_keys(self) -> list[str]:
        return [v.key for v in self.variables]

    @property
    def has_name(self) -> bool:
        return self.name is not None or self.name_pattern is not None


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
    header: list[str],
    variables: Sequence[str] | None,
    name_fallback: str | None,
    choice: ColumnChoice | None = None,
    notices: list[str] | None = None,
) -> tuple[Columns, list[Problem]]:
    """The columns, and the file-level problems of the headers. A FileError when there is no
    phone column: nothing else can be checked then. A UsageError when `choice` names a
    column the header lacks. A notice (appended to `notices`) when names are joined."""
    choice = choice or ColumnChoice()
    problems: list[Problem] = []
    normed = [norm_header(h) for h in header]

    def find(aliases: Sequence[str]) -> list[int]:
        found = [(aliases.index(n), k) for k, n in enumerate(normed) if n in aliases]
        return [k for _, k in sorted(found)]

    if choice.phone is not None:
        phone_cols = [named_column(header, choice.phone, "--phone-column")]
    else:
        phone_cols = find(PHONE_ALIASES)
    if not phone_cols:
        raise FileError(
            "missing_column",
            "no phone column: name one phone, phone_number, mobile, whatsapp or msisdn, or "
            f"give --phone-column; the headers found are: {list_headers(header)}",
        )
    if len(phone_cols) > 1:
        problems.append(_ambiguous("phone", header, phone_cols))

    pattern = None
    if choice.name is not None:
        name_cols, pattern = _chosen_name(header, choice.name)
    else:
        name_cols = find(NAME_ALIASES)
        if not name_cols:
            pattern = _first_and_last(header, find, notices)
    if len(name_cols) > 1:
        problems.append(_ambiguous("name", header, name_cols))
    if not name_cols and pattern is None and not name_fallback:
        problems.append(
            Problem.for_file(
                "missing_column",
                "no name column (name, recipient_name or full_name, or first and last name "
                "columns) and no name fallback; the API needs a name for every recipient "
                "(--name-column names the column)",
            )
        )

    used = set(phone_cols) | set(name_cols) | (pattern.columns if pattern else set())
    if variables is not None:
        chosen = _chosen_positions(header, variables, choice.variables)
        found, claimed = _template_variables(header, normed, variables, problems, chosen)
    else:
        chosen_keys = {
            var.strip(): named_column(header, column, f"--var {short(var, 40)}=")
            for var, column in choice.variables
        }
        found, claimed = _every_other_column(header, used, problems, chosen_keys)
    used |= claimed
    columns = Columns(
        phone=phone_cols[0],
        name=name_cols[0] if name_cols else None,
        variables=found,
        unread=[k for k in range(len(header)) if k not in used],
        name_pattern=pattern,
    )
    return columns, problems


def named_column(header: list[str], wanted: str, option: str) -> int:
    """The column a user named: its header as written, else ignoring case, spaces,
    underscores and dashes. A UsageError if none (or several) match."""
    exact = [k for k, h in enumerate(header) if h.strip() and h.strip() == wanted.strip()]
    loose = [k for k, h in enumerate(header) if norm_header(h) == norm_header(wanted)]
    matches = exact or loose
    if len(matches) == 1 and norm_header(wanted):
        return matches[0]
    given = f'{option}{"" if option.endswith("=") else " "}"{short(wanted, 40)}"'
    if not matches or not norm_header(wanted):
        raise UsageError(
            f"{given}: the file has no such column; the headers found are: {list_headers(header)}"
        )
    names = ", ".join(f"{column_letter(k)}" for k in matches)
    raise UsageError(f"{given}: several columns are named so (columns {names}); rename all but one")


def _chosen_name(header: list[str], chosen: str) -> tuple[list[int], NamePattern | None]:
    """--name-column: one column, or a pattern of them ("{First Name} {Last Name}")."""
    if not _PLACEHOLDER.search(chosen):
        return [named_column(header, chosen, "--name-column")], None
    parts: list[str | int] = []
    for k, piece in enumerate(_PLACEHOLDER.split(chosen)):
        if k % 2:  # split() puts each placeholder's name at the odd places
            parts.append(named_column(header, piece, "--name-column"))
        elif piece:
            parts.append(piece)
    return [], NamePattern(tuple(parts), chosen.strip())


def _first_and_last(
    header: list[str], find: Callable[[Sequence[str]], list[int]], notices: list[str] | None
) -> NamePattern | None:
    """A first-name and a last-name column, joined with a space; None without both."""
    first, last = find(FIRST_NAME_ALIASES), find(LAST_NAME_ALIASES)
    if not (first and last):
        return None
    first_name, last_name = header[first[0]].strip(), header[last[0]].strip()
    if notices is not None:
        notices.append(
            f'no name column: each name is "{first_name}" and "{last_name}" joined with a '
            "space (--name-column chooses otherwise)"
        )
    return NamePattern((first[0], " ", last[0]), f"{first_name} + {last_name}")


def _chosen_positions(
    header: list[str], variables: Sequence[str], chosen: Sequence[tuple[str, str]]
) -> dict[int, int]:
    """--var VARIABLE=COLUMN: the template variable's position -> the column's index."""
    positions: dict[int, int] = {}
    for var, column in chosen:
        wanted = norm_header(var)
        matches = [
            position
            for position, name in enumerate(variables, start=1)
            if wanted in (str(position), norm_header(str(name)))
        ]
        if not matches:
            listed = ", ".join(
                f'{{{{{p}}}}} "{short(str(n), 40)}"' for p, n in enumerate(variables, start=1)
            )
            raise UsageError(
                f"--var {short(var, 40)}={short(column, 40)}: the template has no variable "
                f'"{short(var, 40)}"; its variables are: {listed or "none"}'
            )
        positions[matches[0]] = named_column(header, column, f"--var {short(var, 40)}=")
    return positions


def _template_variables(
    header: list[str],
    normed: list[str],
    variables: Sequence[str],
    problems: list[Problem],
    chosen: dict[int, int],
) -> tuple[list[Variable], set[int]]:
    """Variables keyed "1", "2"…, each from the column the user chose (`chosen`, by
    position) or else the column named after its position or name; and every column that
    names one."""
    found: list[Variable] = []
    claimed: set[int] = set()
    for position, var_name in enumerate(variables, start=1):
        var_name = str(var_name)
        targets = {str(position), norm_header(var_name)}
        if position in chosen:
            cols = [chosen[position]]
        else:
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
    header: list[str], used: set[int], problems: list[Problem], chosen: dict[str, int]
) -> tuple[list[Variable], set[int]]:
    """Template unknown: the variables the user keyed (`chosen`: key -> column), then every
    other named column but phone and name, keyed by its header; and every column that
    names one (a column keyed as a chosen one is left unread)."""
    found = [
        Variable(key, f'variable "{short(key, 40)}"', k, _heading(header, k))
        for key, k in chosen.items()
    ]
    claimed: set[int] = set(chosen.values())
    seen: dict[str, int] = dict(chosen)
    for k, h in enumerate(header):
        key = h.strip().lstrip("\ufeff")
        if k in used or k in claimed or not key or key in chosen:
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
