"""Fixtures shared by the test files: async backend, stores, the sandbox."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiolimiter is asyncio-only


@pytest.fixture
def db_path(tmp_path):
    """A fresh SQLite store file, as a path string."""
    return str(tmp_path / "campaigns.db")
