"""What a resume costs: it grows with the pending rows, not with the whole file.

Builds a 1,000,000-row campaign whose rows are all sent but 10, then runs the same
`run` again (which resumes it) against the in-process sandbox and times it up to its
first send, next to validating the whole file, measured in the same run.

    python bench/bench_resume.py [--rows 1000000] [--pending 10]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import sqlalchemy as sa

from campaign import sandbox as fake
from campaign.client import account_id
from campaign.loader import load_recipients
from campaign.model import RowState
from campaign.runner import RunSettings, default_name, fingerprint, run_campaign
from campaign.store import Row, Store


def write_file(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2", "segment"])
        for i in range(rows):  # distinct, valid UK mobile numbers
            writer.writerow([f"+4479{i:08d}", f"Customer {i}", f"C{i}", "1 December 2026", "gold"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, db = Path(tmp) / "big.csv", str(Path(tmp) / "c.db")
        write_file(path, args.rows)

        started = time.perf_counter()
        loaded = load_recipients(path, variables=["customer_name", "date"])
        validate = time.perf_counter() - started

        settings = RunSettings(api_key=fake.DEFAULT_KEY, db=db, base_url="http://127.0.0.1")
        store = Store.open(db)
        print_ = fingerprint(path, fake.DEMO_SENDER_ID, fake.DEMO_TEMPLATE_ID)
        name = default_name(path, print_)
        store.create_campaign(
            name=name,
            fingerprint=print_,
            source=str(path),
            account=account_id(settings.base_url, settings.api_key),
            sender_id=fake.DEMO_SENDER_ID,
            template_id=fake.DEMO_TEMPLATE_ID,
            recipients=loaded.recipients,
            skipped=loaded.skipped + loaded.invalid,
        )
        del loaded
        with store.engine.begin() as conn:  # everything sent but the last few rows
            last = conn.scalar(sa.select(sa.func.max(Row.row)))
            conn.execute(
                sa.update(Row).where(Row.row <= last - args.pending).values(state=RowState.SENT)
            )
        store.close()

        sandbox = fake.Sandbox()
        first_send: list[float] = []
        started = time.perf_counter()
        result = anyio.run(
            lambda: run_campaign(
                path,
                fake.DEMO_SENDER_ID,
                fake.DEMO_TEMPLATE_ID,
                settings,
                transport=httpx.ASGITransport(app=sandbox.app),
                on_start=lambda *_: first_send.append(time.perf_counter()),
            )
        )
        whole = time.perf_counter() - started
    to_first = first_send[0] - started
    print(f"rows: {args.rows}, pending at resume: {args.pending}")
    print(f"validating the whole file: {validate:.2f} s")
    print(
        f"resume, start to first send: {to_first:.2f} s "
        f"({to_first / validate:.1%} of validating the file)"
    )
    print(f"resume, whole run (incl. {args.pending} sends at 5/s): {whole:.2f} s")
    print(
        f"file read again on resume: {'yes' if result.load else 'no'}; "
        f"sent now: {len(sandbox.messages)}"
    )


if __name__ == "__main__":
    main()
