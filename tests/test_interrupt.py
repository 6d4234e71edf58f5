"""Ctrl-C: requests in flight finish and are recorded, the rest stays pending, exit 130.

Also: while a run is active, `status` shows its rate and the time left.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from helpers import campaign_argv, cli_env, run_argv, wait_for, write_recipients

from campaign import sandbox as fake
from campaign.store import Store

pytestmark = pytest.mark.slow


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    """SIGINT mid-run: exit 130, nothing left `sending`, every accepted send recorded."""
    sandbox = fake.Sandbox(latency=0.8)  # answers slow enough that some are in flight
    db = str(tmp_path / "c.db")
    path = write_recipients(tmp_path / "list.csv", 30)
    env = cli_env(db)
    with fake.running(sandbox) as base_url:
        command = run_argv(path, base_url)
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: len(sandbox.messages) >= 5)
        status = subprocess.run(
            campaign_argv("status", "--json"), env=env, capture_output=True, text=True, timeout=30
        )
        live = json.loads(status.stdout)[0]
        assert live["active"] and live["rate"] > 0 and live["eta_seconds"] is not None
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "campaign resume" in stderr

        store = Store.open(db)
        campaign = store.campaigns()[0]
        counts = store.counts(campaign.id)
        assert counts["sending"] == 0 and counts["unknown"] == 0
        assert counts["sent"] == len(sandbox.messages)  # in flight at the signal: recorded
        assert counts["pending"] > 0

        resumed = subprocess.run(
            campaign_argv("resume", campaign.name, "--base-url", base_url),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert resumed.returncode == 0, resumed.stderr
    assert store.counts(campaign.id)["sent"] == 30
    assert sandbox.duplicates() == {}
