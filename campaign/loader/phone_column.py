"""The phone cells of each block, read once per distinct value, in parallel for a large file.

Reading a phone number (phonenumbers.parse and is_valid_number) is most of the loader's work.
For a large file it is shared out across the machine's cores: while this process reads the
next blocks and sorts their rows, worker processes (campaign.phone_worker, one per core) read
the phones of the blocks before. They are plain subprocesses fed through pipes, each driven by
a thread of this process: unlike a multiprocessing pool, they never fork this process nor
import the caller's main script. A small file is read in this process: starting workers
would cost more than it saves. Either way, each distinct value of a block is read once.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from campaign.phones import PhoneBatch, PhoneResult, read_phones

PARALLEL_FROM = 2 << 20  # bytes: a smaller file is read in this process


@dataclass
class PhoneCells:
    """One block's phone column, read."""

    e164: list[str | None]  # e164[j]: row j's number (None: unusable)
    numbers: np.ndarray  # numbers[j]: the same number's digits as an int64 (0: unusable)
    problems: dict[int, PhoneResult]  # row j -> the problem of its phone, if it has one


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(file_size: int, workers: int | None) -> int:
    """How many worker processes read the phones: 0 (this process) for a small file or a
    single core; `workers` when given."""
    if workers is not None:
        return max(0, workers)
    available = cores()
    return available if available > 1 and file_size >= PARALLEL_FROM else 0


class PhoneReader:
    """Reads blocks' phone columns, in worker processes when `workers` > 0."""

    def __init__(self, default_region: str | None, workers: int) -> None:
        self.region = default_region
        self.workers = workers
        self._pool: _Workers | None = None

    def submit(self, cells: list[str]) -> PendingPhones:
        """Start reading a block's phone cells."""
        codes, distinct = pd.factorize(np.asarray(cells, dtype=object))
        values = distinct.tolist()
        if not self.workers:
            batch: Future[PhoneBatch] = Future()
            batch.set_result(read_phones(values, self.region))
        else:
            if self._pool is None:
                self._pool = _Workers(self.workers)
            batch = self._pool.submit(values, self.region)
        return PendingPhones(codes, batch)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _Workers:
    """Worker processes, each fed by one thread: a thread sends a batch down its worker's
    stdin and waits for the answer, so the pipes never both fill up."""

    def __init__(self, count: int) -> None:
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="phone-worker")
        self._mine = threading.local()  # each thread's worker process
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def submit(self, values: list[str], region: str | None) -> Future[PhoneBatch]:
        return self._threads.submit(self._read, values, region)

    def _read(self, values: list[str], region: str | None) -> PhoneBatch:
        worker = getattr(self._mine, "process", None)
        if worker is None:
            worker = self._mine.process = self._start()
        assert worker.stdin is not None and worker.stdout is not None
        pickle.dump((values, region), worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        worker.stdin.flush()
        return pickle.load(worker.stdout)

    def _start(self) -> subprocess.Popen[bytes]:
        # The worker imports campaign from where this process did, installed or not.
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign.phone_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        with self._lock:
            self._processes.append(process)
        return process

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.close()  # the worker's signal to end
            process.wait()


@dataclass
class PendingPhones:
    """A block's phone cells being read: `codes[j]` is row j's index among the distinct
    values."""

    codes: np.ndarray
    batch: Future[PhoneBatch]

    def result(self) -> PhoneCells:
        batch = self.batch.result()
        codes = self.codes
        e164 = np.asarray(batch.e164, dtype=object)
        numbers = np.array([int(e) if e else 0 for e in batch.e164], dtype=np.int64)
        problems: dict[int, PhoneResult] = {}
        if batch.problems:
            with_problem = np.flatnonzero(np.isin(codes, list(batch.problems)))
            problems = {int(j): batch.problems[int(codes[j])] for j in with_problem}
        return PhoneCells(e164[codes].tolist(), numbers[codes], problems)
