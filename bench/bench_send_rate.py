"""Sustained send rate against the sandbox over loopback, with 50-1500 ms of latency.

Starts `campaign sandbox` and `campaign run` as real processes on 127.0.0.1, sends
--rows recipients at --rate, and prints the sustained rate (sends per second between
the first and the last to reach the sandbox), the 429s, and the most requests the
sandbox saw in any rolling second. Target: >= 4.9 sends/s at --rate 5 with zero 429s.

    python bench/bench_send_rate.py [--rows 150] [--rate 5] [--latency 0.05-1.5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get_json(url)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the sandbox did not come up at {url}")


def write_recipients(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        for i in range(rows):
            writer.writerow([f"+1202555{i:04d}", f"Bench {i}", f"B{i}", "1 December 2026"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--latency", default="0.05-1.5")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        write_recipients(path, args.rows)
        env = dict(os.environ, AUTOCALLS_API_KEY="sandbox-key", CAMPAIGN_DB=f"{tmp}/bench.db")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "campaign",
                "sandbox",
                "--port",
                str(port),
                "--latency",
                args.latency,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(f"{base}/sandbox/stats")
            started = time.monotonic()
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "campaign",
                    "run",
                    str(path),
                    "--sender-id",
                    "12",
                    "--template-id",
                    "45",
                    "--base-url",
                    base,
                    "--rate",
                    str(args.rate),
                    "-q",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.monotonic() - started
            stats = get_json(f"{base}/sandbox/stats")
            messages = get_json(f"{base}/sandbox/messages")["data"]
            requests = get_json(f"{base}/sandbox/requests")["data"]
        finally:
            server.terminate()
            server.wait()
    # Arrivals of the sends, as the server saw them: the rate they left at.
    times = sorted(r["time"] for r in requests if r["path"].endswith("/send"))
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    print(f"rows: {args.rows}, rate limit asked: {args.rate}/s, latency: {args.latency} s")
    print(f"exit code of campaign run: {run.returncode}")
    print(f"messages accepted: {len(messages)}")
    print(
        f"sustained send rate: {sustained:.3f} sends/s ({sustained / args.rate:.1%} of the limit)"
    )
    print(f"whole run, start-up included: {wall:.1f} s")
    print(f"429 answers: {stats['rate_limited']}")
    print(f"most requests in any rolling second: {stats['max_in_rolling_second']}")
    if run.returncode not in (0,):
        print(run.stderr[-2000:])


if __name__ == "__main__":
    main()
