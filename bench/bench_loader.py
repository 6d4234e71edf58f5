"""Benchmark of campaign.loader against the floor: pandas + phonenumbers' public API, one core.

    python bench/bench_loader.py [--rows N] [--repeat K] [--keep DIR] [--no-full]

Writes an N-row CSV (phone in mixed formats, name, three template variables) to a temporary
folder, then runs, each in a fresh Python subprocess, timed inside the subprocess (imports
excluded):

  (a) the floor: pandas.read_csv(path, dtype=str), then for each row's phone
      phonenumbers.parse(value, "GB") and phonenumbers.is_valid_number(number), on one core;
  (b) load_recipients(path, variables=[...], default_region="GB"): every row in memory, as
      `campaign validate` and a run use it today (skipped with --no-full);
  (c) read_recipients(...) with its chunks counted and dropped: the memory a caller that
      stores each chunk as it comes needs (`campaign validate` counts rows this way);
  (d) creating a campaign from the file in a new SQLite store, as `campaign run` does: the
      chunks spooled to a temporary file, then stored in one transaction (--store).

Each subprocess reports its own peak resident memory (ru_maxrss) and the largest of its
children's (the phone workers). With --repeat K (default 3) the runs alternate K times and
each keeps its best time, since the machine may be busy with other work.
Targets: time (b)/(a) <= 1.0; peak memory of (c) and (d) < 1.5 GB, also for 5,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = ["order_id", "delivery_date", "amount"]
HEADER = "phone,name,Order ID,delivery_date,Amount\n"

FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Gus", "Hiro", "Ines", "José"]
LAST = ["Smith", "O'Neil", "Müller", "García", "Nguyen", "Kowalski", "Rossi", "Khan"]


def _phone(i: int) -> str:
    """A valid number, unique per i (up to 5,000,000), written in one of several common
    ways. The last digit of s is i's, so two kinds of number never collide."""
    kind = i % 10
    block, rest = divmod(i, 1_000_000)  # block: a digit that keeps numbers past 1M valid
    s = f"{rest:06d}"
    if kind == 0:
        return f"+44740{block}{s}"
    if kind == 1:
        return f"+44 740{block} {s}"
    if kind == 2:
        return f"0044 740{block} {s}"
    if kind == 3:
        return f"44740{block + 1}{s}"  # Excel dropped the +
    if kind == 4:
        return f"0740{block + 2} {s}"  # national: needs the default region
    if kind == 5:
        return f"+1 (20{block + 1}) 5{s[:2]}-{s[2:]}"
    if kind == 6:
        return f"+49 176 {block + 1}{s}0"
    if kind == 7:
        return f"+33 6 {block + 1}2 {s[:2]} {s[2:4]} {s[4:]}"
    if kind == 8:
        return f"+91 98{s[:3]} {s[3:]}{block}0"
    return f"+55 11 9{s[:4]}-{s[4:]}{block}0"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write the benchmark CSV: ~1% duplicate phones, ~0.2% invalid ones, a few quoted values."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        lines = []
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01 and i > 10:
                phone = _phone(rng.randrange(i))  # a duplicate
            elif roll < 0.012:
                phone = f"+44 12{i % 1000}"  # invalid: too short
            else:
                phone = _phone(i)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if roll > 0.995:
                name = f'"{name}, Jr"'
            order = f"A-{i:08d}"
            day = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
            amount = f"{rng.randrange(1, 100000) / 100:.2f}"
            lines.append(f"{phone},{name},{order},{day},{amount}\n")
            if len(lines) >= 10000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


