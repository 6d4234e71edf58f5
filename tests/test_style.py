"""The code stays in the house style: ruff finds nothing to say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ["campaign", "migrations", "samples", "tests", "bench"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *CODE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ruff_check():
    """`ruff check` passes on every Python file of the project."""
    result = ruff("check")
    assert result.returncode == 0, result.stdout


def test_ruff_format():
    """`ruff format --check` finds nothing to reformat."""
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout
