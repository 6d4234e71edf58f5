"""`campaign validate`: every problem by row before anything is sent, and the account preflight."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import SENDER, TEMPLATE, phone
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app

runner = CliRunner()


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("AUTOCALLS_API_KEY", raising=False)


def test_a_clean_file_exits_0(recipients, no_key):
    """No invalid row: exit 0 and a summary line."""
    result = runner.invoke(app, ["validate", str(recipients(3))])
    assert result.exit_code == 0
    assert "3 valid, 0 invalid, 0 skipped" in result.stdout


def test_json_is_one_object_naming_rows(recipients, no_key):
    """--json prints exactly one object with the counts and each problem's row."""
    path = recipients(4, phones=[phone(1), "not a phone", phone(1), phone(2)])
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert (report["valid_rows"], report["invalid_rows"], report["skipped_rows"]) == (2, 1, 1)
    assert set(report["problems"][0]) == {"row", "column", "code", "message"}
    assert {(p["row"], p["code"]) for p in report["problems"]} >= {
        (3, "invalid_phone"),
        (4, "duplicate"),
    }


def test_file_level_problem_has_no_row(tmp_path, no_key):
    """A file without a phone column: one problem whose row is null, listing the headers."""
    path = tmp_path / "list.csv"
    path.write_text("who,what\nAda,1\n")
    report = json.loads(runner.invoke(app, ["validate", str(path), "--json"]).stdout)
    assert report["problems"][0]["row"] is None
    assert "who" in report["problems"][0]["message"]


def test_problems_file(recipients, tmp_path, no_key):
    """--problems writes every problem as row,column,value,code,message."""
    path = recipients(2, phones=["12", "34"])
    out = tmp_path / "problems.csv"
    runner.invoke(app, ["validate", str(path), "--problems", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["row", "column", "value", "code", "message"]
    assert [r["row"] for r in rows] == ["2", "3"]


def test_offline_variables(tmp_path, no_key):
    """--variables checks the columns against the template's variables without a key."""
    path = tmp_path / "list.csv"
    path.write_text("phone,name,customer_name\n+14155550100,Ada,Ada\n")
    result = runner.invoke(
        app, ["validate", str(path), "--variables", "customer_name,date", "--json"]
    )
    assert result.exit_code == 2
    assert "date" in json.loads(result.stdout)["problems"][0]["message"]


def test_preflight_shows_the_balance(api, recipients):
    """With a key, sender and template: the account is asked and the balance shown."""
    result = runner.invoke(
        app,
        [
            "validate",
            str(recipients(2)),
            "--sender-id",
            str(SENDER),
            "--template-id",
            str(TEMPLATE),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "balance" in result.output


@pytest.mark.parametrize(
    ("sender", "template", "words"),
    [
        (fake.OFFLINE_SENDER_ID, fake.PLAIN_TEMPLATE_OF[fake.OFFLINE_SENDER_ID], "offline"),
        (SENDER, fake.PENDING_TEMPLATE_ID, "pending"),
        (fake.UNKNOWN_SENDER_ID, TEMPLATE, "not on this account"),
        (SENDER, 9999, "not on this account"),
    ],
)
def test_preflight_refusals(api, recipients, sender, template, words):
    """An offline sender, an unapproved or unknown template: one sentence, exit 2."""
    result = runner.invoke(
        app,
        [
            "validate",
            str(recipients(1)),
            "--sender-id",
            str(sender),
            "--template-id",
            str(template),
        ],
    )
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output


def test_red_sender_warns_or_is_refused(api, recipients):
    """A RED quality rating warns; with --block-red it refuses."""
    args = [
        "validate",
        str(recipients(1)),
        "--sender-id",
        str(fake.RED_SENDER_ID),
        "--template-id",
        str(fake.PLAIN_TEMPLATE_OF[fake.RED_SENDER_ID]),
    ]
    warned = runner.invoke(app, args)
    assert warned.exit_code == 0 and "RED" in warned.output
    assert runner.invoke(app, [*args, "--block-red"]).exit_code == 2


def test_tier_too_small(api, recipients):
    """More unique recipients than the sender's daily tier: refused unless --allow-partial."""
    args = [
        "validate",
        str(recipients(fake.SMALL_MESSAGING_LIMIT + 1)),
        "--sender-id",
        str(fake.SMALL_LIMIT_SENDER_ID),
        "--template-id",
        str(fake.PLAIN_TEMPLATE_OF[fake.SMALL_LIMIT_SENDER_ID]),
    ]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "tier" in refused.output
    assert runner.invoke(app, [*args, "--allow-partial"]).exit_code == 0


def test_preflight_failure_in_json_mode(api, recipients):
    """--json still prints one object when the account check fails."""
    result = runner.invoke(
        app,
        [
            "validate",
            str(recipients(1)),
            "--sender-id",
            str(fake.OFFLINE_SENDER_ID),
            "--template-id",
            "130",
            "--json",
        ],
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["problems"][0]["code"] == "preflight"
