"""A failing store is a pause, not a crash: the dispatcher waits it out and loses nothing.

In process against the sandbox, with a real store whose chosen calls fail the way a
store that is down fails (`FlakyStore`); test_store_faults.py breaks real ones.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from helpers import SENDER, TEMPLATE, in_process, phone

from campaign import sandbox as fake
from campaign.client import AutocallsClient
from campaign.dispatcher import Dispatcher, DispatchResult
from campaign.errors import StoreUnavailable
from campaign.limiter import AccountLimiter
from campaign.model import Recipient
from campaign.patience import StorePatience
from campaign.store import CampaignInfo, Store

pytestmark = pytest.mark.anyio

RATE = 50  # the pace is not under test here

DOWN = "down"  # the call fails before it reaches the database
LOST = "lost"  # the call is made, but its answer is lost (a commit the server got)


class FlakyStore(Store):
    """A real store whose chosen calls fail as a store that is down fails.

    `plan(method, *fates)`: the next calls of `method` go as listed (None: normally, DOWN,
    LOST), then normally again. Every call is logged with when it was made and how it went.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plans: dict[str, list[str | None]] = {}
        self.calls: list[tuple[float, str, tuple, str | None]] = []

    def plan(self, method: str, *fates: str | None) -> None:
        self.plans[method] = list(fates)

    def _call(self, method: str, *args, **kwargs):
        plan = self.plans.get(method)
        fate = plan.pop(0) if plan else None
        self.calls.append((time.monotonic(), method, args, fate))
        if fate == DOWN:
            raise StoreUnavailable("the store is unavailable (a test)", reason="a test")
        result = getattr(super(), method)(*args, **kwargs)
        if fate == LOST:
            raise StoreUnavailable("the store is unavailable (a test)", reason="a test")
        return result

    def book_turn(self, *args, **kwargs):
        return self._call("book_turn", *args, **kwargs)

    def claim(self, *args, **kwargs):
        return self._call("claim", *args, **kwargs)

    def unclaim(self, *args, **kwargs):
        return self._call("unclaim", *args, **kwargs)

    def record(self, *args, **kwargs):
        return self._call("record", *args, **kwargs)

    def failing(self, method: str) -> list[float]:
        """When the calls of `method` that failed were made."""
        return [at for at, name, _, fate in self.calls if name == method and fate]


def new_campaign(store: Store, n: int) -> CampaignInfo:
    recipients = [
        Recipient(i + 2, phone(i), f"Recipient {i}", {"1": f"R{i}", "2": "1 December 2026"})
        for i in range(n)
    ]
    return store.create_campaign(
        name="flaky",
        fingerprint="f",
        source="list.csv",
        account="a" * 32,
        sender_id=SENDER,
        template_id=TEMPLATE,
        recipients=recipients,
    )


async def dispatch(
    store: Store, campaign: CampaignInfo, sandbox: fake.Sandbox, patience: float = 10.0
) -> DispatchResult:
    """Send the campaign's pending rows as a run does, in process."""
    limiter = AccountLimiter(store, "account", RATE)
    transport = in_process(sandbox)
    async with AutocallsClient(
        fake.DEFAULT_KEY, "http://127.0.0.1", limiter=limiter, transport=transport
    ) as client:
        dispatcher = Dispatcher(store, client, campaign, patience=StorePatience(patience))
        return await dispatcher.run()


def rows(db: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT phone, state, attempts, message_sid FROM rows ORDER BY row"
        ).fetchall()


def attempt_lines(db: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT r.phone, a.number, a.fate FROM attempts a JOIN rows r ON r.id = a.row_id "
            "ORDER BY a.id"
        ).fetchall()


def assert_all_sent_once(db: str, sandbox: fake.Sandbox, n: int) -> None:
    """Every row `sent` with the sandbox's message_sid, one request and one log line each."""
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == n
    sid = {m.phone: m.message_sid for m in sandbox.messages}
    assert rows(db) == [(phone(i), "sent", 1, sid[phone(i)]) for i in range(n)]
    assert sorted(attempt_lines(db)) == sorted((phone(i), 1, "sent") for i in range(n))


async def test_a_turn_that_cannot_be_booked_leaves_its_row_pending_and_sends_it_later(db_path):
    """book_turn fails twice: that row is not `unknown`; it goes back to pending, then once."""
    store = FlakyStore.open(db_path)
    campaign = new_campaign(store, 10)
    store.plan("book_turn", None, None, DOWN, DOWN)
    sandbox = fake.Sandbox(rate=1000)
    result = await dispatch(store, campaign, sandbox)
    assert result == DispatchResult()
    assert_all_sent_once(db_path, sandbox, 10)
    assert len(store.failing("book_turn")) == 2


