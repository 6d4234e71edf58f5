"""Fixtures shared by the test files: async backend, stores, recipient files, the sandbox."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pytest

from campaign import sandbox as fake
from campaign.runner import RunSettings

SENDER = fake.DEMO_SENDER_ID
TEMPLATE = fake.DEMO_TEMPLATE_ID


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiolimiter is asyncio-only


@pytest.fixture
def db_path(tmp_path) -> str:
    """A fresh SQLite store file, as a path string."""
    return str(tmp_path / "campaigns.db")


def phone(i: int) -> str:
    """The i-th test recipient's E.164 phone (all valid numbers)."""
    return f"+1415555{i:04d}"


def write_recipients(path: Path, n: int, *, phones: list[str] | None = None) -> Path:
    """A CSV of `n` recipients for the sandbox's demo template (variables 1 and 2)."""
    phones = phones or [phone(i) for i in range(n)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        for i, p in enumerate(phones):
            writer.writerow([p, f"Recipient {i}", f"R{i}", "1 December 2026"])
    return path


@pytest.fixture
def recipients(tmp_path):
    """A factory of recipient CSV files in the test's temporary directory."""
    counter = iter(range(1000))

    def make(n: int, **kwargs) -> Path:
        return write_recipients(tmp_path / f"list{next(counter)}.csv", n, **kwargs)

    return make


def settings_for(db: str, **overrides) -> RunSettings:
    """Run settings for a sandbox: its key, loopback, short timeouts and backoff."""
    values = dict(api_key=fake.DEFAULT_KEY, db=db, base_url="http://127.0.0.1", timeout=5.0)
    values.update(overrides)
    return RunSettings(**values)


def in_process(sandbox: fake.Sandbox) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=sandbox.app)
