"""At most `rate` requests in any rolling second, for the whole account.

Both limiters space requests at least `interval` = (1 + margin) / rate apart, so any
one-second window holds at most `rate` of them; `margin` leaves room for jitter between
our clock and the server's. Neither ever lets a burst through.

- `RateLimiter` spaces the requests of one process. `AsyncLimiter(rate, 1)` would not
  do: a leaky bucket of size `rate` lets `rate` through at once after an idle spell and
  then one every 1/rate s, 2*rate-1 in the first second. A bucket of size one,
  `AsyncLimiter(1, interval)`, cannot burst.
- `AccountLimiter` books turns in the store, so that every run on the same account —
  in this process or another, now or a moment ago — shares one pace, and a 429's
  Retry-After pauses them all.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

import anyio
from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from campaign.store import Store

DEFAULT_MARGIN = 0.015  # 15 ms of slack per second for the server's jitter: 4.93/s at 5
LEAD = 0.01  # an idle account's next turn is booked this far ahead, to absorb the booking
LATE = 0.003  # a booking that comes back later than this after its turn is given up
USUAL = 20  # requests over which "usually late by" is the least lateness seen


class Limiter(Protocol):
    async def wait_turn(self) -> float:
        """Return when the next request may leave; the value names the turn."""

    def left(self, turn: float, at: float) -> None:
        """The request of `turn` was written out at `at` (epoch seconds)."""

    async def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a 429's Retry-After)."""


def interval_for(rate: float, margin: float = DEFAULT_MARGIN) -> float:
    if rate <= 0:
        raise ValueError("rate must be positive")
    return (1.0 + margin) / rate


class RateLimiter:
    """Spaces one process's requests evenly; pauses them all on a 429."""

    def __init__(self, rate: float, *, margin: float = DEFAULT_MARGIN) -> None:
        self.rate = rate
        self.interval = interval_for(rate, margin)
        self._bucket = AsyncLimiter(1, self.interval)
        self._resume_at = 0.0

    async def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a 429's Retry-After)."""
        self._resume_at = max(self._resume_at, anyio.current_time() + seconds)

    async def wait_unpaused(self) -> None:
        """Return once no pause is in force."""
        while (wait := self._resume_at - anyio.current_time()) > 0:
            await anyio.sleep(wait)

    async def wait_turn(self) -> float:
        """Return when the next request may leave: call it right before sending."""
        while True:
            await self.wait_unpaused()
            await self._bucket.acquire()
            if self._resume_at <= anyio.current_time():
                return time.time()
            # A 429 came in while we waited for the bucket: honour it first.

    def left(self, turn: float, at: float) -> None:
        """Nothing to do: the bucket counts from when it let a request go."""


class AccountLimiter:
    """Spaces the requests of every run on one account, through turns booked in the store."""

    def __init__(
        self, store: Store, account: str, rate: float, *, margin: float = DEFAULT_MARGIN
    ) -> None:
        self.store = store
        self.account = account  # a hash naming the account; never the key itself
        self.rate = rate
        self.interval = interval_for(rate, margin)
        self._lateness: deque[float] = deque(maxlen=USUAL)

    async def pause(self, seconds: float) -> None:
        """Hold every run on this account for `seconds` from now."""
        self.store.pause_account(self.account, seconds)

    async def wait_turn(self) -> float:
        """Book the account's next turn and sleep until it comes."""
        while True:
            turn = self.store.book_turn(self.account, self.interval, LEAD)
            wait = turn - time.time()
            if wait >= 0:
                await anyio.sleep(wait)
                return turn
            if -wait <= LATE:
                return turn
            # The booking itself took too long: using this turn now would crowd the next.

    def left(self, turn: float, at: float) -> None:
        """A request that left later than usual pushes every later turn back by as much.

        Every request leaves a little after its turn (waking up, writing); only how much
        later than usual matters: turns are booked `interval` apart, so the request
        `rate` turns after a late one would otherwise land within one second of it.
        """
        late = at - turn
        self._lateness.append(late)
        if (extra := late - min(self._lateness)) > 0.001:
            self.store.delay_turns(self.account, extra)
