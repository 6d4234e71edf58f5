"""Each block of rows checked by the rules and sorted: Recipients, duplicates, invalid rows.

Where a row goes:
  * blank (no value in any cell): nowhere, not even a problem;
  * its phone number is an earlier row's: skipped (SKIP "duplicate of row N"), its other
    problems unreported since it will never be sent. The first row with a number keeps it,
    even if that row has another error;
  * any ERROR: invalid, its reason the ERROR messages joined by "; ";
  * else a Recipient (WARNINGs reported, such as a phone Excel showed as "….0").
A row's problems come in this order: too_many_cells, the phone's, then the rules below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from campaign.loader import rules
from campaign.loader.first_rows import FirstRows
from campaign.loader.mapping import Columns, list_headers, unread_columns_notice
from campaign.loader.phone_column import PhoneCells
from campaign.loader.table import Block, FileError, Table
from campaign.model import Problem, Recipient, Severity, SkippedRow

NAME_RULES = (rules.missing_name, rules.name_too_long)
VARIABLE_RULES = (rules.empty_variable, rules.bad_whitespace, rules.value_too_long)


@dataclass
class Chunk:
    """What a block of rows came to."""

    recipients: list[Recipient] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)  # duplicates
    invalid: list[SkippedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # in row order


class RowChecker:
    """Checks a table's blocks in order; keeps what spans blocks (the numbers seen, whether
    any row was not blank, which unnamed columns hold values)."""

    def __init__(
        self,
        table: Table,
        columns: Columns,
        name_fallback: str | None,
        body: rules.BodySize | None,
    ) -> None:
        self.header = table.header
        self.columns = columns
        self.extra_cells_are_errors = table.extra_cells_are_errors
        self.name_fallback = name_fallback
        self.body = body
        self.phone_heading = table.header[columns.phone].strip()
        self.name_heading = _name_heading(table.header, columns)
        self.keys = columns.variable_keys
        self.first_rows = FirstRows()
        self.rows_with_values = 0
        self.filled: set[int] = set()  # unnamed columns that hold a value in some row
        self._unnamed = [k for k in columns.unread if not table.header[k].strip()]

    def check(self, block: Block, phones: PhoneCells) -> Chunk:
        """Sort one block's rows (blocks must come in order: duplicates look back)."""
        blank = self._blank_rows(block, phones)
        self.rows_with_values += len(block) - len(blank)
        self._note_filled(block)
        names = self._names(block)
        values = [[v.strip() for v in block.columns[var.column]] for var in self.columns.variables]
        found = self._rule_problems(block, names, values, blank)
        first_rows = self._duplicates(block, phones)
        return self._sort(block, phones, names, values, found, first_rows, blank)

    def unread_columns_notice(self) -> str | None:
        """After the last block: the notice listing the columns nothing reads."""
        return unread_columns_notice(self.header, self.columns, self.filled)

    def check_some_rows(self) -> None:
        """After the last block: a FileError if every row was blank."""
        if not self.rows_with_values:
            heads = list_headers(self.header)
            raise FileError("no_rows", f"the file has a header row ({heads}) but no rows below it")

    def _blank_rows(self, block: Block, phones: PhoneCells) -> set[int]:
        """Rows without a value in any cell (only a row without a phone can be one)."""
        return {
            j
            for j, phone in phones.problems.items()
            if phone.code == "missing_phone"
            and j not in block.extra_cells
            and all(not column[j] or column[j].isspace() for column in block.columns)
        }

    def _note_filled(self, block: Block) -> None:
        self.filled |= block.wide_columns
        for k in self._unnamed:
            if k not in self.filled and any(c and not c.isspace() for c in block.columns[k]):
                self.filled.add(k)

    def _names(self, block: Block) -> list[str]:
        pattern = self.columns.name_pattern
        if pattern is not None:
            names = pattern.names(block.columns, len(block))
        elif self.columns.name is None:
            return [self.name_fallback or ""] * len(block)
        else:
            names = [v.strip() for v in block.columns[self.columns.name]]
        if self.name_fallback:
            return [v or self.name_fallback for v in names]
        return names

    def _rule_problems(
        self, block: Block, names: list[str], values: list[list[str]], blank: set[int]
    ) -> dict[int, list[Problem]]:
        """The rules' problems by row index, in the order of the rules."""
        rows = block.rows
        found: list[Problem] = []
        if self.columns.has_name:
            for name_rule in NAME_RULES:
                found += name_rule(names, rows, self.name_heading)
        for variable, column in zip(self.columns.variables, values, strict=True):
            for value_rule in VARIABLE_RULES:
                found += value_rule(column, rows, variable)
        if self.body is not None:
            found += rules.body_too_long(values, rows, self.body)
        by_row: dict[int, list[Problem]] = {}
        for problem in found:
            j = problem.row - block.first_row  # type: ignore[operator]
            if j not in blank:
                by_row.setdefault(j, []).append(problem)
        return by_row

    def _duplicates(self, block: Block, phones: PhoneCells) -> dict[int, int]:
        """Row index -> the earlier row with the same number, for each duplicate."""
        valid = np.flatnonzero(phones.numbers)
        rows = valid + block.first_row
        first = self.first_rows.first_rows(phones.numbers[valid], rows)
        later = first != rows
        return dict(zip(valid[later].tolist(), first[later].tolist(), strict=True))

    def _sort(
        self,
        block: Block,
        phones: PhoneCells,
        names: list[str],
        values: list[list[str]],
        found: dict[int, list[Problem]],
        first_rows: dict[int, int],
        blank: set[int],
    ) -> Chunk:
        chunk = Chunk()
        keys = self.keys
        recipients = chunk.recipients
        special = found.keys() | first_rows.keys() | phones.problems.keys()
        special |= block.extra_cells.keys()
        value_rows = zip(*values, strict=True) if values else ([()] * len(block))
        rows = zip(block.rows, phones.e164, names, value_rows, strict=True)
        for j, (row, e164, name, row_values) in enumerate(rows):
            if j not in special:  # most rows: nothing to say
                recipients.append(
                    Recipient(row, e164, name, dict(zip(keys, row_values, strict=True)))
                )
                continue
            if j in blank:
                continue
            raw = block.columns[self.columns.phone][j]
            first = first_rows.get(j)
            if first is not None:
                chunk.skipped.append(SkippedRow(row, e164, name, f"duplicate of row {first}"))
                chunk.problems.append(rules.duplicate(row, self.phone_heading, raw, e164, first))
                continue
            problems = self._row_problems(block, j, phones, found)
            chunk.problems += problems
            errors = [p.message for p in problems if p.severity is Severity.ERROR]
            if errors:
                chunk.invalid.append(SkippedRow(row, e164 or raw.strip(), name, "; ".join(errors)))
            else:
                recipients.append(
                    Recipient(row, e164, name, dict(zip(keys, row_values, strict=True)))
                )
        return chunk

    def _row_problems(
        self, block: Block, j: int, phones: PhoneCells, found: dict[int, list[Problem]]
    ) -> list[Problem]:
        row = block.first_row + j
        problems = []
        if self.extra_cells_are_errors and j in block.extra_cells:
            problems.append(rules.too_many_cells(row, block.extra_cells[j], len(self.header)))
        phone = phones.problems.get(j)
        if phone is not None:
            raw = block.columns[self.columns.phone][j]
            problems.append(rules.phone_problem(row, self.phone_heading, raw, phone))
        problems += found.get(j, ())
        return problems


def _name_heading(header: list[str], columns: Columns) -> str:
    """The name's column as problems name it ("First Name + Last Name" for a pattern)."""
    if columns.name_pattern is not None:
        return columns.name_pattern.heading
    return header[columns.name].strip() if columns.name is not None else ""
