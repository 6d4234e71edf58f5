"""At most `rate` requests in any rolling second, for the whole account.

Every request of every run on an account (sends, and the reads of preflight and of
`validate`; in this process or another, on this host or another sharing the store)
takes a turn that `AccountLimiter` books in the store.

The server allows at most `rate` arrivals in any rolling second: arrival(k + rate) -
arrival(k) must exceed one second. The store keeps a short log of the account's turns:
when each was planned, and when its request was written out. Turn k goes at the latest
of (`plan_turn`):

- now + LEAD, and the end of any pause a 429 set;
- planned(k - 1) + W / rate: even spacing from the planned times, so the millisecond or
  two every request is late by does not add up from turn to turn;
- left(k - rate) + W, where `left` is when that request was written out, less the
  lateness every request has (the least of the recent turns', at most TOLERANCE; else
  turns would drift by it once per window): a request that left later than usual
  pushes the turns after it by as much, once, and no more. Before its write is known,
  its plan stands in;

where W = 1 s + guard. The guard covers what we cannot see: the network delays some
requests more than others on their way in. It is learned, and shared by every run of the
account: a 429 widens it by GUARD_WIDEN, each booking narrows it by GUARD_NARROW, so it
settles where about one request in GUARD_WIDEN / GUARD_NARROW (2000) meets a 429. With
up to 40 ms of random delay on the way in, that is near 38 ms: 4.8 requests/s at 5.

A turn is used on time or not at all. Turns booked by others meanwhile assumed it would
leave on time, so a request that wakes up later than its turn by more than TOLERANCE
(a frozen process, a busy machine), or is ready to write more than WRITE_TOLERANCE late
(its connection took long to open), gives the turn back and books another. Just before
its turn it also looks for a pause set since it booked (another request's 429).

Times in the store are the database's clock: one clock, whichever host asks. Each store
call that reads it says how it compares to ours (`ClockReading`); turns are handed out
on our clock, converted with the reading of the shortest round trip.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from campaign.errors import AccountPaused, StoreUnavailable

if TYPE_CHECKING:
    from campaign.store import ClockReading, Pace, Store

LEAD = 0.01  # an idle account's next turn is this far ahead, to absorb the booking itself
TOLERANCE = 0.005  # a turn woken up to later than this is given back
WRITE_TOLERANCE = 0.015  # ...and one about to be written later than this (connection set-up)
CHECK_AHEAD = 0.01  # wake this long before a turn to look for a pause set since booking
LONGEST_WAIT = 15 * 60.0  # a longer wait (a 429's Retry-After) halts the run instead

GUARD_START = 0.01  # seconds; at 5/s with no jitter: 4.95/s
GUARD_MIN = 0.005
GUARD_MAX = 0.25
GUARD_WIDEN = 0.02  # per 429 (once per burst: see Store.pause_account)
GUARD_NARROW = 0.00001  # per booking

CLOCK_READINGS = 20  # recent readings of the database's clock; the best one is used

log = logging.getLogger("campaign.limiter")


class Interrupted(Exception):
    """The run is ending (Ctrl-C, a halt): no turn is given, and none is waited for."""


@dataclass(frozen=True)
class Turn:
    id: int
    at: float  # our clock (time.time())


def requests_per_window(rate: float) -> int:
    """How many requests one rolling second may hold."""
    return max(1, math.floor(rate + 1e-9))


def interval_for(rate: float, guard: float = GUARD_START) -> float:
    """The spacing of turns at `rate` while the account is busy."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return (1.0 + guard) / rate


def plan_turn(pace: Pace, rate: float, lead: float = LEAD) -> tuple[float, float]:
    """Where the account's next turn goes, and its guard after this booking (see above)."""
    guard = max(GUARD_MIN, pace.guard - GUARD_NARROW)
    window = 1.0 + guard
    at = max(pace.now + lead, pace.paused_until)
    if pace.recent:
        at = max(at, pace.recent[0].planned + window / rate)
    n = requests_per_window(rate)
    if len(pace.recent) >= n:
        usual = min(
            (t.written - t.planned for t in pace.recent if t.written is not None), default=0.0
        )
        oldest = pace.recent[n - 1]
        left = (oldest.written or 0.0) - min(TOLERANCE, max(0.0, usual))
        at = max(at, max(oldest.planned, left) + window)
    return at, guard


def widened(guard: float) -> float:
    """The guard after a 429."""
    return min(GUARD_MAX, guard + GUARD_WIDEN)


