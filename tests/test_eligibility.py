"""Who may be messaged: the suppression list (SUPPRESSED) and the frequency cap across
campaigns (FREQUENCY_CAP), decided when each row is claimed (eligibility.py).

Real SQLite files (and PostgreSQL where the `store_db` fixture gives it), the sandbox
in process or on loopback, the real CLI (typer's runner, and subprocesses).
"""

from __future__ import annotations

import csv
import json
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import openpyxl
import pytest
import sqlalchemy as sa
from helpers import SENDER, TEMPLATE, campaign_argv, cli_env, in_process, phone, settings_for
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.config import read_config
from campaign.eligibility import Cap, Eligibility, parse_cap
from campaign.errors import UsageError
from campaign.model import FREQUENCY_CAP, SUPPRESSED, Recipient, RowEvent, RowState
from campaign.runner import run_campaign
from campaign.store import Row, Store

DAY = 86400.0
PLAIN_TEMPLATE = fake.NO_VARIABLES_TEMPLATE_ID  # another message to the same people
cli = CliRunner()


def write_csv(path: Path, phones: list[str]) -> Path:
    """A recipients CSV for the demo template, one row per phone."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        for p in phones:
            writer.writerow([p, f"Customer {p[-4:]}", f"C{p[-4:]}", "1 December 2026"])
    return path


def phones(*numbers: int) -> list[str]:
    return [phone(i) for i in numbers]


def rows_of(db: str, name: str) -> dict[str, tuple[str, str | None, str | None]]:
    """phone -> (state, error code, error message) of one campaign's rows."""
    with Store.open(db) as store:
        campaign = store.find_campaign(name)
        assert campaign is not None
        return {
            r.phone: (r.state, r.error_code, r.error_message)
            for r in store.report_rows(campaign.id)
        }


def send_args(db: str, *more: str, template: int = TEMPLATE) -> list[str]:
    return ["--sender-id", str(SENDER), "--template-id", str(template), "--db", db, *more]


def new_campaign(store: Store, name: str, numbers: list[str], template: int = TEMPLATE):
    """A campaign of these numbers on account "acct", stored directly."""
    recipients = [Recipient(i + 2, p, "R", {"1": "x"}) for i, p in enumerate(numbers)]
    return store.create_campaign(
        name=name,
        fingerprint=name.ljust(64, "0"),
        source=f"{name}.csv",
        account="acct",
        sender_id=SENDER,
        template_id=template,
        recipients=recipients,
    )


# --- the suppression list --------------------------------------------------------------


def test_suppress_add_list_remove(api, db_path):
    """add (E.164 or national with --default-region), list (text and --json), remove."""
    added = cli.invoke(
        app,
        [
            *("suppress", "add", phone(1), "(415) 555-0002", "--default-region", "US"),
            *("--reason", "replied STOP", "--db", db_path),
        ],
    )
    assert added.exit_code == 0, added.output
    assert "2 added, 0 already on the list" in added.stdout
    again = cli.invoke(app, ["suppress", "add", phone(1), "--db", db_path])
    assert "0 added, 1 already on the list" in again.stdout
    listed = json.loads(cli.invoke(app, ["suppress", "list", "--json", "--db", db_path]).stdout)
    assert [(n["phone"], n["reason"]) for n in listed] == [
        (phone(1), "replied STOP"),
        (phone(2), "replied STOP"),
    ]
    assert listed[0]["added_at"].endswith("+00:00")
    text = cli.invoke(app, ["suppress", "list", "--db", db_path])
    assert phone(2) in text.stdout and "replied STOP" in text.stdout
    removed = cli.invoke(app, ["suppress", "remove", phone(1), phone(3), "--db", db_path])
    assert "1 removed, 1 not on the list" in removed.stdout
    left = json.loads(cli.invoke(app, ["suppress", "list", "--json", "--db", db_path]).stdout)
    assert [n["phone"] for n in left] == [phone(2)]
    assert fake.DEFAULT_KEY.encode() not in Path(db_path).read_bytes()  # only its hash