async def test_sending_whose_commit_answer_was_lost_is_undone_and_sent_once(db_path):
    """The claim commits but its answer is lost: the row goes back to pending, sent once."""
    store = FlakyStore.open(db_path)
    campaign = new_campaign(store, 6)
    store.plan("claim", None, LOST, DOWN)
    sandbox = fake.Sandbox(rate=1000)
    result = await dispatch(store, campaign, sandbox)
    assert result == DispatchResult()
    assert_all_sent_once(db_path, sandbox, 6)


async def test_a_result_whose_commit_answer_was_lost_is_written_again_without_a_second_line(
    db_path,
):
    """record commits but its answer is lost, twice: tried again, one log line per request."""
    store = FlakyStore.open(db_path)
    campaign = new_campaign(store, 6)
    store.plan("record", None, LOST, LOST)
    sandbox = fake.Sandbox(rate=1000)
    result = await dispatch(store, campaign, sandbox)
    assert result == DispatchResult()
    assert_all_sent_once(db_path, sandbox, 6)
    assert len(store.failing("record")) == 2


async def test_outcomes_held_while_the_store_fails_are_written_in_order_once_it_is_back(
    db_path,
):
    """record fails 5 times: nothing new leaves meanwhile; then each outcome is written once."""
    store = FlakyStore.open(db_path)
    campaign = new_campaign(store, 20)
    store.plan("record", *[None] * 5, *[DOWN] * 5)
    sandbox = fake.Sandbox(rate=1000, latency=(0.05, 0.2))
    result = await dispatch(store, campaign, sandbox)
    assert result == DispatchResult()
    assert_all_sent_once(db_path, sandbox, 20)

    down = store.failing("record")
    assert len(down) == 5
    back = next(at for at, name, _, fate in store.calls if name == "record" and at > down[-1])
    # No request left between the first failure and the store's return (those that had
    # left already were answered and held), nor was any row claimed meanwhile.
    sends = [r.time for r in sandbox.requests if r.path.endswith("/whatsapp/send")]
    assert not [t for t in sends if down[0] < t < back]
    claims = [at for at, name, _, _ in store.calls if name == "claim"]
    assert not [t for t in claims if down[0] < t < back]
    # Written in the order they came: the order of the first try of each row's record.
    first_try: dict[int, float] = {}
    written = []
    for at, name, args, fate in store.calls:
        if name == "record":
            first_try.setdefault(args[1], at)
            if fate is None:
                written.append(args[1])
    assert written == sorted(first_try, key=first_try.get)


async def test_a_store_that_stays_down_ends_the_run_with_every_outcome_in_hand(db_path):
    """record always fails after 4: the run gives up, naming each accepted message unrecorded."""
    store = FlakyStore.open(db_path)
    campaign = new_campaign(store, 30)
    store.plan("record", *[None] * 4, *[DOWN] * 1000)
    sandbox = fake.Sandbox(rate=1000, latency=(0.05, 0.2))
    started = time.monotonic()
    result = await dispatch(store, campaign, sandbox, patience=0.5)
    assert time.monotonic() - started < 10
    assert result.store_failure is not None and "0.5 s" in str(result.store_failure)
    assert sandbox.duplicates() == {}

    sid = {m.phone: m.message_sid for m in sandbox.messages}
    unrecorded = {line["phone"]: line for line in result.unrecorded}
    state = {p: s for p, s, _, _ in rows(db_path)}
    recorded = {p for p, s in state.items() if s == "sent"}
    assert len(recorded) == 4
    # Every message the API accepted is either recorded or handed back, with its IDs...
    assert set(sid) == recorded | {p for p, line in unrecorded.items() if line["state"] == "sent"}
    for p, line in unrecorded.items():
        if line["state"] == "sent":
            assert line["message_sid"] == sid[p] and line["conversation_id"]
            assert state[p] == "sending"  # the next run marks it unknown
        else:  # claimed, never sent: pending again if the undo reached the store
            assert p not in sid and line["state"] == "pending"
            assert state[p] in ("pending", "sending")
    assert fake.DEFAULT_KEY not in repr(result.unrecorded)
    # ...and nothing else was touched: the rest stays pending.
    assert {s for p, s in state.items() if p not in unrecorded and p not in recorded} <= {"pending"}
