"""The command line: exit codes, one-line errors, status and reports (typer's CliRunner)."""

from __future__ import annotations

import csv
import io
import json

from helpers import SENDER, TEMPLATE, phone
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.report import COLUMNS

runner = CliRunner()


def run_args(path, db) -> list[str]:
    return [
        "run",
        str(path),
        "--sender-id",
        str(SENDER),
        "--template-id",
        str(TEMPLATE),
        "--db",
        db,
        "--name",
        "spring",
    ]


def test_run_then_status_and_report(api, recipients, db_path):
    """A run sends everything (exit 0); status and report tell the same story."""
    result = runner.invoke(app, run_args(recipients(3), db_path))
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["status", "spring", "--db", db_path, "--json"])
    state = json.loads(status.stdout)
    assert state["counts"]["sent"] == 3 and state["name"] == "spring"
    report = runner.invoke(app, ["report", "spring", "--db", db_path])
    lines = list(csv.DictReader(io.StringIO(report.stdout)))
    assert tuple(lines[0]) == COLUMNS
    assert [line["state"] for line in lines] == ["sent"] * 3
    assert lines[0]["phone"] == phone(0)  # an E.164 phone is not defused


def test_json_report(api, recipients, db_path, tmp_path):
    """--format json --out writes the campaign, its counts and one object per row."""
    runner.invoke(app, run_args(recipients(2), db_path))
    out = tmp_path / "report.json"
    result = runner.invoke(
        app, ["report", "spring", "--db", db_path, "--format", "json", "--out", str(out)]
    )
    assert result.exit_code == 0
    report = json.loads(out.read_text())
    assert report["counts"]["sent"] == 2 and len(report["rows"]) == 2


def test_bad_rows_exit_2_naming_the_row(api, recipients, db_path):
    """An invalid phone: exit 2, the row named, no traceback, nothing sent."""
    path = recipients(2, phones=[phone(1), "12"])
    result = runner.invoke(app, run_args(path, db_path))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "3" in result.output and "--skip-invalid" in result.output
    assert api.messages == []


def test_failed_rows_exit_1(api, recipients, db_path):
    """A row the API refuses: the campaign finishes with exit 1."""
    path = recipients(2, phones=[phone(1), fake.TWILIO_ERROR_PHONE])
    assert runner.invoke(app, run_args(path, db_path)).exit_code == 1


def test_halt_exits_3_and_status_shows_why(monkeypatch, recipients, db_path):
    """An empty balance halts with exit 3; status shows the reason."""
    sandbox = fake.Sandbox(balance=1)
    with fake.running(sandbox) as base_url:
        monkeypatch.setenv("AUTOCALLS_API_KEY", fake.DEFAULT_KEY)
        monkeypatch.setenv("AUTOCALLS_BASE_URL", base_url)
        result = runner.invoke(app, run_args(recipients(3), db_path))
    assert result.exit_code == 3
    status = runner.invoke(app, ["status", "spring", "--db", db_path])
    assert "INSUFFICIENT_BALANCE" in status.stdout


def test_no_api_key(monkeypatch, recipients, db_path):
    """Without a key: one clear line, exit 2."""
    monkeypatch.delenv("AUTOCALLS_API_KEY", raising=False)
    result = runner.invoke(app, run_args(recipients(1), db_path))
    assert result.exit_code == 2
    assert "AUTOCALLS_API_KEY" in result.output


def test_api_key_file(api, recipients, db_path, tmp_path, monkeypatch):
    """--api-key-file is read (the environment is not needed)."""
    monkeypatch.delenv("AUTOCALLS_API_KEY")
    key_file = tmp_path / "key"
    key_file.write_text(fake.DEFAULT_KEY + "\n")
    args = [*run_args(recipients(1), db_path), "--api-key-file", str(key_file)]
    assert runner.invoke(app, args).exit_code == 0


def test_plain_http_elsewhere_is_refused(recipients, db_path, monkeypatch):
    """A plain http base URL off loopback: exit 2 before anything is sent."""
    monkeypatch.setenv("AUTOCALLS_API_KEY", "k")
    args = [*run_args(recipients(1), db_path), "--base-url", "http://api.example.com"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "https" in result.output


def test_missing_file(api, db_path):
    """A file that does not exist: exit 2 and its name."""
    result = runner.invoke(app, run_args("nowhere.csv", db_path))
    assert result.exit_code == 2 and "nowhere.csv" in result.output


def test_resume_unknown_campaign(api, db_path):
    """Resuming a name the store does not know: exit 2, saying so."""
    result = runner.invoke(app, ["resume", "nope", "--db", db_path])
    assert result.exit_code == 2 and "no campaign named 'nope'" in result.output


def test_resume_by_name(api, recipients, db_path):
    """`resume NAME` sends what is pending without the file."""
    sandbox = api
    sandbox.balance = 1
    runner.invoke(app, run_args(recipients(3), db_path))
    sandbox.top_up(10)
    result = runner.invoke(app, ["resume", "spring", "--db", db_path])
    assert result.exit_code == 0
    assert len(sandbox.messages) == 3


def test_retry_unknown_needs_consent(api, db_path):
    """Retrying unknown rows without a terminal needs --yes."""
    result = runner.invoke(app, ["retry", "spring", "--unknown", "--db", db_path])
    assert result.exit_code == 2 and "--yes" in result.output


def test_retry_failed_sends_them_again(api, recipients, db_path):
    """`retry --failed` puts failed rows back to pending and sends them."""
    sandbox = api
    sandbox.faults = fake.Faults(error_503_phones={phone(1)})  # the API is in maintenance
    runner.invoke(app, [*run_args(recipients(2), db_path), "--max-attempts", "1"])
    sandbox.faults = fake.Faults()
    result = runner.invoke(app, ["retry", "spring", "--failed", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert sandbox.messages_to(phone(1)) == 1


def test_help_is_the_docstring():
    """Each command's --help shows its docstring."""
    result = runner.invoke(app, ["run", "--help"])
    assert "Send the template to every recipient" in result.stdout


def test_list_and_html_report(api, recipients, db_path, tmp_path):
    """`list` shows every campaign; `report --html` writes a page."""
    runner.invoke(app, run_args(recipients(2), db_path))
    listed = runner.invoke(app, ["list", "--db", db_path, "--json"])
    assert [c["name"] for c in json.loads(listed.stdout)] == ["spring"]
    assert "spring" in runner.invoke(app, ["list", "--db", db_path]).stdout
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "spring", "--db", db_path, "--html", str(page)])
    assert result.exit_code == 0 and "<svg" in page.read_text()


def test_server_text_is_printed_as_written_not_as_markup(db_path):
    """A halt reason holding `[redacted]` or `[/]` prints literally, never a markup crash."""
    from campaign.store import Store

    store = Store.open(db_path)
    campaign = store.create_campaign(
        name="odd",
        fingerprint="f",
        source="odd.csv",
        account="a" * 32,
        sender_id=SENDER,
        template_id=TEMPLATE,
        recipients=[],
    )
    store.set_status(campaign.id, "halted", "HTTP_401: Invalid token Bearer [redacted] [/]")
    store.close()
    result = runner.invoke(app, ["status", "odd", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert "halted: HTTP_401: Invalid token Bearer [redacted] [/]" in result.output