def test_a_bad_number_changes_nothing(api, db_path):
    """One word that is no phone number: exit 2, named, and nothing is added."""
    result = cli.invoke(app, ["suppress", "add", phone(1), "call me", "--db", db_path])
    assert result.exit_code == 2
    assert "not phone numbers: 'call me'" in result.output
    listed = json.loads(cli.invoke(app, ["suppress", "list", "--json", "--db", db_path]).stdout)
    assert listed == []


def test_suppress_import_a_csv_names_its_bad_rows(api, tmp_path, db_path):
    """A CSV export of opt-outs: its numbers are added, the unreadable rows named by row."""
    export = tmp_path / "optouts.csv"
    export.write_text(
        "Email,Mobile Number\n"
        f"a@example.com,{phone(1)}\n"
        "b@example.com,not a number\n"
        "c@example.com,(415) 555-0003\n"
        f"d@example.com,{phone(1)}\n"
    )
    result = cli.invoke(
        app,
        [
            *("suppress", "import", str(export), "--default-region", "US", "--db", db_path),
            *("--reason", "CRM opt-out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "2 added, 0 already on the list" in result.stdout
    assert "1 rows were not added" in result.output
    assert "invalid_phone" in result.output and "│ 3 " in result.output  # its spreadsheet row
    listed = json.loads(cli.invoke(app, ["suppress", "list", "--json", "--db", db_path]).stdout)
    assert {(n["phone"], n["reason"]) for n in listed} == {
        (phone(1), "CRM opt-out"),
        (phone(3), "CRM opt-out"),
    }


def test_suppress_import_an_xlsx(api, tmp_path, db_path):
    """A workbook with a Phone column (numbers stored as numbers, too) imports cleanly."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Phone"])
    sheet.append(["Ann", phone(4)])
    sheet.append(["Bob", 14155550005])  # a number cell, as Excel keeps it
    path = tmp_path / "optouts.xlsx"
    workbook.save(path)
    result = cli.invoke(app, ["suppress", "import", str(path), "--db", db_path])
    assert result.exit_code == 0, result.output
    listed = json.loads(cli.invoke(app, ["suppress", "list", "--json", "--db", db_path]).stdout)
    assert {n["phone"] for n in listed} == {phone(4), phone(5)}


def test_a_file_without_a_phone_column_adds_nothing(api, tmp_path, db_path):
    """No phone column: one clear refusal, exit 2."""
    export = tmp_path / "emails.csv"
    export.write_text("Email\na@example.com\n")
    result = cli.invoke(app, ["suppress", "import", str(export), "--db", db_path])
    assert result.exit_code == 2
    assert "nothing was added" in result.output and "no phone column" in result.output


# --- suppressed numbers get nothing ------------------------------------------------------


def test_suppressed_before_a_run_get_nothing(api, tmp_path, db_path):
    """Numbers on the list before the run: skipped SUPPRESSED in the opening pass, with
    the reason; status counts them by code; the others are sent."""
    cli.invoke(app, ["suppress", "add", phone(1), phone(3), "--reason", "STOP", "--db", db_path])
    path = write_csv(tmp_path / "list.csv", phones(0, 1, 2, 3, 4))
    result = cli.invoke(app, ["run", str(path), *send_args(db_path), "--name", "spring"])
    assert result.exit_code == 0, result.output
    assert "2 rows' numbers are on this account's suppression list" in result.output
    assert (api.messages_to(phone(1)), api.messages_to(phone(3))) == (0, 0)
    assert sorted(api.counts_by_phone().values()) == [1, 1, 1]
    rows = rows_of(db_path, "spring")
    assert rows[phone(1)][:2] == ("skipped", SUPPRESSED)
    assert "suppression list since" in rows[phone(1)][2] and "(STOP)" in rows[phone(1)][2]
    status = json.loads(cli.invoke(app, ["status", "spring", "--db", db_path, "--json"]).stdout)
    assert status["counts"]["skipped"] == 2
    assert status["errors"] == [{"state": "skipped", "error_code": SUPPRESSED, "rows": 2}]


def test_the_list_belongs_to_one_account(api, tmp_path, db_path):
    """A number suppressed with another API key is still messaged with this one."""
    other = tmp_path / "other-key"
    other.write_text("another-accounts-key\n")
    cli.invoke(app, ["suppress", "add", phone(1), "--api-key-file", str(other), "--db", db_path])
    path = write_csv(tmp_path / "list.csv", phones(1))
    assert cli.invoke(app, ["run", str(path), *send_args(db_path)]).exit_code == 0
    assert api.messages_to(phone(1)) == 1


@pytest.mark.anyio
async def test_suppressed_during_a_run_get_nothing_after(tmp_path, db_path):
    """Numbers added by another process while the run goes (it waits, on its first sent
    row, for `campaign suppress add` to finish) are not messaged after that moment."""
    sandbox = fake.Sandbox(rate=20)
    path = write_csv(tmp_path / "list.csv", phones(*range(12)))
    later = phones(*range(6, 12))
    done = threading.Event()

    def suppress_them(event: RowEvent) -> None:
        if event.state != RowState.SENT or done.is_set():
            return
        done.set()
        with Store.open(db_path) as store:  # the run has not reached them yet
            campaign = store.campaigns()[0]
            pending = {r.phone for r in store.report_rows(campaign.id) if r.state == "pending"}
        assert set(later) <= pending
        added = subprocess.run(
            campaign_argv("suppress", "add", *later, "--base-url", "http://127.0.0.1"),
            env=cli_env(db_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr

    result = await run_campaign(
        path,
        SENDER,
        TEMPLATE,
        settings_for(db_path, rate=20),
        transport=in_process(sandbox),
        on_row=suppress_them,
    )
    assert done.is_set()
    assert all(sandbox.messages_to(p) == 0 for p in later)
    assert (result.counts["sent"], result.counts["skipped"]) == (6, 6)
    assert {rows_of(db_path, result.campaign.name)[p][1] for p in later} == {SUPPRESSED}


def test_the_claim_reads_the_list_in_its_own_transaction(store_db):
    """A number suppressed after the opening pass is refused by the claim itself."""
    with Store.open(store_db) as store:
        campaign = new_campaign(store, "a", phones(0, 1))
        assert store.skip_suppressed(campaign.id) == 0
        store.add_suppressions("acct", [phone(1)], "asked by phone")
        first, second = store.due_rows(campaign.id, 10)
        assert store.claim(first.id, Eligibility()).attempt == 1
        refused = store.claim(second.id, Eligibility())
        assert refused.code == SUPPRESSED and "(asked by phone)" in refused.refusal
        assert store.counts(campaign.id)["skipped"] == 1


def test_validate_counts_suppressed_and_capped_rows(api, tmp_path, db_path):
    """validate with a key: suppressed rows, and rows at --max-per-recipient, in text and
    in --json; a row is counted once, by the first rule that refuses it."""
    sent = write_csv(tmp_path / "a.csv", phones(0, 1))
    assert cli.invoke(app, ["run", str(sent), *send_args(db_path)]).exit_code == 0
    cli.invoke(app, ["suppress", "add", phone(1), phone(2), "--db", db_path])
    plain = tmp_path / "b.csv"
    plain.write_text("phone,name\n" + "".join(f"{p},N\n" for p in phones(0, 1, 2, 3)))
    args = send_args(db_path, template=PLAIN_TEMPLATE)
    checked = cli.invoke(app, ["validate", str(plain), *args, "--json"])
    assert checked.exit_code == 0, checked.output
    summary = json.loads(checked.stdout)
    assert (summary["suppressed_rows"], summary["frequency_capped_rows"]) == (2, None)
    capped = json.loads(
        cli.invoke(
            app, ["validate", str(plain), *args, "--json", "--max-per-recipient", "1/24h"]
        ).stdout
    )
    assert (capped["suppressed_rows"], capped["frequency_capped_rows"]) == (2, 1)  # phone 0
    text = cli.invoke(app, ["validate", str(plain), *args, "--max-per-recipient", "1/24h"])
    assert "2 suppressed, 1 at the frequency cap" in text.stdout
    assert "1 row is at the cap of 1 message per 1 day" in text.output


# --- the frequency cap -----------------------------------------------------------------


def test_a_cap_of_1_per_24h_stops_a_second_campaign(api, tmp_path, db_path):
    """Another template to the same people the same day, capped 1/24h: those who had one
    are skipped FREQUENCY_CAP (the message names the count and period); the rest get it."""
    first = write_csv(tmp_path / "a.csv", phones(0, 1, 2))
    assert cli.invoke(app, ["run", str(first), *send_args(db_path)]).exit_code == 0
    second = tmp_path / "b.csv"
    second.write_text("phone,name\n" + "".join(f"{p},N\n" for p in phones(1, 2, 3, 4)))
    args = send_args(db_path, "--max-per-recipient", "1/24h", template=PLAIN_TEMPLATE)
    result = cli.invoke(app, ["run", str(second), *args, "--name", "second"])
    assert result.exit_code == 0, result.output
    rows = rows_of(db_path, "second")
    assert {p: rows[p][:2] for p in rows} == {
        phone(1): ("skipped", FREQUENCY_CAP),
        phone(2): ("skipped", FREQUENCY_CAP),
        phone(3): ("sent", None),
        phone(4): ("sent", None),
    }
    assert rows[phone(1)][2].startswith("1 message to this number")
    assert (
        "in the last 1 day: the cap is 1 per 1 day (--max-per-recipient 1/1d)" in rows[phone(1)][2]
    )
    assert api.counts_by_phone() == {
        phone(0): 1,
        phone(1): 1,
        phone(2): 1,
        phone(3): 1,
        phone(4): 1,
    }
    status = json.loads(cli.invoke(app, ["status", "second", "--db", db_path, "--json"]).stdout)
    assert status["errors"] == [{"state": "skipped", "error_code": FREQUENCY_CAP, "rows": 2}]


@pytest.mark.anyio
async def test_the_capped_rows_are_skipped_before_the_first_send(tmp_path, db_path):
    """A second campaign to the same 30 people: their rows are skipped FREQUENCY_CAP in one
    pass when the run starts (the opening counts and lines show them), not claim by claim."""
    sandbox = fake.Sandbox(rate=50)
    settings = settings_for(db_path, rate=50, max_per_recipient=Cap(1, DAY))
    await run_campaign(
        write_csv(tmp_path / "a.csv", phones(*range(30))),
        SENDER,
        TEMPLATE,
        settings,
        transport=in_process(sandbox),
    )
    second = tmp_path / "b.csv"
    second.write_text("phone,name\n" + "".join(f"{p},N\n" for p in phones(*range(32))))
    opening: list[dict[str, int]] = []
    notices: list[str] = []
    again = await run_campaign(
        second,
        SENDER,
        PLAIN_TEMPLATE,
        settings,
        transport=in_process(sandbox),
        on_start=lambda campaign, counts: opening.append(counts),
        on_notice=notices.append,
    )
    assert (opening[0]["skipped"], opening[0]["pending"]) == (30, 2)
    assert (
        "30 rows are at the cap of 1 message per 1 day to one number; they are skipped "
        "(FREQUENCY_CAP)" in notices
    )
    assert (again.counts["sent"], again.counts["skipped"]) == (2, 30)
    assert rows_of(db_path, again.campaign.name)[phone(0)][2].startswith("1 message to")
    assert len(sandbox.messages) == 32


def test_retry_takes_the_cap_too(api, tmp_path, db_path):
    """`retry --already-sent --max-per-recipient 1/24h`: the guard is off for the retry,
    the cap is not, so those rows end FREQUENCY_CAP and nobody gets a second message."""
    first = write_csv(tmp_path / "a.csv", phones(0, 1))
    assert cli.invoke(app, ["run", str(first), *send_args(db_path)]).exit_code == 0
    copy = write_csv(tmp_path / "b.csv", phones(0, 1))
    assert cli.invoke(app, ["run", str(copy), *send_args(db_path), "--name", "b"]).exit_code == 0
    result = cli.invoke(
        app,
        ["retry", "b", "--already-sent", "--yes", "--db", db_path, "--max-per-recipient", "1/24h"],
    )
    assert result.exit_code == 0, result.output
    assert {state[:2] for state in rows_of(db_path, "b").values()} == {("skipped", FREQUENCY_CAP)}
    assert sorted(api.counts_by_phone().values()) == [1, 1]


def test_the_cap_counts_what_may_have_reached_within_the_period(db_path):
    """3/7d: sent, unknown and sending rows within 7 days count, in any campaign; failed
    rows and older sends do not."""
    cap = Eligibility(dedupe_window=0, cap=Cap(3, 7 * DAY))
    with Store.open(db_path) as store:
        for name, state, age in (
            ("sent", RowState.SENT, DAY),
            ("unknown", RowState.UNKNOWN, 2 * DAY),
            ("failed", RowState.FAILED, DAY),
            ("old", RowState.SENT, 8 * DAY),
        ):
            campaign = new_campaign(store, name, phones(0))
            with store.engine.begin() as conn:
                conn.execute(
                    sa.update(Row)
                    .where(Row.campaign_id == campaign.id)
                    .values(state=state, claimed_at=time.time() - age)
                )
        third = new_campaign(store, "third", phones(0))
        (row,) = store.due_rows(third.id, 10)
        assert store.claim(row.id, cap).attempt == 1  # 2 counted: the third passes
        fourth = new_campaign(store, "fourth", phones(0))
        (row,) = store.due_rows(fourth.id, 10)
        refused = store.claim(row.id, cap)  # 3 now, one of them `sending`
        assert refused.code == FREQUENCY_CAP
        assert refused.refusal.startswith("3 messages to this number")


def claim_each(db: str, name: str, rules: Eligibility, start: threading.Barrier) -> list[bool]:
    """Claim each row of a campaign in order from its own Store; True where it may send."""
    with Store.open(db) as store:
        campaign = store.find_campaign(name)
        assert campaign is not None
        rows = store.due_rows(campaign.id, 1000)
        start.wait()
        return [store.claim(row.id, rules).refusal is None for row in rows]


def test_two_campaigns_racing_on_capped_phones_send_each_once(store_db):
    """Two threads claim rows of two campaigns (other templates: other messages) to the
    same 60 phones in step, capped 1/24h: each phone is granted exactly once."""
    numbers = phones(*range(60))
    with Store.open(store_db) as store:
        new_campaign(store, "a", numbers)
        new_campaign(store, "b", numbers, template=PLAIN_TEMPLATE)
    rules = Eligibility(dedupe_window=0, cap=Cap(1, DAY))
    start = threading.Barrier(2)
    granted: dict[str, list[bool]] = {}

    def claim(name: str) -> None:
        granted[name] = claim_each(store_db, name, rules, start)

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a + b for a, b in zip(granted["a"], granted["b"], strict=True)] == [1] * 60


@pytest.mark.anyio
async def test_two_capped_runs_at_once_message_each_phone_once(tmp_path, store_db):
    """Two runs of two templates on one store at the same time, recipients overlapping,
    capped 1/24h: one message per phone, the overlap skipped FREQUENCY_CAP."""
    sandbox = fake.Sandbox(rate=20, latency=(0.01, 0.05))
    first = write_csv(tmp_path / "a.csv", phones(*range(0, 10)))
    second = tmp_path / "b.csv"
    second.write_text("phone,name\n" + "".join(f"{p},N\n" for p in phones(*range(5, 15))))
    settings = settings_for(store_db, rate=20, max_per_recipient=Cap(1, DAY))
    results = {}

    async def run(path: Path, template: int) -> None:
        results[template] = await run_campaign(
            path, SENDER, template, settings, transport=in_process(sandbox)
        )

    async with anyio.create_task_group() as runs:
        runs.start_soon(run, first, TEMPLATE)
        runs.start_soon(run, second, PLAIN_TEMPLATE)
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 15
    assert sum(r.counts["skipped"] for r in results.values()) == 5


def test_the_cap_lookups_use_their_indexes(db_path):
    """SQLite's plan for the claim's counts: the phone + claimed_at index for the cap, the
    (account, phone) unique index for the list; no scan of every row."""
    with Store.open(db_path) as store:
        new_campaign(store, "a", phones(0, 1))
        with store.engine.connect() as conn:
            plans = {
                "cap": "SELECT count(*) FROM rows JOIN campaigns ON campaigns.id = rows.campaign_id"
                " WHERE rows.phone = 'x' AND rows.claimed_at >= 0"
                " AND rows.state IN ('sent', 'unknown', 'sending') AND campaigns.account = 'a'",
                "list": "SELECT reason FROM suppressions WHERE account = 'a' AND phone = 'x'",
            }
            found = {
                what: " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
                for what, q in plans.items()
            }
    assert "ix_rows_phone_claimed_at" in found["cap"]
    assert "sqlite_autoindex_suppressions" in found["list"]


@pytest.mark.parametrize(
    ("text", "cap"),
    [("1/24h", Cap(1, DAY)), ("3/7d", Cap(3, 7 * DAY)), (" 2 / 30m ", Cap(2, 1800.0))],
)
def test_cap_spellings(text, cap):
    """N/PERIOD, the period as --dedupe-window takes it."""
    assert parse_cap(text) == cap


@pytest.mark.parametrize("text", ["0/24h", "1/0", "1", "x/24h", "1/1w", "-1/24h"])
def test_a_bad_cap_is_one_clear_error(text):
    """Anything else is refused with a sentence that shows the accepted form."""
    with pytest.raises(UsageError, match="--max-per-recipient"):
        parse_cap(text)


def test_the_cap_can_come_from_a_config_file(api, tmp_path, db_path):
    """max_per_recipient = "1/24h" in the config file caps the run like the flag."""
    first = write_csv(tmp_path / "a.csv", phones(0))
    assert cli.invoke(app, ["run", str(first), *send_args(db_path)]).exit_code == 0
    (tmp_path / "b.csv").write_text(f"phone,name\n{phone(0)},N\n")
    config = tmp_path / "campaign.toml"
    config.write_text(
        f'recipients = "b.csv"\nsender_id = {SENDER}\ntemplate_id = {PLAIN_TEMPLATE}\n'
        'max_per_recipient = "1/24h"\n'
    )
    assert read_config(config)["max_per_recipient"] == "1/24h"
    result = cli.invoke(app, ["run", "--config", str(config), "--db", db_path])
    assert result.exit_code == 0, result.output
    assert api.messages_to(phone(0)) == 1, result.output


# --- the campaign keeps its cap --------------------------------------------------------


def closed_window() -> str:
    """A send window that is closed now for the test phones (+1 415: Los Angeles)."""
    now = datetime.now(ZoneInfo("America/Los_Angeles"))
    return f"{now + timedelta(hours=3):%H:00}-{now + timedelta(hours=4):%H:00}"


def capped_campaign_waiting(db: str, tmp_path: Path) -> None:
    """Campaign "second" (capped 1/24h, phones 0-2) waits for daytime with nothing sent;
    meanwhile another campaign messages phones 0 and 1, so they are at its cap."""
    second = tmp_path / "b.csv"
    second.write_text("phone,name\n" + "".join(f"{p},N\n" for p in phones(0, 1, 2)))
    more = ("--name", "second", "--max-per-recipient", "1/24h", "--send-window", closed_window())
    args = send_args(db, *more, template=PLAIN_TEMPLATE)
    waiting = cli.invoke(app, ["run", str(second), *args])
    assert waiting.exit_code == 6, waiting.output
    first = write_csv(tmp_path / "a.csv", phones(0, 1))
    assert cli.invoke(app, ["run", str(first), *send_args(db, "--name", "first")]).exit_code == 0


def resume_second(db: str, *more: str) -> str:
    """`resume second --send-window off` (its rows go now), with more flags; its output."""
    argv = ["resume", "second", "--db", db, "--send-window", "off", *more]
    result = cli.invoke(app, argv)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def status_of(db: str, name: str) -> dict:
    return json.loads(cli.invoke(app, ["status", name, "--db", db, "--json"]).stdout)


def test_a_resume_without_the_flag_keeps_the_campaigns_cap(api, tmp_path, db_path):
    """The cap a campaign was started with is kept: a resume without --max-per-recipient
    skips the rows over it (FREQUENCY_CAP, nothing sent to them) and says whose cap it is."""
    capped_campaign_waiting(db_path, tmp_path)
    said = resume_second(db_path)
    assert "frequency cap 1/1d: the campaign's own (--max-per-recipient replaces it" in said
    rows = rows_of(db_path, "second")
    assert {p: rows[p][:2] for p in rows} == {
        phone(0): ("skipped", FREQUENCY_CAP),
        phone(1): ("skipped", FREQUENCY_CAP),
        phone(2): ("sent", None),
    }
    assert api.counts_by_phone() == {phone(0): 1, phone(1): 1, phone(2): 1}
    assert status_of(db_path, "second")["max_per_recipient"] == "1/1d"


def test_max_per_recipient_off_removes_the_campaigns_cap(api, tmp_path, db_path):
    """`resume --max-per-recipient off`: the cap is removed (said so, and for later runs
    too): the rows over it are sent."""
    capped_campaign_waiting(db_path, tmp_path)
    said = resume_second(db_path, "--max-per-recipient", "off")
    assert "the frequency cap 1/1d is removed from campaign 'second'" in said
    assert {r[0] for r in rows_of(db_path, "second").values()} == {"sent"}
    assert api.counts_by_phone() == {phone(0): 2, phone(1): 2, phone(2): 1}
    assert status_of(db_path, "second")["max_per_recipient"] is None


def test_a_cap_given_later_replaces_the_campaigns_own(api, tmp_path, db_path):
    """`resume --max-per-recipient 2/24h` replaces the kept 1/24h (said so): phones that
    had one message get a second; status shows the new cap."""
    capped_campaign_waiting(db_path, tmp_path)
    said = resume_second(db_path, "--max-per-recipient", "2/24h")
    assert "campaign 'second' now has the frequency cap 2/1d (it was 1/1d)" in said
    assert {r[0] for r in rows_of(db_path, "second").values()} == {"sent"}
    assert status_of(db_path, "second")["max_per_recipient"] == "2/1d"


def test_status_list_and_report_show_the_campaigns_cap(api, tmp_path, db_path):
    """status (text and --json), list --json and the report's JSON and HTML show the cap."""
    capped_campaign_waiting(db_path, tmp_path)
    assert status_of(db_path, "second")["max_per_recipient"] == "1/1d"
    assert status_of(db_path, "first")["max_per_recipient"] is None
    text = " ".join(cli.invoke(app, ["status", "second", "--db", db_path]).stdout.split())
    assert "frequency cap 1/1d: at most 1 message per 1 day to one number" in text
    listed = json.loads(cli.invoke(app, ["list", "--json", "--db", db_path]).stdout)
    assert {c["name"]: c["max_per_recipient"] for c in listed} == {"second": "1/1d", "first": None}
    argv = ["report", "second", "--format", "json", "--db", db_path]
    assert json.loads(cli.invoke(app, argv).stdout)["campaign"]["max_per_recipient"] == "1/1d"
    page = tmp_path / "second.html"
    cli.invoke(app, ["report", "second", "--db", db_path, "--html", str(page)])
    assert "<dt>Frequency cap</dt><dd>frequency cap 1/1d: at most 1 message" in page.read_text()
