"""The rate limit, measured by real servers: never more than 5 in any second per account.

The sandbox, and a strict server of another make (tests/strict_server.py), count the
arrivals; the runs are real `campaign` processes, frozen, interrupted, or started with
a clock seconds off (faketime) where the test says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import (
    SENDER,
    TEMPLATE,
    campaign_argv,
    cli_env,
    postgres_database,
    run_argv,
    wait_for,
    write_recipients,
)
from strict_server import arrivals_at, most_in_one_second

pytestmark = pytest.mark.slow

STRICT_SERVER = Path(__file__).with_name("strict_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def ahead_of_the_suite() -> None:
    """Run a measuring server before the rest of the suite's processes, where allowed.

    A server counts arrivals on its own clock: when the other tests' processes crowd the
    two cores, a server that waits for a core sees requests late and bunched, as it would
    on a congested network. Here we measure our pacing, not the machine's load, so the
    server gets the lowest real-time priority (as root), or else a better nice value. It
    mostly sleeps; nothing else is starved for long. The clients do not: their start-up
    work (pandas, the file) would then starve the server, and a client that waits for a
    core must keep its distance by itself (it books its turn again).
    """
    with contextlib.suppress(AttributeError, PermissionError, OSError):
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        return
    with contextlib.suppress(PermissionError, OSError):
        os.nice(-10)


def wait_until_serving(server: subprocess.Popen, probe: Callable[[], object], what: str) -> None:
    """Return once `probe` gets an answer from the server process (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            probe()
            return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start"
            assert server.poll() is None, f"{what} exited"
            time.sleep(0.05)


@contextmanager
def sandbox_server(*args: str):
    """`campaign sandbox` in its own process, as the real API would be: yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        campaign_argv("sandbox", "--port", port, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=ahead_of_the_suite,
    )
    try:
        wait_until_serving(server, lambda: get(f"{url}/sandbox/stats"), "the sandbox")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_200_recipients_once_each_within_5_per_second(tmp_path):
    """200 recipients over loopback: one message each, at most 5 requests in any second."""
    path = write_recipients(tmp_path / "list.csv", 200)
    with sandbox_server("--latency", "0.05-0.5") as url:
        run = subprocess.run(
            run_argv(path, url, "-q"),
            env=cli_env(str(tmp_path / "c.db")),
            capture_output=True,
            text=True,
            timeout=300,
        )
        stats = get(f"{url}/sandbox/stats")
    assert run.returncode == 0, run.stderr
    assert stats["accepted"] == 200
    assert stats["most_messages_to_one_phone"] == 1
    assert stats["max_in_rolling_second"] <= 5
    assert stats["rate_limited"] == 0


def test_two_campaigns_on_one_account_share_the_limit(tmp_path):
    """Two processes, two campaigns, one key: together at most 5 in any second, >= 90% used."""
    first = write_recipients(tmp_path / "a.csv", 60)
    second = write_recipients(
        tmp_path / "b.csv", 60, phones=[f"+1202555{i:04d}" for i in range(60)]
    )
    db = str(tmp_path / "c.db")
    with sandbox_server("--latency", "0.05-0.5") as url:
        runs = [
            subprocess.Popen(
                run_argv(path, url, "-q"),
                env=cli_env(db),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in (first, second)
        ]
        codes = [run.wait(timeout=300) for run in runs]
        stats = get(f"{url}/sandbox/stats")
        requests = get(f"{url}/sandbox/requests")["data"]
    assert codes == [0, 0], [run.stderr.read() for run in runs]
    assert stats["accepted"] == 120
    assert stats["max_in_rolling_second"] <= 5
    assert stats["rate_limited"] == 0
    sends = sorted(r["time"] for r in requests if r["path"].endswith("/send"))
    # While both ran, together they used at least 90% of the account's 5 per second.
    overlap = sends[10:-10]
    assert (len(overlap) - 1) / (overlap[-1] - overlap[0]) >= 0.9 * 5


# --- against a strict server of another make -------------------------------------------


@contextmanager
def strict_server(*args: object):
    """tests/strict_server.py in its own process (5 a second, strictly): yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(STRICT_SERVER), "--port", str(port), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=ahead_of_the_suite,
    )
    try:
        wait_until_serving(server, lambda: arrivals_at(url), "the strict server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def other_phones(n: int, prefix: str = "+1202555") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def start_run(path: Path, url: str, db: str, *more: object, wrapper: list[str] | None = None):
    env = cli_env(db)
    if wrapper:
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"  # asyncio's timers keep the real pace
    return subprocess.Popen(
        [*(wrapper or []), *run_argv(path, url, "-q", *more)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(runs: list[subprocess.Popen]) -> list[int]:
    codes = [run.wait(timeout=180) for run in runs]
    assert codes == [0] * len(runs), [run.stderr.read() for run in runs]
    return codes


def assert_within_the_limit(url: str, sends: int) -> None:
    """The server saw every send once, never more than 5 in a second, and no 429."""
    arrivals = arrivals_at(url)
    assert [a for a in arrivals if a.status != 200] == []
    assert most_in_one_second(sorted(a.time for a in arrivals)) <= 5
    phones = [a.phone for a in arrivals if a.path.endswith("/send")]
    assert len(phones) == len(set(phones)) == sends


def booked_turns(db: str) -> list[float]:
    """The turns booked in a SQLite store and not yet used, still to come (our clock)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            found = conn.execute(
                "SELECT planned FROM account_turns WHERE written IS NULL AND planned > ?",
                (time.time(),),
            ).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
    return sorted(planned for (planned,) in found)


def test_a_run_frozen_after_booking_its_turn_does_not_crowd_the_other(tmp_path):
    """Two runs on one key; one frozen 0.9 s just before its booked turn, 3 times: <= 5 a second.

    The frozen run wakes long after its turn, which the other run's turns have surrounded
    meanwhile: it must book again rather than send on top of them.
    """
    db = str(tmp_path / "c.db")
    first = write_recipients(tmp_path / "a.csv", 20)  # phones +1415555...
    second = write_recipients(tmp_path / "b.csv", 20, phones=other_phones(20))

    def sent_by_first() -> int:
        return sum(1 for a in arrivals_at(url) if (a.phone or "").startswith("+1415"))

    with strict_server() as url:
        runs = [start_run(path, url, db) for path in (first, second)]
        frozen = runs[0]
        for _ in range(3):
            seen = sent_by_first()
            wait_for(lambda: sent_by_first() > seen, 60, "the first run to send")  # noqa: B023
            # It booked its next turn as that request left: the later of the two waiting
            # (each run holds at most one).
            wait_for(lambda: len(booked_turns(db)) >= 2, 30, "both runs to book a turn")
            its_turn = booked_turns(db)[-1]
            time.sleep(max(0.0, its_turn - 0.05 - time.time()))
            frozen.send_signal(signal.SIGSTOP)
            time.sleep(0.9)  # the freeze: the other run books five turns meanwhile
            frozen.send_signal(signal.SIGCONT)
        finish(runs)
        assert_within_the_limit(url, 40)


def test_validate_takes_turns_of_the_run_in_progress(tmp_path, recipients):
    """`validate` with a key, during a run on the same key and store: <= 5 a second together."""
    db = str(tmp_path / "c.db")
    path = write_recipients(tmp_path / "a.csv", 25)
    checked_file = recipients(3, phones=other_phones(3))
    with strict_server() as url:
        run = start_run(path, url, db)
        wait_for(lambda: len(arrivals_at(url)) >= 6, 60, "the run to send")
        for _ in range(2):
            checked = subprocess.run(
                campaign_argv(
                    "validate",
                    checked_file,
                    "--sender-id",
                    SENDER,
                    "--template-id",
                    TEMPLATE,
                    "--base-url",
                    url,
                ),
                env=cli_env(db),  # CAMPAIGN_DB: the run's store
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert checked.returncode == 0, checked.stderr
        finish([run])
        assert_within_the_limit(url, 25)
        reads = [a for a in arrivals_at(url) if not a.path.endswith("/send")]
    assert len(reads) == 3 * 3  # the run's preflight and each validate's


def test_every_spelling_of_the_base_url_is_one_account(tmp_path):
    """Four runs, each spelling the API's address its own way: one pace, <= 5 a second."""
    db = str(tmp_path / "c.db")
    with strict_server() as url:
        port = url.rsplit(":", 1)[1]
        spellings = [
            f"http://localhost:{port}",
            f"http://localhost:{port}/",
            f"http://localhost:{port}/api",
            f"http://LOCALHOST:{port}",
        ]
        runs = []
        for i, spelling in enumerate(spellings):
            path = write_recipients(tmp_path / f"{i}.csv", 8, phones=other_phones(8, f"+120255{i}"))
            runs.append(start_run(path, spelling, db))
        finish(runs)
        assert_within_the_limit(url, 32)


def test_a_retry_after_of_16_minutes_halts_at_once(tmp_path):
    """A 429 asking for 16 minutes: exit 3 with the wait in the message, and so does a rerun."""
    db = str(tmp_path / "c.db")
    path = write_recipients(tmp_path / "a.csv", 5)
    with strict_server("--refuse", "960") as url:
        started = time.monotonic()
        halted = subprocess.run(
            run_argv(path, url, "-q"), env=cli_env(db), capture_output=True, text=True, timeout=60
        )
        assert halted.returncode == 3, halted.stderr
        said = " ".join(halted.stderr.split())  # the terminal's width folds the line
        assert "16 min" in said and "Retry-After: 960 s" in said
        assert time.monotonic() - started < 30  # no sleeping it out
        again = subprocess.run(
            run_argv(path, url, "-q"), env=cli_env(db), capture_output=True, text=True, timeout=60
        )
        assert again.returncode == 3, again.stderr
        assert "paused this account" in " ".join(again.stderr.split())
        sends = [a for a in arrivals_at(url) if a.path.endswith("/send")]
    assert len(sends) == 1  # the rerun sent nothing while the account is paused


def test_ctrl_c_during_a_long_429_pause_exits_at_once(tmp_path):
    """A 429 asking for 10 minutes, then Ctrl-C: exit 130 within seconds, nothing lost."""
    db = str(tmp_path / "c.db")
    path = write_recipients(tmp_path / "a.csv", 5)
    with strict_server("--refuse", "600") as url:
        proc = start_run(path, url, db)

        def paused() -> bool:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                try:
                    until = conn.execute("SELECT max(paused_until) FROM account_pace").fetchone()
                except sqlite3.OperationalError:  # not created yet
                    return False
            return (until[0] or 0) > time.time() + 500

        wait_for(paused, 60, "the 429's pause")
        time.sleep(1.0)  # the turns booked before it are waiting it out now
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert time.monotonic() - interrupted < 5
    with contextlib.closing(sqlite3.connect(db)) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
    assert states == {"pending": 5}


# --- hosts whose clocks disagree, on one PostgreSQL store ------------------------------


@pytest.fixture
def faketime() -> list[str]:
    """The `faketime` command (Debian's faketime package), or skip where it is missing."""
    if shutil.which("faketime") is None:
        if os.environ.get("CI"):
            pytest.fail("faketime is not installed: .ci/run installs it")
        pytest.skip("faketime is not installed")
    return ["faketime", "-f"]


def test_runs_whose_clocks_disagree_share_one_pace_on_postgresql(tmp_path, faketime):
    """Two runs on one PostgreSQL store and key, one 3 s ahead: <= 5 a second, no 429.

    And a third run of the busy campaign, 10 s ahead, finds its lease live: exit 4.
    """
    first = write_recipients(tmp_path / "a.csv", 20)
    second = write_recipients(tmp_path / "b.csv", 20, phones=other_phones(20))
    with postgres_database() as db, strict_server() as url:
        runs = [
            start_run(first, url, db),
            start_run(second, url, db, wrapper=[*faketime, "+3s"]),
        ]
        wait_for(lambda: len(arrivals_at(url)) >= 10, 60, "both runs to send")
        busy = subprocess.run(
            [*faketime, "+10s", *run_argv(first, url, "-q")],
            env={**cli_env(db), "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode == 4, busy.stderr
        finish(runs)
        assert_within_the_limit(url, 40)


CLOCK_PROBE = """
import json, sys, time
from campaign.limiter import plan_turn
from campaign.store import Store

store = Store.open(sys.argv[1])
booking = store.book_turn("acct", 5, lambda pace: plan_turn(pace, 5))
taken = store.acquire_lease(int(sys.argv[2]), "elsewhere:1:x", 6.0)
print(json.dumps(dict(at=booking.at, offset=booking.clock.offset, local=time.time(), taken=taken)))
"""


def test_a_host_10_s_ahead_books_and_leases_on_the_database_clock(pg_url, faketime):
    """A run whose clock is 10 s ahead: its turn and its view of a live lease are the database's."""
    from campaign.model import Recipient
    from campaign.store import Store

    store = Store.open(pg_url)
    campaign = store.create_campaign(
        name="busy",
        fingerprint="f" * 64,
        source="list.csv",
        account="a" * 32,
        sender_id=12,
        template_id=45,
        recipients=[Recipient(2, "+14155550100", "A", {})],
        lease=("thishost:1:y", 6.0),  # held by a live run for 6 s more
    )
    probe = subprocess.run(
        [*faketime, "+10s", sys.executable, "-c", CLOCK_PROBE, pg_url, str(campaign.id)],
        env={**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(probe.stdout)
    assert seen["local"] - time.time() == pytest.approx(10, abs=1)  # its clock is ahead
    assert seen["offset"] == pytest.approx(-10, abs=0.5)  # and it knows by how much
    assert seen["at"] - time.time() == pytest.approx(0, abs=1)  # a turn on the database clock
    assert seen["taken"] is False  # the lease is live on the database's clock
