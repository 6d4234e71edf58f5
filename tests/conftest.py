"""Fixtures shared by the test files: async backend, stores, recipient files, the sandbox."""

from __future__ import annotations

import csv
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from campaign import sandbox as fake
from campaign.runner import RunSettings

SENDER = fake.DEMO_SENDER_ID
TEMPLATE = fake.DEMO_TEMPLATE_ID


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api(monkeypatch, tmp_path):
    """A sandbox on loopback, with the key, its address and a fresh store in the environment."""
    sandbox = fake.Sandbox()
    with fake.running(sandbox) as base_url:
        monkeypatch.setenv("AUTOCALLS_API_KEY", fake.DEFAULT_KEY)
        monkeypatch.setenv("AUTOCALLS_BASE_URL", base_url)
        monkeypatch.setenv("CAMPAIGN_DB", str(tmp_path / "api-campaigns.db"))
        yield sandbox


@pytest.fixture
def db_path(tmp_path) -> str:
    """A fresh SQLite store file, as a path string."""
    return str(tmp_path / "campaigns.db")


PG_URL = os.environ.get("CAMPAIGN_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request, tmp_path):
    """A fresh store: a SQLite file, then a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "campaigns.db")
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def pg_url():
    """A new database on the test PostgreSQL server."""
    with postgres_database() as url:
        yield url


def postgres_database():
    """A context manager: a new, empty database on the test server, dropped afterwards."""
    from contextlib import contextmanager

    @contextmanager
    def database():
        if not PG_URL:  # under CI the server must be there: .ci/run starts it
            if os.environ.get("CI"):
                pytest.fail("CAMPAIGN_TEST_PG_URL is not set: PostgreSQL tests must run in CI")
            pytest.skip("CAMPAIGN_TEST_PG_URL is not set")
        name = f"campaign_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

    return database()


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


def cli_env(db: str) -> dict[str, str]:
    """The environment of a `campaign` subprocess: the sandbox's key and this store."""
    env = dict(os.environ, AUTOCALLS_API_KEY=fake.DEFAULT_KEY, CAMPAIGN_DB=db)
    env.pop("AUTOCALLS_BASE_URL", None)
    return env


def campaign_argv(*args: object) -> list[str]:
    """The command line of `python -m campaign ARGS`, as a real user runs it."""
    return [sys.executable, "-m", "campaign", *map(str, args)]


def run_argv(path: Path, base_url: str, *more: object, template: int = TEMPLATE) -> list[str]:
    """`campaign run PATH` for the sandbox's demo sender (and template) at `base_url`."""
    return campaign_argv(
        "run",
        path,
        "--sender-id",
        SENDER,
        "--template-id",
        template,
        "--base-url",
        base_url,
        *more,
    )


def wait_for(condition: Callable[[], bool], bound: float = 30.0, what: str = "it") -> None:
    """Poll `condition` until it holds; fail after `bound` seconds."""
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
