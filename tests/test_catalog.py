"""Senders and templates by name, the preview of `validate`, and `campaign test`.

Over the real CLI (typer's CliRunner) against the sandbox on loopback, with real SQLite
stores.
"""

from __future__ import annotations

import csv
import json
import os

import httpx
import pytest
import sqlalchemy as sa
from helpers import SENDER, TEMPLATE, in_process, phone, settings_for, write_recipients
from typer.testing import CliRunner

from campaign import catalog
from campaign import sandbox as fake
from campaign.cli import app
from campaign.model import SendOutcome
from campaign.preview import Body
from campaign.store import Store

runner = CliRunner()
SENDER_PHONE = "+14155551234"  # the sandbox's sender 12
OPERATOR = "+447911123456"  # the operator's own number in `campaign test`
REMINDER = "Hi {}, this is a reminder of your appointment on {}. Reply STOP to opt out."


def sandbox_messages() -> list[dict]:
    """What the sandbox accepted, read over its inspection endpoint."""
    base_url = os.environ["AUTOCALLS_BASE_URL"]
    return httpx.get(f"{base_url}/sandbox/messages").json()["data"]


def turns(db: str) -> int:
    """How many turns the store's turn log holds, every account together."""
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = conn.scalar(sa.text("SELECT count(*) FROM account_turns"))
    engine.dispose()
    return n


def stored_ids(db: str, name: str) -> tuple[int, int]:
    with Store.open(db) as store:
        campaign = store.find_campaign(name)
    assert campaign is not None
    return campaign.sender_id, campaign.template_id


def run_args(path, db, sender, template, *more) -> list[str]:
    return ["run", str(path), "--sender-id", sender, "--template-id", template, "--db", db, *more]


def test_senders_table_and_json(api, db_path):
    """`senders` lists every sender, offline ones too, as a table and as JSON."""
    table = runner.invoke(app, ["senders", "--db", db_path])
    assert table.exit_code == 0, table.output
    assert SENDER_PHONE in table.stdout and "Acme Support" in table.stdout
    assert "offline" in table.stdout and "10,000 / 24hr" in table.stdout
    listed = json.loads(runner.invoke(app, ["senders", "--db", db_path, "--json"]).stdout)
    by_id = {s["id"]: s for s in listed}
    assert by_id[SENDER] == {
        "id": SENDER,
        "phone_number": SENDER_PHONE,
        "display_name": "Acme Support",
        "status": "online",
        "quality_rating": "GREEN",
        "messaging_limit": 10_000,
        "messaging_tier": "10,000 / 24hr",
    }
    assert by_id[fake.OFFLINE_SENDER_ID]["status"] == "offline"


def test_templates_approved_by_default_all_with_flag(api, db_path):
    """`templates` shows approved templates; --all adds pending and rejected; a phone names
    the sender."""
    args = ["templates", "--sender-id", "+1 415-555-1234", "--db", db_path]
    approved = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    ids = {t["id"] for t in approved}
    assert {TEMPLATE, fake.WELCOME_EN_TEMPLATE_ID, fake.WELCOME_ES_TEMPLATE_ID} <= ids
    assert fake.PENDING_TEMPLATE_ID not in ids
    reminder = next(t for t in approved if t["id"] == TEMPLATE)
    assert reminder["variables"] == ["customer_name", "date"] and reminder["language"] == "en"
    every = json.loads(runner.invoke(app, [*args, "--all", "--json"]).stdout)
    assert {fake.PENDING_TEMPLATE_ID, fake.REJECTED_TEMPLATE_ID} <= {t["id"] for t in every}
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "welcome" in table.stdout and "customer_name" in table.stdout


def test_names_resolve_to_the_ids_the_store_records(api, recipients, db_path):
    """A phone and name:lang run the ids' campaign: the store records the ids, and running
    again with the ids is the same campaign (nothing sent twice)."""
    path = recipients(2)
    by_name = runner.invoke(app, run_args(path, db_path, SENDER_PHONE, "welcome:ES"))
    assert by_name.exit_code == 0, by_name.output
    with Store.open(db_path) as store:
        (campaign,) = store.campaigns()
    assert (campaign.sender_id, campaign.template_id) == (SENDER, fake.WELCOME_ES_TEMPLATE_ID)
    by_id = runner.invoke(
        app, run_args(path, db_path, str(SENDER), str(fake.WELCOME_ES_TEMPLATE_ID))
    )
    assert by_id.exit_code == 0, by_id.output
    with Store.open(db_path) as store:
        assert len(store.campaigns()) == 1
    assert len(api.messages) == 2
    assert {m.template_id for m in api.messages} == {fake.WELCOME_ES_TEMPLATE_ID}


