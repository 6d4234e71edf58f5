"""Duplicates: the first row of every phone number seen, kept as compact integer arrays.

An E.164 number is "+" and up to 15 digits, never starting with 0, so the digits as an int64
name it exactly. Millions of them take 16 bytes each here (number and row), where a Python
dict would take about a hundred. The numbers are kept in a few sorted arrays whose sizes
halve one after the other (merged like the digits of a binary counter), so each block of rows
costs a search in each array and, now and then, one merge.
"""

from __future__ import annotations

import numpy as np


class FirstRows:
    """The first row each phone number was seen in."""

    def __init__(self) -> None:
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted numbers, their rows)

    def first_rows(self, numbers: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each (number, row) of a block, in row order: the first row with that number
        (the row itself when it is the first). Later rows than any seen before only."""
        first = np.zeros(len(numbers), dtype=np.int64)  # 0: not in an earlier block
        for known, known_rows in self._levels:
            at = np.minimum(np.searchsorted(known, numbers), len(known) - 1)
            hit = known[at] == numbers
            first[hit] = known_rows[at[hit]]
        unique, where, inverse = np.unique(numbers, return_index=True, return_inverse=True)
        in_block = rows[where][inverse]  # the first row in this block with each number
        new = first[where] == 0
        self._add(unique[new], rows[where][new])
        return np.where(first > 0, first, in_block)

    def _add(self, numbers: np.ndarray, rows: np.ndarray) -> None:
        if len(numbers) == 0:
            return
        self._levels.append((numbers, rows.astype(np.int64)))
        while len(self._levels) > 1 and len(self._levels[-2][0]) <= 2 * len(self._levels[-1][0]):
            (a, a_rows), (b, b_rows) = self._levels.pop(), self._levels.pop()
            merged = np.concatenate([a, b])
            order = np.argsort(merged, kind="stable")
            self._levels.append((merged[order], np.concatenate([a_rows, b_rows])[order]))
