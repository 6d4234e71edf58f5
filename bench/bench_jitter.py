"""Send rate and 429s against a strict rolling-window server, with arrival jitter.

The server (tests/strict_server.py: a stdlib ThreadingHTTPServer, another make than
the sandbox) admits at most 5 requests in any rolling second and delays each request a
random 0..J ms before it "arrives", as a network does. For each J, a `campaign run`
process sends --rows recipients at --rate from a fresh store (the guard learned from
nothing), then, with --warm, a second campaign on the same store and key (the guard
the first one learned). Printed per run: sends/s (accepted sends between the first and
the last to arrive), the share of send requests answered 429, the most arrivals in any
rolling second, nothing lost (each row sent once), and the guard the account ends with.

Then two runs on one key and store while one is frozen three times for 0.9 s
(SIGSTOP/SIGCONT) just before its booked turn: the most in any rolling second, the
429s, and the two runs' total rate.

Targets: at 0 ms >= 4.9 sends/s and no 429; at 40 ms >= 4.75/s and <= 1% 429; at 100 ms
every row sent once. Each run is bounded: --rows rows (a minute at 5/s).

    python bench/bench_jitter.py [--rows 300] [--jitter 0,20,40,100] [--warm] [--no-freeze]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the strict server the tests use too

from strict_server import StrictServer, most_in_one_second, running  # noqa: E402

KEY = "sandbox-key"


def write_recipients(path: Path, rows: int, prefix: str = "+1202555") -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        for i in range(rows):
            writer.writerow([f"{prefix}{i:04d}", f"Bench {i}", f"B{i}", "1 December 2026"])
    return path


def start_run(path: Path, url: str, db: str, rate: float) -> subprocess.Popen:
    argv = [sys.executable, "-m", "campaign", "run", str(path), "--sender-id", "12"]
    argv += ["--template-id", "45", "--base-url", url, "--rate", str(rate), "-q"]
    env = dict(os.environ, AUTOCALLS_API_KEY=KEY, CAMPAIGN_DB=db)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def guard_of(db: str) -> float:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT max(guard) FROM account_pace").fetchone()[0]


def summary(api: StrictServer, since: int, rows: int) -> str:
    """Sends/s, 429 share, most in a second and losses, over the arrivals from `since` on."""
    arrivals = api.arrivals[since:]
    sends = [a for a in arrivals if a.path.endswith("/send")]
    accepted = sorted(a.time for a in sends if a.status == 200)
    refused = sum(1 for a in sends if a.status == 429)
    rate = (len(accepted) - 1) / (accepted[-1] - accepted[0]) if len(accepted) > 1 else 0.0
    phones = [a.phone for a in sends if a.status == 200]
    lost = rows - len(set(phones))
    twice = len(phones) - len(set(phones))
    most = most_in_one_second(sorted(a.time for a in arrivals))
    return (
        f"{rate:6.3f} sends/s  429: {refused:3d} ({refused / max(1, len(sends)):6.2%})  "
        f"most in a second: {most}  lost: {lost}  twice: {twice}"
    )


def jitter_runs(jitter_ms: int, rows: int, rate: float, warm: bool) -> None:
    api = StrictServer(jitter=jitter_ms / 1000, seed=jitter_ms)
    with tempfile.TemporaryDirectory() as tmp, running(api) as url:
        db = f"{tmp}/bench.db"
        for label, prefix in [("fresh", "+1202555"), ("warm", "+1202556")][: 2 if warm else 1]:
            since = len(api.arrivals)
            path = write_recipients(Path(tmp) / f"{label}.csv", rows, prefix)
            run = start_run(path, url, db, rate)
            code = run.wait()
            print(
                f"jitter {jitter_ms:3d} ms, {label}: {summary(api, since, rows)}  "
                f"exit: {code}  guard now: {guard_of(db) * 1000:.1f} ms",
                flush=True,
            )
            if code != 0:
                print(run.stderr.read()[-1000:])


def booked_turns(db: str) -> list[float]:
    try:
        with sqlite3.connect(db) as conn:
            found = conn.execute(
                "SELECT planned FROM account_turns WHERE written IS NULL AND planned > ?",
                (time.time(),),
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return sorted(p for (p,) in found)


def wait_until(condition, bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def frozen_runs(rows: int, rate: float) -> None:
    """Two runs on one key; the first frozen 0.9 s just before its booked turn, three times."""
    api = StrictServer()
    with tempfile.TemporaryDirectory() as tmp, running(api) as url:
        db = f"{tmp}/bench.db"
        first = write_recipients(Path(tmp) / "a.csv", rows, "+1202555")
        second = write_recipients(Path(tmp) / "b.csv", rows, "+1202556")
        runs = [start_run(path, url, db, rate) for path in (first, second)]

        def sent_by_first() -> int:
            return sum(1 for a in api.sends if (a.phone or "").startswith("+1202555"))

        for _ in range(3):
            seen = sent_by_first() + 10
            wait_until(lambda: sent_by_first() > seen)  # noqa: B023
            wait_until(lambda: len(booked_turns(db)) >= 2)
            its_turn = booked_turns(db)[-1]
            time.sleep(max(0.0, its_turn - 0.05 - time.time()))
            runs[0].send_signal(signal.SIGSTOP)
            time.sleep(0.9)
            runs[0].send_signal(signal.SIGCONT)
        codes = [run.wait() for run in runs]
    print(f"two runs, one frozen 3 x 0.9 s: {summary(api, 0, 2 * rows)}  exits: {codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--jitter", default="0,20,40,100", help="milliseconds, comma-separated")
    parser.add_argument("--warm", action="store_true", help="a second campaign per jitter")
    parser.add_argument("--no-freeze", action="store_true", help="skip the frozen runs")
    args = parser.parse_args()
    print(f"rows per run: {args.rows}, --rate {args.rate}, server: <= 5 in any rolling second")
    for jitter_ms in (int(j) for j in args.jitter.split(",") if j):
        jitter_runs(jitter_ms, args.rows, args.rate, args.warm)
    if not args.no_freeze:
        frozen_runs(args.rows // 2, args.rate)


if __name__ == "__main__":
    main()
