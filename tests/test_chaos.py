"""Chaos: a real `campaign run` SIGKILLed again and again, and two runs racing for one campaign."""

from __future__ import annotations

import math
import os
import random
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass

import pytest
from helpers import campaign_argv, cli_env, run_argv, write_recipients

from campaign import outcomes
from campaign import sandbox as fake

pytestmark = pytest.mark.slow

RATE = 20
LATENCY = (0.05, 0.5)
ROWS = 300
KILLS = 10
RECORDING = 0.5  # seconds a killed run may have had an answer without recording it


def sends(sandbox: fake.Sandbox) -> int:
    return sum(1 for r in list(sandbox.requests) if r.path.endswith("/whatsapp/send"))


def rows_in(db: str, state: str) -> set[str]:
    """Phones of the rows in `state`, read straight from the SQLite file (no run is active)."""
    if not os.path.exists(db):
        return set()
    with sqlite3.connect(db) as conn:
        try:
            found = conn.execute("SELECT phone FROM rows WHERE state = ?", (state,)).fetchall()
        except sqlite3.OperationalError:  # killed before the schema existed
            return set()
    return {phone for (phone,) in found}


@dataclass
class Kill:
    at: float  # time.monotonic(), the sandbox's clock, when SIGKILL was sent
    sending: set[str]  # phones left `sending`: they become `unknown` on the next run


