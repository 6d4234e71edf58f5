"""Faults and account errors over loopback: real `campaign run` subprocesses, real stores."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sqlite3
import subprocess
import time
from collections import Counter

import pytest
from helpers import (
    SENDER,
    TEMPLATE,
    campaign_argv,
    cli_env,
    run_argv,
    wait_for,
    write_recipients,
)

from campaign import outcomes
from campaign import sandbox as fake
from campaign.limiter import interval_for

pytestmark = pytest.mark.slow

RATE = 20  # not the 5/s limit under test here: keep the runs short


def run_command(path, base_url: str, *, timeout: float = 5, template: int = TEMPLATE) -> list[str]:
    return run_argv(path, base_url, "--rate", RATE, "--timeout", timeout, "-q", template=template)


def campaign_cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m campaign ARGS` against the store `db`; waits for it (bounded)."""
    return subprocess.run(
        campaign_argv(*args),
        env=cli_env(db),
        capture_output=True,
        text=True,
        timeout=60,
    )


def only_campaign_name(db: str) -> str:
    listed = campaign_cli(db, "status", "--json")
    assert listed.returncode == 0, listed.stderr
    campaigns = json.loads(listed.stdout)
    assert len(campaigns) == 1
    return campaigns[0]["name"]


def status_of(db: str, name: str) -> dict:
    shown = campaign_cli(db, "status", name, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def report_of(db: str, name: str) -> dict:
    shown = campaign_cli(db, "report", name, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def sends(sandbox: fake.Sandbox) -> list[float]:
    """Arrival times of the send requests (429s included)."""
    return [r.time for r in sandbox.requests if r.path.endswith("/whatsapp/send")]


def test_fault_mix_ends_unknown_never_twice_and_costs_one_timeout(tmp_path):
    """300 rows with 500s, drops and slow answers: no duplicate, each fault `unknown`, on time."""
    timeout = 2.0
    faults = fake.Faults(error_500=0.05, drop=0.05, slow=0.03, slow_seconds=10 * timeout)
    sandbox = fake.Sandbox(rate=RATE, latency=(0.01, 0.1), faults=faults, seed=5)
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", 300)
    with fake.running(sandbox) as base_url:
        done = subprocess.run(
            run_command(path, base_url, timeout=timeout),
            env=cli_env(db),
            capture_output=True,
            text=True,
            timeout=90,
        )
        ended = time.monotonic()
    assert done.returncode == 1, done.stderr  # finished, with unknown rows

    # Each recipient was accepted exactly once: nothing was resent after a fault.
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == 300
    fault_of = {m.phone: m.fault for m in sandbox.messages}
    kinds = (fake.ERROR_500, fake.DROP, fake.SLOW)
    seen = {kind: sum(1 for f in fault_of.values() if f == kind) for kind in kinds}
    assert all(n >= 3 for n in seen.values()), seen  # the mix really happened

    name = only_campaign_name(db)
    report = report_of(db, name)
    rows = report["rows"]
    assert len(rows) == 300
    assert report["counts"]["pending"] == report["counts"]["sending"] == 0
    assert {r["state"] for r in rows} <= {"sent", "unknown"}
    expected_code = {
        fake.DROP: outcomes.CONNECTION_DROPPED,
        fake.SLOW: outcomes.READ_TIMEOUT,
        fake.ERROR_500: "HTTP_500",  # an HTML page: no API code, named after its status
    }
    for row in rows:
        fault = fault_of[row["phone"]]
        if fault is None:
            assert row["state"] == "sent", row
            assert row["message_sid"]
        else:
            assert row["state"] == "unknown", (fault, row)
            assert row["error_code"] == expected_code[fault], (fault, row)
            if fault == fake.ERROR_500:
                assert "500" in row["error_message"], row
    assert report["counts"]["unknown"] == sum(seen.values())
    # One request per row, besides those the sandbox refused with a 429 before anything
    # happened (its limit is our rate: jitter on a busy machine may crowd a window); an
    # unknown outcome is never followed by another request.
    with sqlite3.connect(db) as conn:
        tried = conn.execute(
            "SELECT r.phone, a.error_code FROM attempts a JOIN rows r ON r.id = a.row_id "
            "ORDER BY a.id"
        ).fetchall()
    processed = Counter(p for p, code in tried if code != outcomes.RATE_LIMITED)
    assert processed == Counter({r["phone"]: 1 for r in rows})
    last = {p: code for p, code in tried}
    assert outcomes.RATE_LIMITED not in last.values()
    refused = [r for r in sandbox.requests if r.rate_limited]
    assert sum(r.path.endswith("/whatsapp/send") for r in refused) == len(tried) - 300

    # The pace never waited for a fault: sends left every interval while slow answers
    # waited, so the faults add at most one timeout (the last slow answer) to the run.
    # A 429 (none, usually) pauses every send for its Retry-After (1 s): that is no fault.
    pauses = 1.0 * len(refused)
    arrivals = sends(sandbox)
    interval = interval_for(RATE)
    # A slow answer that held the pipeline up would leave a gap of about one timeout.
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < timeout / 2 + (0.5 if refused else 0.0), max(gaps)
    # On a loaded machine a turn woken late is booked again, a little later: 10% for that.
    span = arrivals[-1] - arrivals[0]
    assert span <= (len(arrivals) - 1) * interval * 1.1 + 1.0 + pauses, span
    # After the last send, at most the last timeout (and the process's exit) remains.
    assert ended - arrivals[-1] <= timeout + 3.0, ended - arrivals[-1]


def test_balance_runs_out_halts_then_top_up_finishes(tmp_path):
    """402 after 40 sends: exit 3, 40 sent, the rest pending; after a top-up the rest, once."""
    sandbox = fake.Sandbox(rate=RATE, latency=(0.01, 0.1), balance=40)
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", 100)
    with fake.running(sandbox) as base_url:
        command = run_command(path, base_url)
        halted = subprocess.run(
            command, env=cli_env(db), capture_output=True, text=True, timeout=60
        )
        assert halted.returncode == 3, halted.stderr
        assert "INSUFFICIENT_BALANCE" in halted.stderr

        name = only_campaign_name(db)
        state = status_of(db, name)
        assert state["status"] == "halted"
        assert "INSUFFICIENT_BALANCE" in state["halt_reason"]
        assert state["counts"]["sent"] == 40 and state["counts"]["pending"] == 60
        assert state["counts"]["sending"] == state["counts"]["unknown"] == 0
        assert len(sandbox.messages) == 40
        sent = {r["phone"] for r in report_of(db, name)["rows"] if r["state"] == "sent"}
        assert sent == {m.phone for m in sandbox.messages}

        sandbox.top_up(1000)
        again = subprocess.run(command, env=cli_env(db), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == 100
    state = status_of(db, name)
    assert state["counts"]["sent"] == 100
    assert state["status"] == "finished" and state["halt_reason"] is None


def test_sender_going_offline_mid_run_halts_with_the_rest_pending(tmp_path):
    """The sender goes offline after ~30 sends: exit 3, unsent rows pending, none lost."""
    sandbox = fake.Sandbox(rate=RATE, latency=(0.01, 0.1))
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", 120)
    with fake.running(sandbox) as base_url:
        command = run_command(path, base_url)
        proc = subprocess.Popen(
            command, env=cli_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(lambda: len(sandbox.messages) >= 30, 30, "30 messages")
            online = sandbox.senders[SENDER]
            sandbox.senders[SENDER] = dataclasses.replace(online, status="offline")
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 3, stderr
        assert "SENDER_OFFLINE" in stderr

        name = only_campaign_name(db)
        state = status_of(db, name)
        accepted = {m.phone for m in sandbox.messages}
        assert "SENDER_OFFLINE" in state["halt_reason"]
        assert state["counts"]["sent"] == len(accepted) < 120
        assert state["counts"]["pending"] == 120 - len(accepted)
        assert state["counts"]["failed"] == state["counts"]["unknown"] == 0
        for row in report_of(db, name)["rows"]:
            assert (row["state"] == "sent") == (row["phone"] in accepted), row

        # Fixed: the same command sends the rest, once each.
        sandbox.senders[SENDER] = online
        again = subprocess.run(command, env=cli_env(db), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == 120


def test_ten_rows_failing_alike_trip_the_breaker(tmp_path):
    """Every send fails with one row-level code: halted (exit 3) after 10, naming the code."""
    code = "TWILIO_ERROR_63016"  # a row-level code, but here every row gets it
    broken = fake.Template(
        50,
        SENDER,
        "appointment_reminder_v2",
        "Hi {{1}}, this is a reminder of your appointment on {{2}}.",
        ("customer_name", "date"),
        error_code=code,
    )
    sandbox = fake.Sandbox(
        rate=RATE, latency=(0.01, 0.1), templates=[*fake.default_templates(), broken]
    )
    db = str(tmp_path / "campaigns.db")
    path = write_recipients(tmp_path / "list.csv", 60)
    with fake.running(sandbox) as base_url:
        done = subprocess.run(
            run_command(path, base_url, template=broken.id),
            env=cli_env(db),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3, done.stderr
    assert code in done.stderr
    state = status_of(db, only_campaign_name(db))
    assert code in state["halt_reason"] and "10 rows" in state["halt_reason"]
    counts = state["counts"]
    assert counts["sent"] == counts["unknown"] == counts["sending"] == 0
    assert 10 <= counts["failed"] < 60  # the ones in flight at the halt are recorded too
    assert counts["pending"] == 60 - counts["failed"]
    assert sandbox.messages == []
