"""Helpers the test files share: test numbers, recipient files, command lines, waiting."""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from campaign import sandbox as fake
from campaign.runner import LoadSettings, RunSettings, SendSettings

SENDER = fake.DEMO_SENDER_ID
TEMPLATE = fake.DEMO_TEMPLATE_ID
PG_URL = os.environ.get("CAMPAIGN_TEST_PG_URL")


def postgres_database():
    """A context manager: a new, empty database on the test server, dropped afterwards."""

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


def settings_for(db: str, **overrides) -> RunSettings:
    """Run settings for a sandbox: its key, loopback, short timeouts and backoff.

    An override names a field of RunSettings, LoadSettings or SendSettings.
    """
    loading = {k: overrides.pop(k) for k in list(overrides) if k in LOADING}
    sending = {"timeout": 5.0} | {k: overrides.pop(k) for k in list(overrides) if k in SENDING}
    values = dict(api_key=fake.DEFAULT_KEY, db=db, base_url="http://127.0.0.1")
    return RunSettings(
        **values | overrides, loading=LoadSettings(**loading), sending=SendSettings(**sending)
    )


LOADING = {f.name for f in dataclasses.fields(LoadSettings)}
SENDING = {f.name for f in dataclasses.fields(SendSettings)}


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