class AccountLimiter:
    """Gives out the turns of one account, booked in the store; see the module's docstring."""

    def __init__(self, store: Store, account: str, rate: float) -> None:
        interval_for(rate)  # refuses a rate of zero
        self.store = store
        self.account = account  # a hash naming the account; never the key itself
        self.rate = rate
        self._readings: deque[ClockReading] = deque(maxlen=CLOCK_READINGS)
        self._ending = anyio.Event()

    @property
    def offset(self) -> float:
        """The database's clock minus ours, from the reading with the shortest round trip."""
        if not self._readings:
            return 0.0
        return min(self._readings, key=lambda reading: reading.rtt).offset

    def interrupt(self) -> None:
        """The run is ending: every wait for a turn ends at once, and no turn is given."""
        self._ending.set()

    async def wait_turn(self) -> Turn:
        """Book the account's next turn and sleep until it comes; raise Interrupted if ending."""
        while True:
            if self._ending.is_set():
                raise Interrupted
            # Twice the window's turns: the window's first, and enough to know the usual.
            newest = 2 * requests_per_window(self.rate)
            booking = self.store.book_turn(self.account, newest, self._plan)
            self._readings.append(booking.clock)
            turn = Turn(booking.turn_id, booking.at - self.offset)
            try:
                usable = await self._wait_for(turn, booking.at)
            except BaseException:
                self.release(turn)
                raise
            if usable:
                return turn
            self.release(turn)

    async def confirm(self, turn: Turn) -> Turn:
        """Right before writing: a turn missed by now is given back, and another awaited."""
        if time.time() - turn.at <= WRITE_TOLERANCE:
            return turn
        self.release(turn)
        return await self.wait_turn()

    def left(self, turn: Turn, at: float) -> None:
        """The request of `turn` was written out at `at` (our clock). Never raises.

        It is called while the request is on the wire: a store error here must not cut
        the request short. Unrecorded, the turn's plan stands in for its write time.
        """
        try:
            self.store.turn_written(turn.id, at + self.offset)
        except StoreUnavailable as exc:
            # Debug only: the run's patience says once that the store is down (patience.py).
            log.debug("could not record when a request left (%s); pacing on its plan", exc.reason)

    def release(self, turn: Turn) -> None:
        """The request of `turn` will not leave."""
        self.store.release_turn(turn.id)

    async def pause(self, seconds: float, *, rate_limited: bool = True) -> None:
        """Hold every run of the account for `seconds` (a Retry-After); a 429 widens the guard.

        A wait longer than LONGEST_WAIT raises AccountPaused: a run halts rather than
        sleep unattended for hours (the pause stays recorded for every run).
        """
        self.store.pause_account(self.account, seconds, widened if rate_limited else None)
        if seconds > LONGEST_WAIT:
            raise AccountPaused(
                f"the API asked to wait {_duration(seconds)} before the next request "
                f"(Retry-After: {seconds:.0f} s), longer than a run waits unattended "
                f"({_duration(LONGEST_WAIT)}); run again after {_clock_time(seconds)}"
            )

    def _plan(self, pace: Pace) -> tuple[float, float]:
        return plan_turn(pace, self.rate)

    async def _wait_for(self, turn: Turn, at: float) -> bool:
        """Sleep until `turn`; False if it cannot be used (a pause came, or we woke late)."""
        wait = turn.at - time.time()
        if wait > LONGEST_WAIT:
            raise AccountPaused(
                f"the API paused this account (a 429's Retry-After) for {_duration(wait)} "
                f"more, longer than a run waits unattended ({_duration(LONGEST_WAIT)}); "
                f"run again after {_clock_time(wait)}"
            )
        await self._sleep_until(turn.at - CHECK_AHEAD)
        paused_until, clock = self.store.account_pause(self.account)
        self._readings.append(clock)
        if paused_until > at:
            return False  # a 429 came since we booked: its pause holds this turn too
        await self._sleep_until(turn.at)
        return time.time() - turn.at <= TOLERANCE

    async def _sleep_until(self, when: float) -> None:
        """Sleep until `when` (our clock); raise Interrupted at once if the run ends."""
        with anyio.move_on_after(max(0.0, when - time.time())):
            await self._ending.wait()
        if self._ending.is_set():
            raise Interrupted


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _clock_time(seconds: float) -> str:
    return (datetime.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M")
