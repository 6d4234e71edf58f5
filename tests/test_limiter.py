"""The rate limiter: at most `rate` requests in any rolling second."""

from __future__ import annotations

import itertools

import anyio
import pytest

from campaign.limiter import RateLimiter

pytestmark = pytest.mark.anyio


def most_in_one_second(times: list[float]) -> int:
    """The largest number of times falling in one half-open window of one second."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def turns(limiter: RateLimiter, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.wait_turn()
        times.append(anyio.current_time())
    return times


async def test_never_more_than_rate_in_any_second():
    """Even from idle, no window of one second holds more than `rate` turns."""
    times = await turns(RateLimiter(40), 70)
    assert most_in_one_second(times) <= 40


async def test_no_burst_after_idle():
    """After an idle spell the limiter does not release a burst (unlike AsyncLimiter(5, 1))."""
    limiter = RateLimiter(20)
    await turns(limiter, 3)
    await anyio.sleep(0.3)
    times = await turns(limiter, 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= limiter.interval * 0.999


async def test_concurrent_callers_share_the_limit():
    """Many tasks waiting at once still leave one interval apart."""
    limiter = RateLimiter(50)
    times: list[float] = []

    async def one() -> None:
        await limiter.wait_turn()
        times.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for _ in range(60):
            tg.start_soon(one)
    assert most_in_one_second(sorted(times)) <= 50


async def test_pause_holds_every_turn():
    """A pause (a 429's Retry-After) holds the next turn until it ends."""
    limiter = RateLimiter(100)
    await limiter.wait_turn()
    start = anyio.current_time()
    await limiter.pause(0.3)
    await limiter.wait_turn()
    assert anyio.current_time() - start >= 0.3


def test_rejects_a_rate_of_zero():
    """A rate must be positive."""
    with pytest.raises(ValueError):
        RateLimiter(0)


async def test_account_limiters_on_one_store_share_the_limit(db_path):
    """Two runs' limiters on one store and account: together at most `rate` a second."""
    from campaign.limiter import AccountLimiter
    from campaign.store import Store

    first = AccountLimiter(Store.open(db_path), "acct", 20)
    second = AccountLimiter(Store.open(db_path), "acct", 20)
    turns: list[float] = []  # the booked times (when a busy loop wakes late, `left` pushes)

    async def run(limiter: AccountLimiter) -> None:
        for _ in range(15):
            turns.append(await limiter.wait_turn())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, first)
        tg.start_soon(run, second)
    assert most_in_one_second(sorted(turns)) <= 20


async def test_a_late_request_pushes_the_next_turns(db_path):
    """A request that left later than usual moves the account's later turns back."""
    from campaign.limiter import AccountLimiter
    from campaign.store import Store

    limiter = AccountLimiter(Store.open(db_path), "acct", 10)
    turn = await limiter.wait_turn()
    limiter.left(turn, turn + 0.001)  # the usual small delay
    turn = await limiter.wait_turn()
    limiter.left(turn, turn + 0.051)  # 50 ms later than usual
    assert await limiter.wait_turn() >= turn + limiter.interval + 0.049
