"""Each recipient's daytime: send only while the recipient's local time is in a window.

A recipient's time zones come from the number (phonenumbers' `timezone` module). A
number may map to several zones (a country's mobiles, say): the window must then hold in
all of them at once. Where none is known, or where the zones never share an open moment,
`--default-timezone` decides; without it the row is sent, with one warning per country
code in the log.

Times are epoch seconds (UTC); local times come from zoneinfo, so a window follows the
local clock through DST changes: it is tested on the wall clock of the instant itself,
never on a fixed offset.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers import timezone as phone_zones
from phonenumbers.tzdata import TIMEZONE_DATA

from campaign.errors import UsageError

UNKNOWN_ZONE = "Etc/Unknown"  # phonenumbers' word for "no zone known"
SEARCH_DAYS = 8  # how far ahead a common open moment is looked for (a week and a DST change)
WINDOW = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
log = logging.getLogger("campaign.daytime")


@dataclass(frozen=True)
class SendWindow:
    """A daily window of local time, [start, end) in minutes after midnight.

    It may cross midnight: 20:00-08:00 is open in the evening and the early morning.
    """

    start: int
    end: int

    @classmethod
    def parse(cls, text: str, option: str = "--send-window") -> SendWindow:
        """From HH:MM-HH:MM; anything else is one UsageError line."""
        match = WINDOW.fullmatch(text.strip().replace(" ", ""))
        minutes = None
        if match:
            h1, m1, h2, m2 = map(int, match.groups())
            if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
                minutes = (h1 * 60 + m1, h2 * 60 + m2)
        if minutes is None:
            raise UsageError(
                f"{option} must be HH:MM-HH:MM in the recipient's local time, such as "
                f"09:00-20:00 (or 20:00-08:00 across midnight), not {text!r}"
            )
        if minutes[0] == minutes[1]:
            raise UsageError(f"{option} {text!r} is empty: its start and end are the same")
        return cls(*minutes)

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def holds_at(self, local: datetime) -> bool:
        """Whether a local wall-clock time is inside the window."""
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # across midnight

    def opens_on(self, day: date, zone: ZoneInfo) -> datetime:
        """The window's start on that local day, as an aware time in `zone`."""
        return datetime.combine(day, time(self.start // 60, self.start % 60), zone)


def zones_of(phone: str) -> tuple[str, ...]:
    """The time zones of a valid E.164 number; () when none is known.

    Most countries' numbers all map to one set of zones: those need no parsing (a
    million rows are checked at the start of every run).
    """
    shared = _shared_zones().get(_calling_code(phone[1:]))
    if shared is not None:
        return shared
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in phone_zones.time_zones_for_number(number) if z != UNKNOWN_ZONE)


@lru_cache(maxsize=1)
def _shared_zones() -> dict[str, tuple[str, ...]]:
    """Calling codes whose every prefix in phonenumbers' zone data maps to the same zones.

    Calling codes are prefix-free, so the prefixes starting with one are all its own.
    """
    found: dict[str, set[tuple[str, ...]]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        code = _calling_code(prefix)
        if code is not None:
            found.setdefault(code, set()).add(zones)
    return {
        code: next(iter(sets))
        for code, sets in found.items()
        if len(sets) == 1 and UNKNOWN_ZONE not in next(iter(sets))
    }


def _calling_code(digits: str) -> str | None:
    """The country calling code that starts these digits (1 to 3 of them), if any."""
    for length in (1, 2, 3):
        if digits[:length].isdigit() and int(digits[:length]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:length]
    return None


def is_open(window: SendWindow, zones: Iterable[str], now: float) -> bool:
    """Whether the window holds in every one of `zones` at `now`."""
    instant = datetime.fromtimestamp(now, UTC)
    return all(window.holds_at(instant.astimezone(_zone(z))) for z in zones)


def next_open(window: SendWindow, zones: Iterable[str], now: float) -> float | None:
    """None if the window is open now in ALL the zones; else the earliest time (epoch
    seconds) when it is. Raises NeverOpen if no such time comes within SEARCH_DAYS.

    Each zone's next opening is a lower bound of the common one: jump to the latest of
    them and look again, until every zone is open at once.
    """
    zones = tuple(zones)
    at = now
    limit = now + SEARCH_DAYS * 86400
    while at <= limit:
        latest = max((_next_open_in(window, _zone(z), at) for z in zones), default=at)
        if latest == at:
            return None if at == now else at
        at = latest
    raise NeverOpen(zones)


class NeverOpen(Exception):
    """The window never holds in all of a number's zones at once."""

    def __init__(self, zones: tuple[str, ...]) -> None:
        super().__init__(", ".join(zones))
        self.zones = zones


def _next_open_in(window: SendWindow, zone: ZoneInfo, at: float) -> float:
    """`at` if the window is open in `zone` then; else the next moment it opens there."""
    local = datetime.fromtimestamp(at, UTC).astimezone(zone)
    if window.holds_at(local):
        return at
    # The next start on the local clock, today or tomorrow (a start passed over by DST
    # opens when the clocks jump); a day whose start opens nothing there is passed over.
    for days in range(3):
        for opens in _starts(window, local.date() + timedelta(days=days), zone):
            if opens > at and window.holds_at(datetime.fromtimestamp(opens, UTC).astimezone(zone)):
                return opens
    return at + 86400  # no opening within two days (a window that DST skips): look later


def _starts(window: SendWindow, day: date, zone: ZoneInfo) -> list[float]:
    """When the window starts on that local day: its start, or if a DST change skips
    that wall time, every minute of the gap (the first one open is when it opens)."""
    start = window.opens_on(day, zone)
    before, after = start.timestamp(), start.replace(fold=1).timestamp()
    if after >= before:  # the wall time exists (once, or twice: the first is the start)
        return [before]
    return [after + 60 * minute for minute in range(int(before - after) // 60 + 1)]


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str, option: str = "--default-timezone") -> str:
    """A time zone name zoneinfo knows, such as Europe/London; else one UsageError line."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"{option} must be a time zone name such as Europe/London or America/New_York, "
            f"not {name!r}"
        ) from None
    return name


def when_text(at: float, zones: Iterable[str] = ()) -> str:
    """2026-12-01 00:00 UTC (09:00 in Asia/Tokyo): a time as a person checks it."""
    instant = datetime.fromtimestamp(at, UTC)
    text = instant.strftime("%Y-%m-%d %H:%M UTC")
    zones = tuple(zones)
    if zones:
        local = instant.astimezone(_zone(zones[0]))
        more = f" and {len(zones) - 1} more zones" if len(zones) > 1 else ""
        text += f" ({local:%H:%M} in {zones[0]}{more})"
    return text


@dataclass
class Daytime:
    """A run's send window: for each row, the zones it is judged in and when it may go.

    `default_zone` stands for numbers with no known zone (or zones that never share an
    open moment); without it such a row is sent, and the log says so once per country
    code.
    """

    window: SendWindow
    default_zone: str | None = None
    _warned: set[str] = field(default_factory=set)
    # The last instant's answers by zone set: the rows of a page share most of them.
    _answers: dict[tuple[str, ...], float | None] = field(default_factory=dict)
    _answers_at: float | None = None

    def zones(self, phone: str) -> tuple[str, ...]:
        """The zones the window must hold in for this number; () means send at any time."""
        found = zones_of(phone)
        if found:
            return found
        return self._fallback(phone, "no time zone is known")

    def opens(self, phone: str, now: float) -> float | None:
        """None: the row may go now. Else when its recipient's window opens."""
        return self.decide(phone, now)[0]

    def decide(self, phone: str, now: float) -> tuple[float | None, tuple[str, ...]]:
        """When the row may go (None: now), and the zones that decided it."""
        if now != self._answers_at:
            self._answers, self._answers_at = {}, now
        zones = self.zones(phone)
        if zones not in self._answers:
            try:
                self._answers[zones] = next_open(self.window, zones, now)
            except NeverOpen:
                why = f"the send window {self.window} never holds in all of their time zones"
                zones = self._fallback(phone, why)
                return next_open(self.window, zones, now), zones
        return self._answers[zones], zones

    def _fallback(self, phone: str, why: str) -> tuple[str, ...]:
        if self.default_zone is not None:
            return (self.default_zone,)
        code = _country_code(phone)
        if code not in self._warned:
            self._warned.add(code)
            log.warning(
                "for numbers of +%s %s: they are sent at any time (--default-timezone "
                "would decide)",
                code,
                why,
            )
        return ()


def _country_code(phone: str) -> str:
    try:
        return str(phonenumbers.parse(phone).country_code)
    except phonenumbers.NumberParseException:
        return "?"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class DaytimeWait:
    """Rows that wait for their recipients' daytime: how many, and when the first goes."""

    rows: int
    at: float  # epoch seconds
    zones: tuple[str, ...] = ()  # the first one's zones, for its local time

    def __str__(self) -> str:
        rows = "1 row waits" if self.rows == 1 else f"{self.rows} rows wait"
        return f"{rows} for their recipients' daytime, the next at {when_text(self.at, self.zones)}"
