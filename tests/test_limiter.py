"""The account's limiter: at most `rate` requests in any rolling second, whoever sends them.

Each test runs real limiters on a real store (SQLite, and PostgreSQL where the clock
matters); the times checked are when each turn was used, as the server would see them.
"""

from __future__ import annotations

import itertools
import time

import anyio
import pytest
import sqlalchemy as sa
from strict_server import most_in_one_second

from campaign.errors import AccountPaused
from campaign.limiter import (
    GUARD_NARROW,
    GUARD_START,
    GUARD_WIDEN,
    TOLERANCE,
    AccountLimiter,
    Interrupted,
    interval_for,
)
from campaign.store import Store

pytestmark = pytest.mark.anyio


async def used_turns(limiter: AccountLimiter, n: int, late: float = 0.0) -> list[float]:
    """Take `n` turns one after another; each request leaves `late` after its turn."""
    times = []
    for _ in range(n):
        turn = await limiter.wait_turn()
        if late:
            await anyio.sleep(late)
        limiter.left(turn, time.time())
        times.append(time.time())
    return times


def turns_in_log(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM account_turns"))


async def test_never_more_than_rate_in_any_second(db_path):
    """Even from idle, no window of one second holds more than `rate` turns."""
    times = await used_turns(AccountLimiter(Store.open(db_path), "acct", 40), 70)
    assert most_in_one_second(times) <= 40


async def test_no_burst_after_idle(db_path):
    """After an idle spell the limiter does not release a burst (unlike a leaky bucket)."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 20)
    await used_turns(limiter, 3)
    await anyio.sleep(0.3)
    times = await used_turns(limiter, 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval_for(20, 0.0) * 0.8  # not 0: each waited for its turn


async def test_concurrent_callers_share_the_limit(db_path):
    """Many tasks waiting at once still leave at most `rate` in any second."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 50)
    times: list[float] = []

    async def one() -> None:
        turn = await limiter.wait_turn()
        limiter.left(turn, time.time())
        times.append(time.time())

    async with anyio.create_task_group() as tg:
        for _ in range(60):
            tg.start_soon(one)
    assert most_in_one_second(sorted(times)) <= 50


def test_rejects_a_rate_of_zero(db_path):
    """A rate must be positive."""
    with pytest.raises(ValueError):
        AccountLimiter(Store.open(db_path), "acct", 0)


async def test_account_limiters_on_one_store_share_the_limit(store_db):
    """Two runs' limiters on one store and account: together at most `rate` a second."""
    first = AccountLimiter(Store.open(store_db), "acct", 20)
    second = AccountLimiter(Store.open(store_db), "acct", 20)
    times: list[float] = []

    async def run(limiter: AccountLimiter) -> None:
        times.extend(await used_turns(limiter, 15))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, first)
        tg.start_soon(run, second)
    assert most_in_one_second(sorted(times)) <= 20


async def test_always_late_requests_still_push(db_path):
    """A run whose requests always leave 60 ms late pushes the other run's turns back.

    Today's pace measured lateness against the least seen, so a run always late never
    pushed, and the other run's turns crowded its requests in the server's window.
    """
    # An odd rate: the turns k and k + rate of two alternating runs belong to both.
    late = AccountLimiter(Store.open(db_path), "acct", 9)
    on_time = AccountLimiter(Store.open(db_path), "acct", 9)
    times: list[float] = []

    async def run(limiter: AccountLimiter, lateness: float) -> None:
        times.extend(await used_turns(limiter, 20, lateness))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, late, 0.06)
        tg.start_soon(run, on_time, 0.0)
    assert most_in_one_second(sorted(times)) <= 9


async def test_a_turn_woken_late_is_booked_again(db_path):
    """A run frozen past its booked turn does not use it: it books a later one."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 5)
    first = await limiter.wait_turn()
    limiter.left(first, time.time())
    taken: list[tuple[float, float]] = []

    async def take() -> None:
        turn = await limiter.wait_turn()
        taken.append((turn.at, time.time()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.05)  # it has booked first.at + 0.2 and sleeps
        time.sleep(0.5)  # the whole process freezes past that turn (GC, SIGSTOP)
        thawed = time.time()
    turn_at, used_at = taken[0]
    assert turn_at >= thawed  # a turn booked after the thaw
    assert used_at - turn_at <= TOLERANCE + 0.01  # and used on time
    assert turns_in_log(limiter.store) == 2  # the missed turn was given back


async def test_a_turn_booked_before_a_429_waits_out_its_pause(db_path):
    """A 429 seen by another run pauses a turn this run had already booked."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 2)  # turns 0.5 s apart
    other = AccountLimiter(Store.open(db_path), "acct", 2)
    first = await limiter.wait_turn()
    limiter.left(first, time.time())
    taken: list[float] = []

    async def take() -> None:
        await limiter.wait_turn()  # booked for first.at + 0.5
        taken.append(time.time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.1)
        paused_at = time.time()  # before: the pause runs from when it is recorded
        await other.pause(1.0)  # another run's request met a 429: wait 1 s
    assert taken[0] >= paused_at + 1.0 - 0.01


async def test_interrupt_ends_a_long_wait_at_once(db_path):
    """Ctrl-C during a 10-minute pause: the wait for a turn ends now, and the turn is freed."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 5)
    await limiter.pause(600)
    started = time.monotonic()
    ended: list[BaseException] = []

    async def take() -> None:
        try:
            await limiter.wait_turn()
        except Interrupted as exc:
            ended.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.1)
        limiter.interrupt()
    assert ended and time.monotonic() - started < 2
    assert turns_in_log(limiter.store) == 0


async def test_a_pause_of_more_than_15_minutes_is_refused(db_path):
    """A Retry-After of 16 minutes halts rather than sleeps; so does every run's next turn."""
    limiter = AccountLimiter(Store.open(db_path), "acct", 5)
    with pytest.raises(AccountPaused, match="16 min"):
        await limiter.pause(960)
    other = AccountLimiter(Store.open(db_path), "acct", 5)
    with pytest.raises(AccountPaused, match="16 min"):
        await other.wait_turn()


async def test_the_guard_widens_after_a_429_and_narrows_slowly(store_db):
    """A 429 widens the account's guard once per pause; each booking narrows it a little."""
    store = Store.open(store_db)
    limiter = AccountLimiter(store, "acct", 50)
    await used_turns(limiter, 3)  # a turn woken late books again: 3 bookings or more
    narrowed = store.account_guard("acct")
    assert GUARD_START - 20 * GUARD_NARROW <= narrowed <= GUARD_START - 3 * GUARD_NARROW + 1e-9
    await limiter.pause(0.2)
    await AccountLimiter(Store.open(store_db), "acct", 50).pause(0.2)  # the same burst
    widened = store.account_guard("acct")
    assert widened == pytest.approx(narrowed + GUARD_WIDEN)
    await used_turns(limiter, 5)
    assert widened - 30 * GUARD_NARROW <= store.account_guard("acct") < widened
