"""Claim pending rows, hold the rate, send, and record each fate.

Store calls run on the event loop's own thread: they take a millisecond or two, between
sends, while a worker thread holding the GIL would delay the sends themselves by several
(enough to crowd a server's one-second window).

One loop takes rows in spreadsheet order and launches each send as its own task, so
that many requests can be in flight while they leave no faster than the limiter allows.
For every row, in this order: commit `sending`, take a turn from the limiter (after any
429 pause), send, record. The loop moves to the next row only once this one's request
has left, so a crash leaves just the requests in flight, and at most one waiting for
its turn, to be marked `unknown`. Stopping or halting ends every wait at once: for a
turn, for a 429's pause, for a retry.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus

from campaign.client import AutocallsClient
from campaign.errors import AccountPaused
from campaign.model import Fate, RowEvent, RowState, SendOutcome
from campaign.outcomes import fate_of
from campaign.store import CampaignInfo, RowToSend, Store

BATCH = 200  # pending rows read from the store at a time
IDLE_CHECK = 0.5  # seconds between looks at the store while only retries are waiting

ROW_STATE_OF_FATE = {
    Fate.SENT: RowState.SENT,
    Fate.FAILED: RowState.FAILED,
    Fate.UNKNOWN: RowState.UNKNOWN,
    Fate.RETRY: RowState.PENDING,
    Fate.HALT: RowState.PENDING,  # not the row's fault: it waits for the fix
}


@dataclass(frozen=True)
class DispatchSettings:
    max_in_flight: int = 32
    max_attempts: int = 5  # requests per row that were certainly not processed
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 60.0
    breaker: int = 10  # this many rows in a row failing with one code halt the campaign


@dataclass
class DispatchResult:
    halt_reason: str | None = None
    stopped: bool = False  # asked to stop (Ctrl-C, lost lease): the rest stays pending


class Dispatcher:
    """Sends one campaign's pending rows; `stop()` and `halt()` end it cleanly."""

    def __init__(
        self,
        store: Store,
        client: AutocallsClient,
        campaign: CampaignInfo,
        settings: DispatchSettings = DispatchSettings(),
        on_row: Callable[[RowEvent], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.campaign = campaign
        self.settings = settings
        self.on_row = on_row or (lambda event: None)
        self.result = DispatchResult()
        self._slots = anyio.Semaphore(settings.max_in_flight)
        self._in_flight = 0
        self._queue: deque[RowToSend] = deque()
        self._changed = anyio.Event()
        self._streak: tuple[str | None, int] = (None, 0)

    def stop(self) -> None:
        """Launch nothing more; requests in flight finish and are recorded."""
        self.result.stopped = True
        self._end_waits()

    def halt(self, reason: str) -> None:
        """Stop because of an account-level problem; the first reason wins."""
        if self.result.halt_reason is None:
            self.result.halt_reason = reason
        self._end_waits()

    def _end_waits(self) -> None:
        """Whatever waits (a turn, a 429's pause, a retry) stops waiting now."""
        if self.client.limiter is not None:
            self.client.limiter.interrupt()
        self._changed.set()

    @property
    def ending(self) -> bool:
        return self.result.stopped or self.result.halt_reason is not None

    async def run(self) -> DispatchResult:
        """Send until no row is pending, or until stopped or halted."""
        async with anyio.create_task_group() as tasks:
            while (row := await self._next_row()) is not None:
                await self._slots.acquire()
                self._in_flight += 1
                # Returns once this row's request has been written out: one row at a time
                # waits for its turn, and nothing else runs on the loop while it leaves.
                if not await tasks.start(self._send, row):
                    break
        return self.result

    async def _next_row(self) -> RowToSend | None:
        """The next due row; waits while only retries or sends in flight remain."""
        while not self.ending:
            if self._queue:
                return self._queue.popleft()
            self._queue.extend(self.store.due_rows(self.campaign.id, BATCH))
            if self._queue:
                continue
            next_at = self.store.next_retry_at(self.campaign.id)
            if next_at is None and self._in_flight == 0:
                return None
            wait = IDLE_CHECK if next_at is None else min(IDLE_CHECK, next_at - time.time())
            with anyio.move_on_after(max(wait, 0.0)):
                await self._changed.wait()
            self._changed = anyio.Event()
        return None

    async def _send(
        self, row: RowToSend, *, task_status: TaskStatus[bool] = TASK_STATUS_IGNORED
    ) -> None:
        try:
            attempt = self.store.mark_sending(row.id)
            try:
                outcome = await self.client.send_template(
                    self.campaign.sender_id,
                    self.campaign.template_id,
                    row.recipient,
                    before_send=lambda: not self.ending,
                    on_written=lambda: task_status.started(not self.ending),
                )
            except AccountPaused as exc:  # the API paused the account for too long
                self.halt(str(exc))
                outcome = None
            if outcome is None:  # not sent: halted or stopped while it waited for its turn
                self.store.unmark_sending(row.id)
            else:
                await self._record(row, attempt, outcome)
        finally:
            self._finished()

    def _finished(self) -> None:
        self._in_flight -= 1
        self._slots.release()
        self._changed.set()

    async def _record(self, row: RowToSend, attempt: int, outcome: SendOutcome) -> None:
        fate = fate_of(outcome)
        state = ROW_STATE_OF_FATE[fate]
        retry_at = None
        if fate is Fate.RETRY:
            if attempt >= self.settings.max_attempts:
                state = RowState.FAILED  # with the last reason it was refused for
            else:
                retry_at = time.time() + await self._retry_delay(attempt, outcome)
        self.store.record(
            self.campaign.id, row.id, attempt, outcome, fate, state=state, retry_at=retry_at
        )
        if fate is Fate.HALT:
            code = outcome.error_code or f"HTTP {outcome.http_status}"
            self.halt(f"{code}: {outcome.error_message}")
        self._watch_streak(fate, outcome)
        self.on_row(RowEvent(row.recipient.row, state, outcome.error_code))

    async def _retry_delay(self, attempt: int, outcome: SendOutcome) -> float:
        """Retry-After when the server gave one (and pause everyone), else backoff with jitter."""
        if outcome.http_status == 429:
            wait = outcome.retry_after if outcome.retry_after is not None else 1.0
            if self.client.limiter is not None:  # a 429 pauses every sender of the account
                try:
                    await self.client.limiter.pause(wait)
                except AccountPaused as exc:  # too long to wait unattended
                    self.halt(str(exc))
            return wait
        ceiling = min(self.settings.backoff_cap, self.settings.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _watch_streak(self, fate: Fate, outcome: SendOutcome) -> None:
        """The circuit breaker: many rows in a row failing alike point at the campaign."""
        if fate is Fate.SENT:
            self._streak = (None, 0)
            return
        if fate not in (Fate.FAILED, Fate.UNKNOWN):
            return
        code, count = self._streak
        count = count + 1 if outcome.error_code == code else 1
        self._streak = (outcome.error_code, count)
        if count >= self.settings.breaker:
            self.halt(
                f"{count} rows in a row ended {fate} with {outcome.error_code}: the fault "
                "is likely in the campaign, not the rows"
            )
