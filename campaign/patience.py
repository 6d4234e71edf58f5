"""How long a run waits for a store that failed in a way that may pass.

Every store call of a run goes through `StorePatience.call`, one at a time and in the
order they were made: outcomes held while the store is down are written in the order
they came, each once. A call that finds the store unavailable (`StoreUnavailable`) is
tried again with backoff until the store answers, or until `patience` seconds have
passed since it first failed. Then the run gives up: every later call fails at once,
and each caller keeps what it could not write.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from campaign.errors import StoreUnavailable

DEFAULT_PATIENCE = 120.0  # seconds a run waits for its store before it gives up
FIRST_WAIT = 0.05  # seconds before the first retry; doubles each time
LONGEST_WAIT = 2.0

T = TypeVar("T")
log = logging.getLogger(__name__)


class StorePatience:
    """The one place that decides how long to wait for the store, and says so once."""

    def __init__(self, patience: float = DEFAULT_PATIENCE) -> None:
        self.patience = patience
        self.gave_up: StoreUnavailable | None = None  # set once the store stayed down too long
        self._down_since: float | None = None  # monotonic time of the outage's first failure
        self._one_at_a_time = anyio.Lock(fast_acquire=True)  # FIFO: calls keep their order

    @property
    def waiting(self) -> bool:
        """The store failed and has not answered since: nothing new may be sent."""
        return self._down_since is not None or self.gave_up is not None

    async def call(
        self,
        fn: Callable[..., T | Awaitable[T]],
        *args: Any,
        retry: bool = True,
        read: bool = False,
        **kwargs: Any,
    ) -> T:
        """`fn(*args, **kwargs)` once the calls before it are done, retried while the store is down.

        Raises StoreUnavailable when the run has given up on the store, or at the first
        failure with `retry=False` (for a call that must not simply be repeated). A `read`
        that works does not end an outage: a full SQLite disk still reads.
        """
        async with self._one_at_a_time:
            wait = FIRST_WAIT
            while True:
                if self.gave_up is not None:
                    raise self.gave_up
                try:
                    result = fn(*args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                except StoreUnavailable as exc:
                    self._failed(exc)
                    if not retry:
                        raise
                    await self._pause(wait, exc)
                    wait = min(wait * 2, LONGEST_WAIT)
                else:
                    if not read:
                        self._answered()
                    return result  # type: ignore[return-value]

    def _failed(self, exc: StoreUnavailable) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "the store is unavailable (%s): sending is paused, and what the API answers "
                "is held in memory while the store is tried again for up to %g s",
                exc.reason,
                self.patience,
            )

    async def _pause(self, wait: float, exc: StoreUnavailable) -> None:
        """Sleep before the next try; give up once the patience is spent."""
        assert self._down_since is not None
        left = self._down_since + self.patience - time.monotonic()
        if left <= 0:
            self.gave_up = StoreUnavailable(
                f"the store stayed unavailable for {self.patience:g} s ({exc.reason})",
                reason=exc.reason,
            )
            raise self.gave_up
        await anyio.sleep(min(wait, left))

    def _answered(self) -> None:
        if self._down_since is not None:
            log.info("the store is back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
