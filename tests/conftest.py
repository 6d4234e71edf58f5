"""Fixtures shared by the test files: async backend, stores, recipient files, the sandbox.

Plain helper functions live in tests/helpers.py; test files import them from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import postgres_database, write_recipients

from campaign import sandbox as fake


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


@pytest.fixture
def recipients(tmp_path):
    """A factory of recipient CSV files in the test's temporary directory."""
    counter = iter(range(1000))

    def make(n: int, **kwargs) -> Path:
        return write_recipients(tmp_path / f"list{next(counter)}.csv", n, **kwargs)

    return make
