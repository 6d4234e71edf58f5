"""The installed wheel: migrations and samples ship inside it, and a campaign runs."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=True, timeout=300, **kwargs
    )


def test_wheel_installs_and_runs_the_demo(tmp_path):
    """A wheel built from the tree, installed in a fresh virtualenv, runs `campaign demo`."""
    dist = tmp_path / "dist"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        dist,
        ROOT,
    )
    wheel = next(dist.glob("campaign-*.whl"))

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    # The wheel goes into the fresh environment; its dependencies come from ours, read
    # through a .pth file (no network), which does not load our editable install.
    fresh_site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (fresh_site / "deps.pth").write_text("\n".join(deps) + "\n")
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", fresh_site, wheel)

    where = run(python, "-c", "import campaign; print(campaign.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(fresh_site))
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPAIGN_DB", "AUTOCALLS_API_KEY")}
    demo = run(
        python, "-m", "campaign", "demo", "--db", tmp_path / "demo.db", cwd=tmp_path, env=env
    )
    assert "sent" in demo.stdout
    assert (tmp_path / "demo.db").exists()