def test_a_unique_name_resolves(api, recipients, db_path):
    """A template's name alone, when only one template has it, is that template."""
    args = run_args(recipients(1), db_path, str(SENDER), "appointment_reminder", "--name", "n")
    assert runner.invoke(app, args).exit_code == 0
    assert stored_ids(db_path, "n") == (SENDER, TEMPLATE)


def test_config_file_takes_a_phone_and_a_name(api, recipients, tmp_path, db_path):
    """Config keys sender_id and template_id take a phone and name:language too."""
    path = recipients(1)
    config = tmp_path / "campaign.toml"
    config.write_text(
        f'recipients = "{path.name}"\nsender_id = "{SENDER_PHONE}"\n'
        f'template_id = "welcome:en"\nname = "configured"\n'
    )
    result = runner.invoke(app, ["run", "--config", str(config), "--db", db_path])
    assert result.exit_code == 0, result.output
    assert stored_ids(db_path, "configured") == (SENDER, fake.WELCOME_EN_TEMPLATE_ID)


def test_ambiguous_name_refuses_listing_candidates(api, recipients, db_path):
    """A name two templates share: exit 2, one line naming both, nothing sent."""
    result = runner.invoke(app, run_args(recipients(1), db_path, str(SENDER), "welcome"))
    assert result.exit_code == 2
    assert "ambiguous" in result.output
    assert "welcome:en (41)" in result.output and "welcome:es (42)" in result.output
    assert "Traceback" not in result.output and api.messages == []


@pytest.mark.parametrize(
    ("sender", "template", "listed"),
    [
        (str(SENDER), "no_such_template", "appointment_reminder:en (45)"),
        (str(SENDER), "welcome:fr", "welcome:es (42)"),
        ("+14155550000", "45", f"{SENDER} ({SENDER_PHONE}, Acme Support)"),
        ("Acme Support", "45", f"{SENDER} ({SENDER_PHONE}, Acme Support)"),
    ],
)
def test_unknown_value_refuses_listing_candidates(
    api, recipients, db_path, sender, template, listed
):
    """An unknown template name or sender phone: exit 2, the candidates listed."""
    result = runner.invoke(app, run_args(recipients(1), db_path, sender, template))
    assert result.exit_code == 2, result.output
    assert listed in result.output
    assert api.messages == []


@pytest.mark.anyio
async def test_plain_ids_cost_no_request(tmp_path):
    """catalog.resolve with ids asks nothing; with names it asks the sandbox (console API)."""
    sandbox = fake.Sandbox()
    settings = settings_for(str(tmp_path / "c.db"))
    transport = in_process(sandbox)
    assert await catalog.resolve(settings, "12", "45", transport=transport) == (12, 45)
    assert sandbox.requests == []
    found = await catalog.resolve(settings, SENDER_PHONE, "welcome:en", transport=transport)
    assert found == (SENDER, fake.WELCOME_EN_TEMPLATE_ID)
    listed = await catalog.templates(settings, SENDER, transport=transport)
    assert all(t.status == "approved" for t in listed)
    online = await catalog.senders(settings, include_offline=False, transport=transport)
    assert fake.OFFLINE_SENDER_ID not in {s.id for s in online}


def test_reads_take_turns_of_the_account(api, db_path):
    """`senders` and `templates` book their requests in the account's turn log."""
    runner.invoke(app, ["senders", "--db", db_path])
    assert turns(db_path) == 1
    runner.invoke(app, ["templates", "--sender-id", SENDER_PHONE, "--db", db_path])
    assert turns(db_path) == 3  # the senders, to find the phone; then the templates


def long_list(tmp_path):
    """Three recipients; row 3 (the second) has the longest name value."""
    path = write_recipients(tmp_path / "long.csv", 3)
    rows = list(csv.reader(path.open()))
    rows[2][2] = "Maximiliana Alexandrina"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_validate_previews_first_and_longest(api, tmp_path, db_path):
    """validate shows row 2's message filled in and the longest (row 3) against 1,024."""
    path = long_list(tmp_path)
    args = ["validate", str(path), "--sender-id", SENDER_PHONE, "--template-id", "45"]
    result = runner.invoke(app, [*args, "--db", db_path])
    assert result.exit_code == 0, result.output
    assert REMINDER.format("R0", "1 December 2026") in result.stdout
    longest = REMINDER.format("Maximiliana Alexandrina", "1 December 2026")
    assert f"longest message: row 3, {len(longest)} of 1,024 characters" in result.stdout
    shown = json.loads(runner.invoke(app, [*args, "--db", db_path, "--json"]).stdout)
    assert shown["preview"] == {
        "first": {"row": 2, "text": REMINDER.format("R0", "1 December 2026")},
        "longest": {"row": 3, "text": longest, "length": len(longest)},
    }


