"""PostgreSQL as the store: every command works with --db postgresql+psycopg://…"""

from __future__ import annotations

import json

from helpers import SENDER, TEMPLATE, phone
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app

runner = CliRunner()


def test_every_command_on_postgresql(pg_url, recipients, monkeypatch):
    """run, status, report, list, resume and retry all work against PostgreSQL."""
    sandbox = fake.Sandbox(balance=2, faults=fake.Faults(error_503_phones={phone(0)}))
    with fake.running(sandbox) as base_url:
        monkeypatch.setenv("AUTOCALLS_API_KEY", fake.DEFAULT_KEY)
        monkeypatch.setenv("AUTOCALLS_BASE_URL", base_url)
        monkeypatch.setenv("CAMPAIGN_DB", pg_url)
        run = [
            "run",
            str(recipients(4)),
            "--sender-id",
            str(SENDER),
            "--template-id",
            str(TEMPLATE),
            "--name",
            "pg",
            "--max-attempts",
            "1",
        ]
        assert runner.invoke(app, run).exit_code == 3  # the balance runs out
        status = json.loads(runner.invoke(app, ["status", "pg", "--json"]).stdout)
        assert "INSUFFICIENT_BALANCE" in status["halt_reason"]
        sandbox.top_up(10)
        assert runner.invoke(app, ["resume", "pg"]).exit_code == 1  # phone(0): maintenance
        sandbox.faults = fake.Faults()
        assert runner.invoke(app, ["retry", "pg", "--failed"]).exit_code == 0
        report = json.loads(runner.invoke(app, ["report", "pg", "--format", "json"]).stdout)
        listed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert [r["state"] for r in report["rows"]] == ["sent"] * 4
    assert listed[0]["counts"]["sent"] == 4
    assert sandbox.duplicates() == {}
