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
from dataclasses import dataclass, replace
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
# runs): a str.format field over render()'s arguments, which are
#   0 the moment, 1 its year's last two digits, 2 the month's name, 3 the day's name,
#   4 the hour on a 12-hour clock, 5 AM or PM, 6 am or pm, 7 the microseconds, 6 digits.
# A token is (letter, length); "M" is minutes, "H" the hour beside an AM/PM.
FIELDS = {
    "y": ("{1:02d}", "{1:02d}", "{0.year:04d}"),
    "e": ("{0.year}",),
    "m": ("{0.month}", "{0.month:02d}", "{2:.3}", "{2}", "{2:.1}"),
    "d": ("{0.day}", "{0.day:02d}", "{3:.3}", "{3}"),
    "h": ("{0.hour}", "{0.hour:02d}"),
    "H": ("{4}", "{4:02d}"),
    "M": ("{0.minute}", "{0.minute:02d}"),
    "s": ("{0.second}", "{0.second:02d}"),
    "a": ("{5}",),  # AM/PM
    "P": ("{5:.1}",),  # A/P
    "p": ("{6:.1}",),  # a/p
    "f": ("{7:.1}", "{7:.2}", "{7:.3}", "{7:.4}", "{7:.5}", "{7:.6}"),  # after a "."
}
MOMENTS = (datetime, date, time)  # a tuple: isinstance is slower with a union
DATE_LETTERS = "ymde"
TIME_LETTERS = "hMs"

Part = str | tuple[str, int]  # literal text, or a token (letter, run length)


@dataclass(frozen=True)
class DateFormat:
    """A compiled date/time format: render(value) gives the text Excel shows."""

    code: str
    template: str  # a str.format template (see FIELDS)
    shows_date: bool
    shows_time: bool
    why: str = ""  # why Excel's look cannot be rendered here ("" when it can)
    fraction_digits: int = 0  # of the seconds shown

    @property
    def faithful(self) -> bool:
        return not self.why

    def render(self, value: datetime | date | time) -> str:
        moment = value if value.__class__ is datetime else _as_datetime(value)
        if self.shows_time and moment.microsecond:  # a date alone is not rounded up
            moment = _rounded(moment, self.fraction_digits)
        hour, pm = moment.hour % 12 or 12, moment.hour >= 12
        return self.template.format(
            moment,
            moment.year % 100,
            MONTHS[moment.month - 1],
            DAYS[moment.weekday()],
            hour,
            "PM" if pm else "AM",
            "pm" if pm else "am",
            f"{moment.microsecond:06d}" if self.fraction_digits else "",
        )


def date_format(code: str, format_id: int | None = None) -> DateFormat:
    """The format of a cell (its number_format, and its built-in id if it has one)."""
    if format_id in LOCALE_SHORT_DATE_IDS:
        why = "the built-in short date, which each reader's Excel shows its own way"
        return replace(_compiled(code), why=why)
    return _compiled(code)


@functools.lru_cache(maxsize=1024)  # a workbook holds a few formats
def _compiled(code: str) -> DateFormat:
    parts, why = _tokens(_first_section(code))
    parts = _minutes(parts)
    tokens = [p for p in parts if isinstance(p, tuple)]
    letters = {letter for letter, _ in tokens}
    shows_date = bool(letters & set(DATE_LETTERS))
    shows_time = bool(letters & set(TIME_LETTERS + "h"))
    if not (shows_date or shows_time) and not why:
        why = "it shows no date or time"
    twelve_hour = bool(letters & set("apP"))
    template = "".join(_field(p, twelve_hour) for p in parts)
    digits = max((length for letter, length in tokens if letter == "f"), default=0)
    return DateFormat(code, template, shows_date, shows_time, why, digits)


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
                ("a", 1) if len(text) == 5 else ("p", 1) if text[0].islower() else ("P", 1)
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


def _field(part: Part, twelve_hour: bool) -> str:
    """A part as a piece of render()'s template: its text (braces doubled), or a field."""
    if isinstance(part, str):
        return part.replace("{", "{{").replace("}", "}}")
    letter, length = part
    if letter == "h" and twelve_hour:
        letter = "H"
    fields = FIELDS[letter]
    field = fields[min(length, len(fields)) - 1]
    return "." + field if letter == "f" else field


@dataclass(frozen=True)
class DateChoice:
    """The user's strftime patterns (--date-format, --time-format); given, they win."""

    date_format: str | None = None  # for every cell that shows a date (with or without time)
    time_format: str | None = None  # for every cell that shows only a time of day

    def text(self, value: object, shown: DateFormat) -> str | None:
        """A date or time cell's text; None when neither a pattern nor its format says it."""
        if not isinstance(value, MOMENTS):
            return None  # an elapsed time (timedelta): no pattern applies
        if self.date_format is None and self.time_format is None:  # most files: fast
            return None if shown.why else shown.render(value)
        as_date = shown.shows_date or (not shown.shows_time and not isinstance(value, time))
        pattern = self.date_format if as_date else self.time_format
        if pattern:
            return value.strftime(pattern)
        return None if shown.why else shown.render(value)
