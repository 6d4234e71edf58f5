"""Benchmark of campaign.loader.load_recipients against a bare pandas + phonenumbers baseline.

    python bench/bench_loader.py [--rows N] [--repeat K] [--keep DIR]

Writes an N-row CSV (phone in mixed formats, name, three template variables) to a temporary
folder, then runs, each in a fresh Python subprocess, timed inside the subprocess (imports
excluded):

  (a) baseline: pandas.read_csv(path, dtype=str) and one phonenumbers.parse(value, "GB") per
      row;
  (b) load_recipients(path, variables=[...], default_region="GB").

(b) runs first, alone, so that resource.getrusage(RUSAGE_CHILDREN).ru_maxrss read by this
process right after it is the peak resident memory of (b)'s process (the interpreter, pandas
and everything it holds included). With --repeat K (default 3) the two run alternately K times
and each keeps its best time, since the machine may be busy with other work.
Targets: time (b)/(a) <= 1.5, peak (b) < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
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
    """A valid number, unique per i, written in one of several common ways."""
    kind = i % 10
    s = f"{i:06d}"
    if kind == 0:
        return f"+447400{s}"
    if kind == 1:
        return f"+44 7400 {s}"
    if kind == 2:
        return f"0044 7400 {s}"
    if kind == 3:
        return f"447401{s}"  # Excel dropped the +
    if kind == 4:
        return f"07402 {s}"  # national: needs the default region
    if kind == 5:
        return f"+1 (201) 5{s[:2]}-{s[2:]}"
    if kind == 6:
        return f"+49 176 1{s}0"
    if kind == 7:
        return f"+33 6 12 {s[:2]} {s[2:4]} {s[4:]}"
    if kind == 8:
        return f"+91 98{s[:3]} {s[3:]}00"
    return f"+55 11 9{s[:4]}-{s[4:]}00"


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
import json, sys, time
import pandas, phonenumbers
t = time.perf_counter()
frame = pandas.read_csv(sys.argv[1], dtype=str)
parsed = 0
for value in frame["phone"]:
    try:
        phonenumbers.parse(value, "GB")
        parsed += 1
    except phonenumbers.NumberParseException:
        pass
print(json.dumps({"seconds": time.perf_counter() - t, "parsed": parsed}))
"""

LOADER = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
from campaign.loader import load_recipients
VARIABLES = json.loads(sys.argv[3])
t = time.perf_counter()
result = load_recipients(sys.argv[1], variables=VARIABLES, default_region="GB")
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "recipients": len(result.recipients),
                  "skipped": len(result.skipped), "invalid": len(result.invalid),
                  "problems": len(result.problems), "ok": result.ok}))
"""


def _run(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"benchmark subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="run (b) and (a) this many times, alternately, and keep each one's best time "
        "(the machine may be shared)",
    )
    parser.add_argument("--keep", type=Path, help="write the CSV in this folder and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "bench_recipients.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, args.rows)
        size = path.stat().st_size
        print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB, columns {HEADER.strip()}")

        before_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        loader_runs, baseline_runs = [], []
        peak_kb = 0
        for attempt in range(max(1, args.repeat)):
            loader_runs.append(_run(LOADER, str(path), str(ROOT), json.dumps(VARIABLES)))
            if attempt == 0:  # only (b) has run so far: its peak is the children's peak
                peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            baseline_runs.append(_run(BASELINE, str(path)))

    loader = min(loader_runs, key=lambda r: r["seconds"])
    baseline = min(baseline_runs, key=lambda r: r["seconds"])
    ratio = loader["seconds"] / baseline["seconds"]
    peak_gb = peak_kb * 1024 / 1e9

    def times(runs: list[dict]) -> str:
        return ", ".join(f"{r['seconds']:.2f}" for r in runs)

    print(
        f"(a) pandas.read_csv(dtype=str) + phonenumbers.parse(value, 'GB') per row: "
        f"{baseline['seconds']:.2f} s (best of {times(baseline_runs)}; "
        f"{baseline['parsed']:,} parsed)"
    )
    print(
        f"(b) load_recipients(variables=[3 names], default_region='GB'): "
        f"{loader['seconds']:.2f} s (best of {times(loader_runs)}; "
        f"{loader['recipients']:,} recipients, {loader['skipped']:,} skipped, "
        f"{loader['invalid']:,} invalid, {loader['problems']:,} problems)"
    )
    print(f"ratio (b)/(a): {ratio:.2f}x (target <= 1.5x) {'OK' if ratio <= 1.5 else 'OVER'}")
    note = "" if peak_kb > before_kb else " (no more than earlier children: not meaningful)"
    print(
        f"peak memory of (b): {peak_gb:.2f} GB (ru_maxrss of its subprocess, read with "
        f"getrusage(RUSAGE_CHILDREN) right after it; target < 1.5 GB) "
        f"{'OK' if peak_gb < 1.5 else 'OVER'}{note}"
    )


if __name__ == "__main__":
    main()
