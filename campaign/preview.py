"""The message as a recipient will read it: the template's body with a row's values filled in.

`validate` shows the first valid row's message and the longest one (the one that may pass
WhatsApp's 1,024 characters). `PreviewCount` follows a file's chunks as the loader reads
them, keeping two rows at most, so a file of millions of rows costs no memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from campaign.loader.rules import MAX_BODY
from campaign.model import Recipient

# {{1}}, {{ 2 }}, {{customer_name}}: what a template body's placeholders look like.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class Body:
    """A template body cut into its fixed text and its placeholders, ready to be filled.

    A row's variables are keyed "1", "2"… (or by the template's names); a placeholder is
    filled by its position or by its name, whichever the row has. One that nothing fills
    stays as written.
    """

    def __init__(self, text: str, variables: Sequence[str] = ()) -> None:
        self.parts: list[str] = []  # fixed text and placeholders, alternating
        self.keys: list[tuple[str, ...]] = []  # the keys that may fill each placeholder
        start = 0
        for match in PLACEHOLDER.finditer(text):
            self.parts.append(text[start : match.start()])
            self.parts.append(match.group(0))
            self.keys.append(_keys_of(match.group(1), variables))
            start = match.end()
        self.parts.append(text[start:])
        self.fixed = sum(len(p) for p in self.parts[::2])  # the text no row changes

    def fill(self, values: dict[str, str]) -> str:
        pieces = []
        for i, part in enumerate(self.parts):
            pieces.append(self._value(i, values) if i % 2 else part)
        return "".join(pieces)

    def length(self, values: dict[str, str]) -> int:
        """len(self.fill(values)), without building the text."""
        return self.fixed + sum(len(self._value(i, values)) for i in range(1, len(self.parts), 2))

    def _value(self, part: int, values: dict[str, str]) -> str:
        for key in self.keys[part // 2]:
            if key in values:
                return values[key]
        return self.parts[part]


def _keys_of(token: str, variables: Sequence[str]) -> tuple[str, ...]:
    """The keys a placeholder's token may be filled by: itself, and its position or name."""
    names = [str(v) for v in variables]
    if token.isdigit():
        position = int(token)
        return (token, names[position - 1]) if 0 < position <= len(names) else (token,)
    return (token, str(names.index(token) + 1)) if token in names else (token,)


@dataclass(frozen=True)
class FilledBody:
    row: int  # the spreadsheet's row number
    text: str

    @property
    def length(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class Preview:
    """The first valid row's message, and the longest message of the file."""

    first: FilledBody
    longest: FilledBody
    limit: int = MAX_BODY

    def as_json(self) -> dict[str, object]:
        return {
            "first": {"row": self.first.row, "text": self.first.text},
            "longest": {
                "row": self.longest.row,
                "text": self.longest.text,
                "length": self.longest.length,
            },
        }


class PreviewCount:
    """Follows a file's valid rows as they are read; `preview` is None until one came."""

    def __init__(self, body_text: str, variables: Sequence[str] = ()) -> None:
        self.body = Body(body_text, variables)
        self._first: FilledBody | None = None
        self._longest: Recipient | None = None
        self._longest_length = -1

    def add(self, recipients: Sequence[Recipient]) -> None:
        for recipient in recipients:
            if self._first is None or recipient.row < self._first.row:
                self._first = FilledBody(recipient.row, self.body.fill(recipient.variables))
            length = self.body.length(recipient.variables)
            if length > self._longest_length:  # the first of equals wins
                self._longest, self._longest_length = recipient, length

    @property
    def preview(self) -> Preview | None:
        if self._first is None or self._longest is None:
            return None
        longest = self._longest
        return Preview(self._first, FilledBody(longest.row, self.body.fill(longest.variables)))