def test_test_send_sends_exactly_one(api, recipients, db_path):
    """`test` sends one message with row 3's values to --to, records it, marks no row."""
    path = recipients(3)
    args = ["test", str(path), "--to", "+44 7911 123456", "--sender-id", SENDER_PHONE]
    result = runner.invoke(
        app, [*args, "--template-id", "welcome:en", "--row", "3", "--db", db_path]
    )
    assert result.exit_code == 0, result.output
    (message,) = sandbox_messages()
    assert message["phone"] == OPERATOR and message["name"] == "Recipient 1"
    assert message["variables"] == {"1": "R1", "2": "1 December 2026"}
    assert message["template_id"] == fake.WELCOME_EN_TEMPLATE_ID
    assert "Hi R1, welcome to Acme!" in result.stdout and message["message_sid"] in result.stdout
    with Store.open(db_path) as store:
        (sent,) = store.test_sends()
        assert store.campaigns() == []
    assert (sent.status, sent.row, sent.to_phone, sent.http_status) == ("sent", 3, OPERATOR, 200)
    assert sent.message_sid == message["message_sid"]


def test_test_send_refused_by_the_api_exits_1(api, recipients, db_path):
    """A test send the API refuses: its answer shown, recorded failed, exit 1."""
    args = ["test", str(recipients(1)), "--to", fake.TWILIO_ERROR_PHONE, "--db", db_path]
    result = runner.invoke(app, [*args, "--sender-id", "12", "--template-id", "45"])
    assert result.exit_code == 1
    assert fake.TWILIO_ERROR_CODE in result.stdout
    with Store.open(db_path) as store:
        (sent,) = store.test_sends()
    assert (sent.status, sent.error_code, sent.row) == ("failed", fake.TWILIO_ERROR_CODE, 2)


@pytest.mark.parametrize(
    ("more", "said"),
    [
        (["--to", "12345"], "--to '12345'"),
        (["--to", OPERATOR, "--row", "1"], "first one is row 2"),
        (["--to", OPERATOR, "--row", "9"], "no such row"),
        (["--to", OPERATOR, "--row", "3"], "not valid"),
    ],
)
def test_test_send_refuses_bad_to_or_row(api, recipients, db_path, more, said):
    """An invalid --to or --row: one line, exit 2, nothing sent."""
    path = recipients(2, phones=[phone(0), "12"])  # row 3 is invalid
    args = ["test", str(path), "--sender-id", "12", "--template-id", "45", "--db", db_path]
    result = runner.invoke(app, [*args, *more])
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
    assert sandbox_messages() == []


def test_test_sends_are_stored_apart(store_db):
    """A test send is recorded `sending` first, then its outcome, in SQLite and PostgreSQL."""
    with Store.open(store_db) as store:
        test_id = store.start_test_send(
            account="acct", sender_id=12, template_id=45, to_phone=OPERATOR, source="a.csv", row=2
        )
        assert [t.status for t in store.test_sends()] == ["sending"]
        store.finish_test_send(test_id, "unknown", SendOutcome(None, "READ_TIMEOUT", "no answer"))
        (sent,) = store.test_sends("acct")
        assert (sent.status, sent.error_code, sent.http_status) == ("unknown", "READ_TIMEOUT", None)
        assert store.test_sends("another account") == [] and store.campaigns() == []


def test_body_fills_by_position_or_name():
    """A placeholder takes its position's value or its name's; nothing else touches it."""
    body = Body("Hi {{1}}, on {{ date }} at {{3}}", ["customer_name", "date"])
    assert body.fill({"1": "Ann", "2": "May 1"}) == "Hi Ann, on May 1 at {{3}}"
    assert body.fill({"customer_name": "Bo", "date": "today"}) == "Hi Bo, on today at {{3}}"
    assert body.length({"1": "Ann", "2": "May 1"}) == len("Hi Ann, on May 1 at {{3}}")


def test_test_send_maps_columns_as_run_does(api, tmp_path, db_path):
    """`test` takes run's column flags: a CRM export's own headers send as they would."""
    path = tmp_path / "crm.csv"
    path.write_text(f"Cell,First Name,Last Name,Nome,Quando\n{phone(1)},Ann,Lee,Ann,May 1\n")
    args = ["test", str(path), "--to", OPERATOR, "--sender-id", "12", "--template-id", "45"]
    mapping = ["--phone-column", "Cell", "--var", "1=Nome", "--var", "2=Quando"]
    result = runner.invoke(app, [*args, *mapping, "--db", db_path])
    assert result.exit_code == 0, result.output
    (message,) = sandbox_messages()
    assert (message["name"], message["variables"]) == ("Ann Lee", {"1": "Ann", "2": "May 1"})