def test_ten_sigkills_at_random_moments_never_send_twice(tmp_path):
    """10 SIGKILLs at random moments in 300 rows: no duplicate, unknowns only those in flight."""
    sandbox = fake.Sandbox(rate=RATE, latency=LATENCY, seed=17)
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", ROWS)
    rng = random.Random(2026)
    kills: list[Kill] = []
    finished = None
    with fake.running(sandbox) as base_url:
        deadline = time.monotonic() + 150
        while finished is None:
            assert time.monotonic() < deadline, "the campaign never finished"
            proc = subprocess.Popen(
                run_argv(path, base_url, "--rate", RATE, "--timeout", 5, "-q"),
                env=cli_env(db),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if len(kills) < KILLS:
                # Most kills land while sending, a random time after this run's first send;
                # every fifth lands at a random time from its start (migration, preflight, load).
                started, sent_before = time.monotonic(), sends(sandbox)
                if len(kills) % 5 == 4:
                    moment = started + rng.uniform(0.1, 2.0)
                else:
                    while sends(sandbox) == sent_before and proc.poll() is None:
                        assert time.monotonic() < started + 30, "no send began"
                        time.sleep(0.005)
                    moment = time.monotonic() + rng.uniform(0.0, 1.5)
                while proc.poll() is None and time.monotonic() < moment:
                    time.sleep(0.005)
                if proc.poll() is None:
                    at = time.monotonic()
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    proc.stderr.close()
                    kills.append(Kill(at, rows_in(db, "sending")))
                    continue
            try:
                _, stderr = proc.communicate(timeout=60)
            finally:
                proc.kill()
                proc.wait()
            assert proc.returncode in (0, 1), stderr.decode()
            finished = proc.returncode
    assert len(kills) == KILLS

    assert sandbox.duplicates() == {}
    assert rows_in(db, "pending") == rows_in(db, "sending") == set()
    sent, unknown = rows_in(db, "sent"), rows_in(db, "unknown")
    assert len(sent) + len(unknown) == ROWS
    accepted = sandbox.counts_by_phone()
    assert all(accepted[p] == 1 for p in sent)

    # An unknown row is exactly one that was `sending` when a kill landed...
    assert unknown == set().union(*(k.sending for k in kills))
    # ...a few per kill: the requests in flight (at most rate x the longest answer)
    # and the one waiting for its turn, never a whole batch.
    in_flight = math.ceil(RATE * LATENCY[1]) + 4  # + the one waiting, + a late recording
    assert all(len(k.sending) <= in_flight for k in kills), [len(k.sending) for k in kills]
    with sqlite3.connect(db) as conn:
        codes = {c for (c,) in conn.execute("SELECT error_code FROM rows WHERE state='unknown'")}
    assert codes <= {outcomes.INTERRUPTED}
    # ...and its request was in flight at that kill: it has no message at all (it was
    # waiting for its turn, or the sandbox never read it: a killed client's request is
    # dropped), or its message was accepted around the kill: at most RECORDING before it
    # (the answer was not recorded yet) and at most one answer's latency after it (the
    # request had arrived and was waiting out its latency). The sandbox sets `answered`
    # whether or not the client is still there, so it cannot tell these apart.
    messages = {m.phone: m for m in sandbox.messages}
    first_kill = {}
    for kill in reversed(kills):  # a row can be `sending` at two kills in a row
        first_kill.update(dict.fromkeys(kill.sending, kill))
    for phone in unknown:
        if phone in messages:
            offset = messages[phone].time - first_kill[phone].at
            assert -RECORDING <= offset <= LATENCY[1] + RECORDING, (phone, offset)
    lost = sum(1 for phone in unknown if phone not in messages)
    print(f"{len(unknown)} unknown ({lost} never accepted), {[len(k.sending) for k in kills]}")


def test_two_runs_started_together_one_sends_the_other_exits_4_at_once(tmp_path):
    """Two runs of one campaign started at once: one sends all, the other exits 4 promptly."""
    sandbox = fake.Sandbox(rate=RATE, latency=(0.01, 0.1))
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", 150)  # 7.5 s of sending

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            run_argv(path, base_url, "--rate", RATE, "--timeout", 5, "-q"),
            env=cli_env(db),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    with fake.running(sandbox) as base_url:
        started = time.monotonic()
        procs = [start(), start()]
        try:
            while all(proc.poll() is None for proc in procs):
                assert time.monotonic() < started + 60, "neither run ended"
                time.sleep(0.005)
            loser_ended = time.monotonic()
            loser = next(proc for proc in procs if proc.poll() is not None)
            winner = next(proc for proc in procs if proc is not loser)
            loser_err = loser.communicate(timeout=5)[1]
            assert loser.returncode == 4, loser_err
            assert "another run" in loser_err
            assert winner.poll() is None  # the loser did not wait for the winner

            # A third run, started while the winner sends, is refused as fast as the
            # command starts: compare it with `status`, which only opens the store.
            third_started = time.monotonic()
            third = start()
            procs.append(third)
            third_err = third.communicate(timeout=30)[1]
            third_wall = time.monotonic() - third_started
            assert third.returncode == 4, third_err
            assert winner.poll() is None, "the winner ended too soon for this check"
            baseline_started = time.monotonic()
            status = subprocess.run(
                campaign_argv("status", "--json"),
                env=cli_env(db),
                capture_output=True,
                timeout=30,
            )
            baseline = time.monotonic() - baseline_started
            assert status.returncode == 0, status.stderr

            winner_err = winner.communicate(timeout=60)[1]
            assert winner.returncode == 0, winner_err
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == 150
    # Both spent about the same time starting up (1-3 s on a busy machine: imports, the
    # new store, preflight, loading the file); the loser gave up as soon as the winner had
    # created the campaign, holding its lease: around the winner's first send. The third
    # run finds the campaign's lease taken before it asks the API anything, so it costs
    # about what a command that only opens the store costs: it never waits for the winner
    # to finish, nor for the lease to expire (6 s).
    first_send = next(r.time for r in sandbox.requests if r.path.endswith("/whatsapp/send"))
    print(
        f"loser {loser_ended - started:.2f}s after start, {loser_ended - first_send:+.2f}s "
        f"after the first send; third {third_wall:.2f}s, status {baseline:.2f}s"
    )
    # Bounds for a loaded machine (the suite runs on four workers over two cores).
    assert loser_ended - first_send <= 3.0
    assert third_wall <= baseline + 3.0
