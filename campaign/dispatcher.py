"""Claim pending rows, hold the rate, send, and record each fate.

Store calls run on the event loop's own thread: they take a millisecond or two, between
sends, while a worker thread holding the GIL would delay the sends themselves by several
(enough to crowd a server's one-second window).

One loop takes rows in spreadsheet order and launches each send as its own task, so
that many requests can be in flight while they leave no faster than the limiter allows.
For every row, in this order: claim it (commit `sending`, unless the eligibility rules
refuse it: suppressed, already sent, over the frequency cap; then it is skipped, with no
request and no turn), take a
turn from the limiter (after any 429 pause), send, record. The loop moves to the next
row only once this one's request has left, so a crash leaves just the requests in
flight, and at most one waiting for its turn, to be marked `unknown`.

Every store call goes through one `StorePatience`: when the store fails in a way that
may pass, nothing new is sent, requests in flight finish, and their outcomes wait in
memory (in order) until the store is back. If it stays down, the run gives up and
`DispatchResult.unrecorded` lists what could not be written.

Stopping or halting ends every wait at once: for a turn, for a 429's pause, for a retry,
for a recipient's daytime.

With a send window (daytime.py), each row is checked just before it is claimed: a row
outside its recipient's window stays pending, deferred to when it opens, without an
attempt. Deferrals are written a batch at a time, and a first pass defers every closed
row before anything is sent (a million rows started at night cost a few thousand
commits, none of them durable). When only such rows remain, the run ends "for now"
(`DispatchResult.daytime`), or with `wait_for_daytime` sleeps until the next opens.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus

from campaign.client import AutocallsClient
from campaign.daytime import Daytime, DaytimeWait, when_text
from campaign.eligibility import Cap, Eligibility
from campaign.errors import AccountPaused, StoreUnavailable
from campaign.model import SEND_WINDOW, Fate, RowEvent, RowState, SendOutcome
from campaign.outcomes import fate_of
from campaign.patience import StorePatience
from campaign.store import DEFAULT_DEDUPE_WINDOW, CampaignInfo, Deferral, RowToSend, Store

BATCH = 200  # pending rows read from the store at a time
IDLE_CHECK = 0.5  # seconds between looks at the store while only retries are waiting
DAYTIME_PASS = 2000  # pending rows checked against their send window per commit, at start
DAYTIME_CHECK = 60.0  # seconds between looks at the clock while waiting for a daytime

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
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW  # seconds; 0: no guard (see eligibility.py)
    max_per_recipient: Cap | None = None  # the frequency cap (see eligibility.py)
    daytime: Daytime | None = None  # the recipients' send window; None: send at any hour
    wait_for_daytime: bool = False  # sleep until a window opens instead of ending for now


@dataclass
class DispatchResult:
    halt_reason: str | None = None
    stopped: bool = False  # asked to stop (Ctrl-C): the rest stays pending
    lease_lost: bool = False  # another run took the campaign: it sends the rest
    store_failure: StoreUnavailable | None = None  # the store stayed down: the run gave up
    unrecorded: list[dict[str, object]] = field(default_factory=list)  # what it could not write
    daytime: DaytimeWait | None = None  # finished for now: only these rows remain, waiting


class Dispatcher:
    """Sends one campaign's pending rows; `stop()` and `halt()` end it cleanly."""

    def __init__(
        self,
        store: Store,
        client: AutocallsClient,
        campaign: CampaignInfo,
        settings: DispatchSettings = DispatchSettings(),
        on_row: Callable[[RowEvent], None] | None = None,
        patience: StorePatience | None = None,
        on_wait: Callable[[DaytimeWait | None], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.campaign = campaign
        self.settings = settings
        self.on_row = on_row or (lambda event: None)
        self.patience = patience or StorePatience()
        self.result = DispatchResult()
        self._slots = anyio.Semaphore(settings.max_in_flight)
        self._in_flight = 0
        self._queue: deque[RowToSend] = deque()
        self._changed = anyio.Event()
        self._streak: tuple[str | None, int] = (None, 0)
        self.on_wait = on_wait or (lambda wait: None)  # None: the wait is over
        self._deferred: list[tuple[int, Deferral]] = []  # (spreadsheet row, deferral) to write
        self._shown_wait: DaytimeWait | None = None
        self._reasons: dict[tuple[float, tuple[str, ...]], str] = {}  # rows share a few
        self._rules = Eligibility(settings.dedupe_window, settings.max_per_recipient)

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

    def lose_lease(self) -> None:
        """Another run has taken the campaign: launch nothing more, record what comes back."""
        self.result.lease_lost = True

    @property
    def ending(self) -> bool:
        result = self.result
        return (
            result.stopped
            or result.lease_lost
            or result.halt_reason is not None
            or self.patience.gave_up is not None
        )

    async def run(self) -> DispatchResult:
        """Send until no row is pending, or until stopped or halted."""
        if self.settings.daytime is not None:
            await self._defer_closed_rows()
        async with anyio.create_task_group() as tasks:
            while (row := await self._next_row()) is not None:
                await self._slots.acquire()
                self._in_flight += 1
                # Returns once this row's request has been written out: one row at a time
                # waits for its turn, and nothing else runs on the loop while it leaves.
                if not await tasks.start(self._send, row):
                    break
        self.result.store_failure = self.patience.gave_up
        return self.result

    async def _next_row(self) -> RowToSend | None:
        """The next due row; waits while only retries, daytimes or sends in flight remain."""
        while not self.ending:
            if self._queue:
                row = self._queue.popleft()
                if self._in_daytime(row, time.time()):
                    return row
                continue
            try:
                await self._write_deferred()  # before reading: else they come back
                due = await self.patience.call(
                    self.store.due_rows, self.campaign.id, BATCH, read=True
                )
                self._queue.extend(due)
                if self._queue:
                    continue
                next_at = await self.patience.call(
                    self.store.next_retry_at, self.campaign.id, read=True
                )
                if next_at is None and self._in_flight == 0:
                    next_at = await self._daytime_ahead()
            except StoreUnavailable:  # the run gave up on the store
                return None
            if next_at is None and self._in_flight == 0:
                return None
            wait = IDLE_CHECK if next_at is None else min(IDLE_CHECK, next_at - time.time())
            if self._shown_wait is not None:  # only daytimes remain: no need to look often
                wait = min(DAYTIME_CHECK, next_at - time.time()) if next_at else IDLE_CHECK
            with anyio.move_on_after(max(wait, 0.0)):
                await self._changed.wait()
            self._changed = anyio.Event()
        return None

    # --- each recipient's daytime -----------------------------------------------------

    def _in_daytime(self, row: RowToSend, now: float) -> bool:
        """Whether the row may go now; if not, it joins the deferrals to write."""
        daytime = self.settings.daytime
        if daytime is None:
            return True
        until, zones = daytime.decide(row.recipient.phone, now)
        if until is None:
            self._end_wait()
            return True
        why = self._reasons.get((until, zones))
        if why is None:
            why = (
                f"waits for the recipient's daytime ({daytime.window} local time): "
                f"not before {when_text(until, zones)}"
            )
            if len(self._reasons) > 1000:  # a long run's old openings
                self._reasons.clear()
            self._reasons[(until, zones)] = why
        self._deferred.append((row.recipient.row, Deferral(row.id, until, why)))
        return False

    async def _defer_closed_rows(self) -> None:
        """Before the first send, defer every pending row outside its window, page by page."""
        after = 0
        while not self.ending:
            try:
                page = await self.patience.call(
                    self.store.pending_after, self.campaign.id, after, DAYTIME_PASS, read=True
                )
                if not page:
                    return
                now = time.time()
                for row in page:
                    self._in_daytime(row, now)
                await self._write_deferred()
                await anyio.lowlevel.checkpoint()  # the lease and Ctrl-C get their turn
            except StoreUnavailable:  # the run gave up on the store: it ends
                return
            after = page[-1].recipient.row

    async def _write_deferred(self) -> None:
        """Write the deferrals gathered so far, in one transaction."""
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []
        await self.patience.call(self.store.defer_for_daytime, [d for _, d in deferred])
        for row, _ in deferred:
            self.on_row(RowEvent(row, RowState.PENDING, SEND_WINDOW))

    async def _daytime_ahead(self) -> float | None:
        """Nothing else to do: when the next row's daytime comes, if the run waits for it.

        Without `wait_for_daytime` the run is finished for now (result.daytime).
        """
        waits = await self.patience.call(self.store.daytime_waits, self.campaign.id, read=True)
        if not waits.rows or waits.next_at is None or waits.next_phone is None:
            return None
        if waits.next_at <= time.time():  # its time came while we looked: read again
            return waits.next_at
        daytime = self.settings.daytime
        zones = daytime.zones(waits.next_phone) if daytime else ()
        wait = DaytimeWait(waits.rows, waits.next_at, zones)
        if not self.settings.wait_for_daytime:
            self.result.daytime = wait
            return None
        if wait != self._shown_wait:
            self._shown_wait = wait
            self.on_wait(wait)
        return waits.next_at

    def _end_wait(self) -> None:
        if self._shown_wait is not None:
            self._shown_wait = None
            self.on_wait(None)

    async def _send(
        self, row: RowToSend, *, task_status: TaskStatus[bool] = TASK_STATUS_IGNORED
    ) -> None:
        launched = _once(task_status.started)  # lets the loop go on, once
        try:
            attempt = await self._claim(row)
            if attempt is None:
                return
            outcome = await self._request(row, on_written=lambda: launched(not self.ending))
            if outcome is None:  # halted, stopped, or the store failed while it waited its turn
                await self._unmark(row)
            else:
                await self._record(row, attempt, outcome)
        finally:
            launched(not self.ending)  # it never left: the loop goes on (or ends) all the same
            self._finished()

    async def _request(
        self, row: RowToSend, on_written: Callable[[], object]
    ) -> SendOutcome | None:
        """Send this row's message when its turn comes; None if it never left."""
        try:
            return await self.client.send_template(
                self.campaign.sender_id,
                self.campaign.template_id,
                row.recipient,
                # Nothing new leaves while the store is failing: its outcome could be lost.
                before_send=lambda: not (self.ending or self.patience.waiting),
                on_written=on_written,
            )
        except AccountPaused as exc:  # the API paused the account for too long
            self.halt(str(exc))
            return None

    async def _claim(self, row: RowToSend) -> int | None:
        """Commit `sending` and return the attempt's number; None if the row is not sent now.

        Not now: the rules skipped it (SUPPRESSED, ALREADY_SENT, FREQUENCY_CAP), the store
        failed (the row stays pending), or the row is no longer pending (another run has the
        campaign).
        """
        try:
            claim = await self.patience.call(self.store.claim, row.id, self._rules, retry=False)
        except StoreUnavailable as exc:
            if exc is not self.patience.gave_up:  # tried: the commit may have happened all the same
                await self._unmark(row)
            return None
        if claim is None:
            self.lose_lease()
            return None
        if claim.refusal is not None:
            self.on_row(RowEvent(row.recipient.row, RowState.SKIPPED, claim.code))
            return None
        return claim.attempt

    async def _unmark(self, row: RowToSend) -> None:
        """A row whose request never left goes back to pending, once the store is back."""
        try:
            await self.patience.call(self.store.unmark_sending, row.id)
        except StoreUnavailable:  # left `sending`: the next run marks it unknown
            self.result.unrecorded.append(unrecorded_line(row, RowState.PENDING, None))

    def _finished(self) -> None:
        self._in_flight -= 1
        self._slots.release()
        self._changed.set()

    async def _record(self, row: RowToSend, attempt: int, outcome: SendOutcome) -> None:
        fate = fate_of(outcome)
        state, retry_at = await self._next_state(fate, attempt, outcome)
        if fate is Fate.HALT:
            code = outcome.error_code or f"HTTP {outcome.http_status}"
            self.halt(f"{code}: {outcome.error_message}")
        self._watch_streak(state, outcome)
        try:
            await self.patience.call(
                self.store.record,
                self.campaign.id,
                row.id,
                attempt,
                outcome,
                fate,
                state=state,
                retry_at=retry_at,
            )
        except StoreUnavailable:  # the run gave up on the store: the CLI prints it instead
            self.result.unrecorded.append(unrecorded_line(row, state, outcome))
            return
        self.on_row(RowEvent(row.recipient.row, state, outcome.error_code))

    async def _next_state(
        self, fate: Fate, attempt: int, outcome: SendOutcome
    ) -> tuple[RowState, float | None]:
        """The row's state after this outcome, and when a retried row is due again."""
        if fate is not Fate.RETRY:
            return ROW_STATE_OF_FATE[fate], None
        if attempt >= self.settings.max_attempts:
            return RowState.FAILED, None  # with the last reason it was refused for
        return RowState.PENDING, time.time() + await self._retry_delay(attempt, outcome)

    async def _retry_delay(self, attempt: int, outcome: SendOutcome) -> float:
        """Retry-After when the server gave one (and pause everyone), else backoff with jitter."""
        if outcome.http_status == 429:
            wait = outcome.retry_after if outcome.retry_after is not None else 1.0
            if self.client.limiter is not None:  # a 429 pauses every sender of the account
                try:
                    await self.patience.call(self.client.limiter.pause, wait)
                except StoreUnavailable:  # the run gave up on the store: no turn is booked
                    pass
                except AccountPaused as exc:  # too long to wait unattended
                    self.halt(str(exc))
            return wait
        ceiling = min(self.settings.backoff_cap, self.settings.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _watch_streak(self, state: RowState, outcome: SendOutcome) -> None:
        """The circuit breaker: many rows in a row ending alike point at the campaign.

        A row counts once it ends failed or unknown, also after its last retry (a long
        maintenance of the API, say); a row put back to pending does not count yet.
        """
        if state is RowState.SENT:
            self._streak = (None, 0)
            return
        if state not in (RowState.FAILED, RowState.UNKNOWN):
            return
        code, count = self._streak
        count = count + 1 if outcome.error_code == code else 1
        self._streak = (outcome.error_code, count)
        if count >= self.settings.breaker:
            self.halt(
                f"{count} rows in a row ended {state} with {outcome.error_code}: the fault "
                "is likely in the campaign, not the rows"
            )


def unrecorded_line(row: RowToSend, state: RowState, outcome: SendOutcome | None) -> dict:
    """What a person needs to know of an outcome the store could not record (never the key)."""
    if outcome is None:
        return {
            "row": row.recipient.row,
            "phone": row.recipient.phone,
            "state": str(state),
            "reason": "not sent: the store failed before its request left",
        }
    accepted = "accepted by the API" if outcome.message_sid or outcome.conversation_id else None
    return {
        "row": row.recipient.row,
        "phone": row.recipient.phone,
        "state": str(state),
        "message_sid": outcome.message_sid,
        "conversation_id": outcome.conversation_id,
        "message_id": outcome.message_id,
        "whatsapp_message_id": outcome.whatsapp_message_id,
        "http_status": outcome.http_status,
        "error_code": outcome.error_code,
        "reason": outcome.error_message or accepted,
    }


def _once(call: Callable[[bool], object]) -> Callable[[bool], None]:
    """`call`, the first time only: a task's start is reported exactly once."""
    called = False

    def once(value: bool) -> None:
        nonlocal called
        if not called:
            called = True
            call(value)

    return once