BASELINE = """
import json, resource, sys, time
import pandas, phonenumbers
t = time.perf_counter()
frame = pandas.read_csv(sys.argv[1], dtype=str)
valid = 0
for value in frame["phone"]:
    try:
        number = phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        continue
    valid += phonenumbers.is_valid_number(number)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "valid": valid,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

LOADER = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from campaign.loader import load_recipients
VARIABLES = json.loads(sys.argv[3])
t = time.perf_counter()
result = load_recipients(sys.argv[1], variables=VARIABLES, default_region="GB")
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "recipients": len(result.recipients),
                  "skipped": len(result.skipped), "invalid": len(result.invalid),
                  "problems": len(result.problems), "ok": result.ok,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

STREAM = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from campaign.loader import read_recipients
VARIABLES = json.loads(sys.argv[3])
t = time.perf_counter()
reading = read_recipients(sys.argv[1], variables=VARIABLES, default_region="GB")
counts = {"recipients": 0, "skipped": 0, "invalid": 0, "problems": 0}
for chunk in reading:
    for key in counts:
        counts[key] += len(getattr(chunk, key))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, **counts, "ok": reading.ok,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

CREATE = """
import json, operator, pickle, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from campaign.loader import load_recipients
from campaign.store import Store
VARIABLES = json.loads(sys.argv[3])
t = time.perf_counter()
with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as spool:
    def keep(chunk):
        skipped = sorted(chunk.skipped + chunk.invalid, key=operator.attrgetter("row"))
        pickle.dump((chunk.recipients, skipped), spool, protocol=pickle.HIGHEST_PROTOCOL)
    loaded = load_recipients(sys.argv[1], variables=VARIABLES, default_region="GB",
                             keep_rows=False, on_chunk=keep)
    def rows():
        spool.seek(0)
        while True:
            try:
                yield pickle.load(spool)
            except EOFError:
                return
    store = Store.open(str(Path(folder) / "bench.db"))
    campaign = store.create_campaign(name="bench", fingerprint="f" * 64, source=sys.argv[1],
                                     account="a" * 32, sender_id=1, template_id=1,
                                     batches=rows())
    store.close()
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "recipients": loaded.valid_rows,
                  "skipped": loaded.skipped_rows, "invalid": loaded.invalid_rows,
                  "problems": len(loaded.problems), "stored": campaign.total_rows,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _run(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"benchmark subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gb(kb: int) -> float:
    return kb * 1024 / 1e9


def _times(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.2f}" for r in runs)


def _memory(run: dict) -> str:
    return (
        f"peak {_gb(run['peak_kb']):.2f} GB (+ {_gb(run['workers_peak_kb']):.2f} GB per "
        "phone worker)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="run each this many times, alternately, and keep each one's best time "
        "(the machine may be shared)",
    )
    parser.add_argument("--keep", type=Path, help="write the CSV in this folder and keep it")
    parser.add_argument(
        "--no-full", action="store_true", help="skip (b), which holds every row in memory"
    )
    parser.add_argument("--store", action="store_true", help="also run (d), once")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "bench_recipients.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, args.rows)
        size = path.stat().st_size
        print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB, columns {HEADER.strip()}")
        loader_args = (str(path), str(ROOT), json.dumps(VARIABLES))
        floor_runs, full_runs, stream_runs = [], [], []
        for _attempt in range(max(1, args.repeat)):
            floor_runs.append(_run(BASELINE, str(path)))
            if not args.no_full:
                full_runs.append(_run(LOADER, *loader_args))
            stream_runs.append(_run(STREAM, *loader_args))
        create_runs = [_run(CREATE, *loader_args)] if args.store else []

    floor = min(floor_runs, key=lambda r: r["seconds"])
    print(
        f"(a) floor: pandas.read_csv(dtype=str) + phonenumbers.parse + is_valid_number per "
        f"row, one core: {floor['seconds']:.2f} s (best of {_times(floor_runs)}; "
        f"{floor['valid']:,} valid; {_memory(floor | {'workers_peak_kb': 0})})"
    )
    labelled = (
        ("(b) load_recipients", full_runs),
        ("(c) read_recipients", stream_runs),
        ("(d) a campaign created", create_runs),
    )
    for label, runs in labelled:
        if not runs:
            continue
        best = min(runs, key=lambda r: r["seconds"])
        ratio = best["seconds"] / floor["seconds"]
        peak = _gb(best["peak_kb"])
        print(
            f"{label}: {best['seconds']:.2f} s ({'best of ' if len(runs) > 1 else ''}"
            f"{_times(runs)}; "
            f"{best['recipients']:,} recipients, {best['skipped']:,} skipped, "
            f"{best['invalid']:,} invalid, {best['problems']:,} problems); {_memory(best)}"
        )
        if runs is create_runs:  # storing the rows takes most of it: no time target
            print(f"    peak {peak:.2f} GB (target < 1.5 GB) {'OK' if peak < 1.5 else 'OVER'}")
            continue
        print(
            f"    ratio to the floor: {ratio:.2f}x (target <= 1.0x) "
            f"{'OK' if ratio <= 1.0 else 'OVER'}; peak {peak:.2f} GB "
            f"(target < 1.5 GB for (c)) {'OK' if peak < 1.5 else 'OVER'}"
        )


if __name__ == "__main__":
    main()
