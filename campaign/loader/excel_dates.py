"""Excel date and time number formats, rendered as Excel shows them (English names).

A format code such as `mmmm d, yyyy` is compiled once (`date_format`) into literal text and
tokens, then each cell's value is rendered with it. Only date and time codes are handled:
y, m, d, h, m (minutes: after an hour or before seconds), s, fractions of a second,
AM/PM and A/P, month and day names, quoted or escaped text. A format Excel shows
differently from reader to reader (the short date of built-in formats 14 and 22, a
non-English locale tag such as `[$-407]`, the system's `[$-F800]`), or one this module does
not know (elapsed `[h]`, conditions, eras, number codes) is not `faithful`: its `why` says
so, and the loader falls back to ISO text (or the user's --date-format / --time-format).

No library was used: the one on PyPI (ssf, a port of SheetJS's) is unmaintained since 2020,
fails to start with today's Babel, and pulls six dependencies for what is a small table.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Built-in formats whose look is the reader's own short date (1/15/2026 in the US,
# 15/01/2026 in Britain): the file only says "short date".
LOCALE_SHORT_DATE_IDS = (14, 22)
COLORS = {"black", "blue", "cyan", "green", "magenta", "red", "white", "yellow"}
# Locale tags of English (the low byte of the LCID is 0x09): names read as we render them.
ENGLISH_LANGUAGE = 0x09

# How each token renders, by letter and the length of its run (the last entry serves longer
# runs). A token is (letter, length); "M" is minutes.
RENDER = {
    "y": (
        lambda t: f"{t.year % 100:02d}",
        lambda t: f"{t.year % 100:02d}",
        lambda t: f"{t.year:04d}",
    ),
    "e": (lambda t: f"{t.year}",),
    "m": (
        lambda t: str(t.month),
        lambda t: f"{t.month:02d}",
        lambda t: MONTHS[t.month - 1][:3],
        lambda t: MONTHS[t.month - 1],
        lambda t: MONTHS[t.month - 1][0],
    ),
    "d": (
        lambda t: str(t.day),
        lambda t: f"{t.day:02d}",
        lambda t: DAYS[t.weekday()][:3],
        lambda t: DAYS[t.weekday()],
    ),
    "M": (lambda t: str(t.minute), lambda t: f"{t.minute:02d}"),
    "s": (lambda t: str(t.second), lambda t: f"{t.second:02d}"),
}
DATE_LETTERS = "ymde"
TIME_LETTERS = "hMs"

Part = str | tuple[str, int]  # literal text, or a token (letter, run length)


@dataclass(frozen=True)
class DateFormat:
    """A compiled date/time format: render(value) gives the text Excel shows."""

    code: str
    parts: tuple[Part, ...]
    shows_date: bool
    shows_time: bool
    why: str = ""  # why Excel's look cannot be rendered here ("" when it can)

    @property
    def faithful(self) -> bool:
        return not self.why

    def render(self, value: datetime | date | time) -> str:
        moment = _as_datetime(value)
        if self.shows_time:  # a date alone is not rounded up to the next day
            moment = _rounded(moment, self._fraction_digits())
        twelve_hour = any(isinstance(p, tuple) and p[0] in "apP" for p in self.parts)
        return "".join(_part(p, moment, twelve_hour) for p in self.parts)

    def _fraction_digits(self) -> int:
        return max((p[1] for p in self.parts if isinstance(p, tuple) and p[0] == "f"), default=0)


def date_format(code: str, format_id: int | None = None) -> DateFormat:
    """The format of a cell (its number_format, and its built-in id if it has one)."""
    if format_id in LOCALE_SHORT_DATE_IDS:
        parsed = _compiled(code)
        why = "Excel shows it in each reader's own short-date style"
        return DateFormat(code, parsed.parts, parsed.shows_date, parsed.shows_time, why)
    return _compiled(code)


@functools.cache
def _compiled(code: str) -> DateFormat:
    parts, why = _tokens(_first_section(code))
    parts = _minutes(parts)
    letters = {p[0] for p in parts if isinstance(p, tuple)}
    shows_date = bool(letters & set(DATE_LETTERS))
    shows_time = bool(letters & set(TIME_LETTERS + "h"))
    if not (shows_date or shows_time) and not why:
        why = "it shows no date or time"
    return DateFormat(code, tuple(parts), shows_date, shows_time, why)


def _first_section(code: str) -> str:
    """A format's first section (up to a ';' outside quotes): the one for positive numbers,
    which a date always is. `[$-409]mmmm d, yyyy;@` is `[$-409]mmmm d, yyyy`."""
    for match in re.finditer(r'"[^"]*"?|\\.|\[[^\]]*\]?|;', code):
        if match.group() == ";":
            return code[: match.start()]
    return code


_TOKEN = re.compile(
    r'"(?P<quoted>[^"]*)"?'
    r"|\\(?P<escaped>.)"
    r"|_(?P<space>.)"
    r"|\*(?P<fill>.)"
    r"|\[(?P<bracket>[^\]]*)\]?"
    r"|(?P<ampm>am/pm|a/p)"
    r"|(?P<run>y+|m+|d+|h+|s+|e+)"
    r"|\.(?P<fraction>0+)"
    r"|(?P<other>.)",
    re.IGNORECASE | re.DOTALL,
)


def _tokens(section: str) -> tuple[list[Part], str]:
    """The section as parts, and why it cannot be rendered faithfully ("" if it can)."""
    parts: list[Part] = []
    why = ""
    for match in _TOKEN.finditer(section):
        kind, text = match.lastgroup, match.group(match.lastgroup or 0)
        if kind in ("quoted", "escaped"):
            parts.append(text)
        elif kind == "space":
            parts.append(" ")
        elif kind == "bracket":
            literal, problem = _bracket(text)
            parts.append(literal)
            why = why or problem
        elif kind == "ampm":
            parts.append(
                ("a", 5) if len(text) == 5 else ("p", 0) if text[0].islower() else ("P", 0)
            )
        elif kind == "run":
            parts.append((text[0].lower(), len(text)))
        elif kind == "fraction":
            parts.append(("f", len(text)))
        elif kind == "other":
            if text.isalnum() or text in "#?%@":  # digits, eras, Buddhist years, numbers…
                why = why or f'"{text}" is not a date or time code this program renders'
            else:
                parts.append(text)
    return parts, why


def _bracket(text: str) -> tuple[str, str]:
    """What a [...] shows, and why it cannot be rendered ("" if it can)."""
    lowered = text.strip().lower()
    if lowered in COLORS or lowered.startswith("color"):
        return "", ""
    if lowered.startswith("$"):
        symbol, _, locale = text[1:].partition("-")
        if locale and not _english(locale):
            return symbol, f"its locale tag [{text}] names another language or the system's"
        return symbol, ""
    if re.fullmatch(r"h+|m+|s+", lowered):
        return "", f"[{text}] is an elapsed time"
    if lowered[:1] in "<>=":
        return "", f"[{text}] is a condition"
    return "", f"[{text}] is not a code this program renders"


def _english(locale: str) -> bool:
    try:
        lcid = int(locale, 16)
    except ValueError:
        return False
    language, calendar = lcid & 0xFFFF, lcid >> 16  # 0 or 1: the Gregorian calendar
    return language & 0xFF == ENGLISH_LANGUAGE and language < 0xF000 and calendar in (0, 1)


def _minutes(parts: list[Part]) -> list[Part]:
    """An m or mm right after an hour or right before seconds (text between aside) is
    minutes, as in Excel: `h:mm` and `mm:ss` are minutes, `mm/dd` is a month."""
    tokens = [k for k, p in enumerate(parts) if isinstance(p, tuple) and p[0] != "f"]
    result = list(parts)
    if not tokens:
        return result
    for before, k, after in zip([None, *tokens[:-1]], tokens, [*tokens[1:], None], strict=True):
        letter, length = parts[k]  # type: ignore[misc]
        if letter != "m" or length > 2:
            continue
        after_hour = before is not None and parts[before][0] == "h"  # type: ignore[index]
        before_second = after is not None and parts[after][0] == "s"  # type: ignore[index]
        if after_hour or before_second:
            result[k] = ("M", length)
    return result


def _as_datetime(value: datetime | date | time) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    return datetime.combine(date(1899, 12, 31), value)  # Excel's day 0


def _rounded(moment: datetime, digits: int) -> datetime:
    """Rounded to the precision shown, as Excel does (9:30:05.6 shows as 9:30:06)."""
    step = 10 ** (6 - digits)
    micro = moment.microsecond
    rounded = (micro + step // 2) // step * step
    return moment.replace(microsecond=0) + timedelta(microseconds=rounded)


def _part(part: Part, moment: datetime, twelve_hour: bool) -> str:
    if isinstance(part, str):
        return part
    letter, length = part
    if letter == "h":
        hour = moment.hour % 12 or 12 if twelve_hour else moment.hour
        return f"{hour:02d}" if length > 1 else str(hour)
    if letter == "a":
        return "PM" if moment.hour >= 12 else "AM"
    if letter in "pP":
        mark = "P" if moment.hour >= 12 else "A"
        return mark.lower() if letter == "p" else mark
    if letter == "f":
        return "." + f"{moment.microsecond:06d}"[:length]
    renderings = RENDER[letter]
    return renderings[min(length, len(renderings)) - 1](moment)


@dataclass(frozen=True)
class DateChoice:
    """The user's strftime patterns (--date-format, --time-format); given, they win."""

    date_format: str | None = None  # for every cell that shows a date (with or without time)
    time_format: str | None = None  # for every cell that shows only a time of day

    def text(self, value: object, shown: DateFormat) -> str | None:
        """A date or time cell's text; None when neither a pattern nor its format says it."""
        if not isinstance(value, datetime | date | time):
            return None  # an elapsed time (timedelta): no pattern applies
        as_date = shown.shows_date or (not shown.shows_time and not isinstance(value, time))
        pattern = self.date_format if as_date else self.time_format
        if pattern:
            return value.strftime(pattern)
        return shown.render(value) if shown.faithful else None
