"""The message guard: the same message is never sent twice, whatever the file is called.

A message is (account, sender, template, phone, variables); a row whose message was sent
(or may have been: unknown, sending) by any campaign of the store within --dedupe-window
is skipped ALREADY_SENT at claim time. Real SQLite files (and PostgreSQL where the
`store_db` fixture gives it), the sandbox in process.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading
import time
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from helpers import SENDER, TEMPLATE, in_process, phone, settings_for
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.config import parse_duration, read_config
from campaign.eligibility import Eligibility
from campaign.errors import UsageError
from campaign.model import ALREADY_SENT, Recipient
from campaign.runner import resume_campaign, run_campaign
from campaign.store import Row, Store

DAY = 86400.0
TODAY, TOMORROW = "1 December 2026", "2 December 2026"
cli = CliRunner()


def write_csv(path: Path, phones: list[str], *, date: str = TODAY, **dialect) -> Path:
    """A recipients CSV whose name and variables follow from each phone (not its place),
    so that two files holding one phone hold the same message for it."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, **dialect)
        writer.writerow(["phone", "name", "1", "2"])
        for p in phones:
            writer.writerow([p, f"Customer {p[-4:]}", f"C{p[-4:]}", date])
    return path


def phones(*numbers: int) -> list[str]:
    return [phone(i) for i in numbers]


async def send(path: Path, sandbox: fake.Sandbox, db: str, **settings):
    """`campaign run PATH` in process against the sandbox."""
    notices: list[str] = []
    result = await run_campaign(
        path,
        SENDER,
        TEMPLATE,
        settings_for(db, **settings),
        transport=in_process(sandbox),
        on_notice=notices.append,
    )
    return result, notices


def rows_of(db: str, campaign_id: int) -> dict[str, tuple[str, str | None]]:
    """phone -> (state, error code) of one campaign's rows."""
    store = Store.open(db)
    try:
        return {r.phone: (r.state, r.error_code) for r in store.report_rows(campaign_id)}
    finally:
        store.close()


pytestmark = pytest.mark.anyio


async def test_the_same_export_saved_again_sends_nothing(tmp_path, db_path):
    """`customers (1).csv`, a copy of a file already sent: every row skipped ALREADY_SENT."""
    sandbox = fake.Sandbox()
    original = write_csv(tmp_path / "customers.csv", phones(0, 1, 2, 3))
    copy = tmp_path / "customers (1).csv"
    shutil.copy(original, copy)
    first, _ = await send(original, sandbox, db_path)
    second, _ = await send(copy, sandbox, db_path)
    assert first.campaign.name != second.campaign.name  # a new campaign, by its name
    assert (second.counts["sent"], second.counts["skipped"]) == (0, 4)
    assert second.exit_code == 0
    assert set(rows_of(db_path, second.campaign.id).values()) == {("skipped", ALREADY_SENT)}
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 4


async def test_sorted_and_resaved_files_send_nothing_again(tmp_path, db_path):
    """Rows in another order, CRLF line endings and every cell quoted: nothing is resent."""
    sandbox = fake.Sandbox()
    await send(write_csv(tmp_path / "a.csv", phones(0, 1, 2, 3)), sandbox, db_path)
    resaved = write_csv(
        tmp_path / "a-sorted.csv",
        phones(3, 1, 0, 2),
        lineterminator="\r\n",
        quoting=csv.QUOTE_ALL,
    )
    second, _ = await send(resaved, sandbox, db_path)
    assert second.counts["skipped"] == 4
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 4


async def test_the_repair_loop_sends_only_the_fixed_row(tmp_path, db_path):
    """run --skip-invalid, fix the bad row, run the fixed file: only that row goes out."""
    sandbox = fake.Sandbox()
    broken = write_csv(tmp_path / "list.csv", [phone(0), "not a phone", phone(2)])
    first, _ = await send(broken, sandbox, db_path, skip_invalid=True)
    assert (first.counts["sent"], first.counts["skipped"]) == (2, 1)
    fixed = write_csv(tmp_path / "list.csv", phones(0, 1, 2))
    second, _ = await send(fixed, sandbox, db_path)
    assert rows_of(db_path, second.campaign.id) == {
        phone(0): ("skipped", ALREADY_SENT),
        phone(1): ("sent", None),
        phone(2): ("skipped", ALREADY_SENT),
    }
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 3


async def test_other_variables_are_another_message(tmp_path, db_path):
    """Tomorrow's date for one phone is a new message and goes out; today's does not."""
    sandbox = fake.Sandbox()
    await send(write_csv(tmp_path / "today.csv", phones(0, 1)), sandbox, db_path)
    tomorrow = write_csv(tmp_path / "tomorrow.csv", phones(1), date=TOMORROW)
    with tomorrow.open("a", newline="") as f:  # phone 0 again, with today's date
        csv.writer(f).writerow([phone(0), "Customer 0000", "C0000", TODAY])
    second, _ = await send(tomorrow, sandbox, db_path)
    assert rows_of(db_path, second.campaign.id) == {
        phone(1): ("sent", None),
        phone(0): ("skipped", ALREADY_SENT),
    }
    assert (sandbox.messages_to(phone(0)), sandbox.messages_to(phone(1))) == (1, 2)


async def test_a_window_of_0_sends_again(tmp_path, db_path):
    """--dedupe-window 0 turns the guard off: the copy is sent again (the documented opt-out)."""
    sandbox = fake.Sandbox()
    original = write_csv(tmp_path / "a.csv", phones(0, 1))
    await send(original, sandbox, db_path)
    copy = shutil.copy(original, tmp_path / "a (1).csv")
    second, _ = await send(Path(copy), sandbox, db_path, dedupe_window=0)
    assert second.counts["sent"] == 2
    assert sorted(sandbox.counts_by_phone().values()) == [2, 2]


async def test_a_send_older_than_the_window_does_not_count(tmp_path, db_path):
    """A message sent 8 days ago goes out again under the 7-day window; yesterday's does not."""
    sandbox = fake.Sandbox()
    await send(write_csv(tmp_path / "a.csv", phones(0, 1)), sandbox, db_path)
    store = Store.open(db_path)
    with store.engine.begin() as conn:  # phone 0 was sent 8 days ago, phone 1 yesterday
        for number, age in ((phone(0), 8 * DAY), (phone(1), DAY)):
            conn.execute(
                sa.update(Row).where(Row.phone == number).values(claimed_at=time.time() - age)
            )
    store.close()
    second, _ = await send(write_csv(tmp_path / "b.csv", phones(0, 1)), sandbox, db_path)
    assert rows_of(db_path, second.campaign.id) == {
        phone(0): ("sent", None),
        phone(1): ("skipped", ALREADY_SENT),
    }


async def test_unknown_counts_as_sent_and_failed_does_not(tmp_path, db_path):
    """An earlier `unknown` row (maybe delivered) blocks the message; a `failed` one does not."""
    refused = fake.TWILIO_ERROR_PHONE  # the API refuses it every time: `failed`
    sandbox = fake.Sandbox(faults=fake.Faults(error_500_phones={phone(0)}))
    first, _ = await send(write_csv(tmp_path / "a.csv", [phone(0), refused]), sandbox, db_path)
    assert [state for state, _ in rows_of(db_path, first.campaign.id).values()] == [
        "unknown",
        "failed",
    ]
    sandbox.faults = fake.Faults()
    second, _ = await send(write_csv(tmp_path / "b.csv", [phone(0), refused]), sandbox, db_path)
    states = rows_of(db_path, second.campaign.id)
    assert states[phone(0)] == ("skipped", ALREADY_SENT)
    assert states[refused][0] == "failed"  # tried again: the API was asked a second time
    assert sandbox.messages_to(phone(0)) == 1


async def test_the_refusal_names_the_earlier_campaign_and_when(tmp_path, db_path):
    """The skipped row's message says which campaign sent it, when (UTC), and the way out."""
    sandbox = fake.Sandbox()
    first, _ = await send(write_csv(tmp_path / "first.csv", phones(0)), sandbox, db_path)
    second, _ = await send(write_csv(tmp_path / "second.csv", phones(0)), sandbox, db_path)
    store = Store.open(db_path)
    (row,) = store.report_rows(second.campaign.id)
    store.close()
    assert f'campaign "{first.campaign.name}"' in row.error_message
    assert time.strftime("%Y-%m-%d", time.gmtime()) in row.error_message
    assert "UTC" in row.error_message
    assert row.error_message.endswith("(--dedupe-window 0 turns this check off)")


async def test_two_campaigns_at_once_message_each_phone_once(tmp_path, store_db):
    """Two runs on one store at the same time, recipients overlapping: one message each."""
    sandbox = fake.Sandbox(latency=(0.05, 0.2))
    first = write_csv(tmp_path / "a.csv", phones(*range(0, 10)))
    second = write_csv(tmp_path / "b.csv", phones(*range(5, 15)))
    results = {}

    async def run(path: Path) -> None:
        results[path.name], _ = await send(path, sandbox, store_db)

    async with anyio.create_task_group() as runs:
        runs.start_soon(run, first)
        runs.start_soon(run, second)
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 15
    assert sum(r.counts["skipped"] for r in results.values()) == 5
    assert all(r.exit_code == 0 for r in results.values())


def claim_every_row(db: str, name: str, start: threading.Barrier) -> list[bool]:
    """Claim each row of a campaign in order from its own Store; True where it may send."""
    store = Store.open(db)
    try:
        campaign = store.find_campaign(name)
        assert campaign is not None
        rows = store.due_rows(campaign.id, 1000)
        rules = Eligibility(dedupe_window=7 * DAY)
        start.wait()
        return [store.claim(row.id, rules).refusal is None for row in rows]
    finally:
        store.close()


def test_racing_claims_of_one_message_let_one_through(store_db):
    """Two threads claim the same 100 messages in step: each is granted exactly once."""
    recipients = [Recipient(i + 2, phone(i), "R", {"1": "x"}) for i in range(100)]
    store = Store.open(store_db)
    for name in ("a", "b"):
        store.create_campaign(
            name=name,
            fingerprint=name * 64,
            source=f"{name}.csv",
            account="acct",
            sender_id=SENDER,
            template_id=TEMPLATE,
            recipients=recipients,
        )
    store.close()
    start = threading.Barrier(2)
    granted: dict[str, list[bool]] = {}

    def claim(name: str) -> None:
        granted[name] = claim_every_row(store_db, name, start)

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a + b for a, b in zip(granted["a"], granted["b"], strict=True)] == [1] * 100


async def test_the_run_says_how_many_rows_it_will_skip(tmp_path, db_path):
    """The opening summary counts the rows already sent and names the campaign."""
    sandbox = fake.Sandbox()
    first, _ = await send(write_csv(tmp_path / "a.csv", phones(0, 1, 2)), sandbox, db_path)
    _, notices = await send(write_csv(tmp_path / "b.csv", phones(0, 1, 2, 3, 4)), sandbox, db_path)
    assert (
        f"3 rows were already sent to the same numbers with the same variables in the last "
        f"7 days (campaign {first.campaign.name}); they will be skipped (ALREADY_SENT)"
    ) in notices


async def test_a_resume_counts_only_what_others_sent(tmp_path, db_path):
    """Resuming a halted campaign: the summary counts its pending rows another campaign has
    sent since (not its own sent rows), and those are skipped."""
    sandbox = fake.Sandbox(balance=2)
    halted, _ = await send(write_csv(tmp_path / "a.csv", phones(0, 1, 2, 3)), sandbox, db_path)
    assert (halted.exit_code, halted.counts["pending"]) == (3, 2)  # phones 2 and 3
    sandbox.top_up(10)
    other, _ = await send(write_csv(tmp_path / "b.csv", phones(3)), sandbox, db_path)
    notices: list[str] = []
    done = await resume_campaign(
        halted.campaign.name,
        settings_for(db_path),
        transport=in_process(sandbox),
        on_notice=notices.append,
    )
    assert (
        f"1 row was already sent to the same numbers with the same variables in the "
        f"last 7 days (campaign {other.campaign.name}); they will be skipped "
        f"(ALREADY_SENT)" in notices
    )
    assert (done.counts["sent"], done.counts["skipped"]) == (3, 1)
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 4


def test_validate_counts_the_rows_already_sent(api, tmp_path, db_path):
    """validate --db with a key, sender and template: the count, in text and in --json."""
    sent = write_csv(tmp_path / "a.csv", phones(0, 1, 2))
    args = ["--sender-id", str(SENDER), "--template-id", str(TEMPLATE), "--db", db_path]
    assert cli.invoke(app, ["run", str(sent), *args]).exit_code == 0
    again = write_csv(tmp_path / "b.csv", phones(0, 1, 2, 3, 4))
    checked = cli.invoke(app, ["validate", str(again), *args, "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert (report["valid_rows"], report["already_sent_rows"]) == (5, 3)
    text = cli.invoke(app, ["validate", str(again), *args])
    assert "5 valid, 0 invalid, 0 skipped, 0 warnings, 3 already sent" in text.stdout
    assert "3 rows were already sent" in text.output
    off = cli.invoke(app, ["validate", str(again), *args, "--json", "--dedupe-window", "0"])
    assert json.loads(off.stdout)["already_sent_rows"] == 0


def test_retry_already_sent_sends_them_on_request(api, tmp_path, db_path):
    """status shows the ALREADY_SENT skips; `retry NAME --already-sent --yes` sends them."""
    args = ["--sender-id", str(SENDER), "--template-id", str(TEMPLATE), "--db", db_path]
    cli.invoke(app, ["run", str(write_csv(tmp_path / "a.csv", phones(0, 1))), *args])
    copy = write_csv(tmp_path / "b.csv", phones(0, 1))
    assert cli.invoke(app, ["run", str(copy), *args, "--name", "again"]).exit_code == 0
    assert api.messages_to(phone(0)) == 1
    status = json.loads(cli.invoke(app, ["status", "again", "--db", db_path, "--json"]).stdout)
    assert status["counts"]["skipped"] == 2  # counted like any other skip, by its code
    assert status["errors"] == [{"state": "skipped", "error_code": ALREADY_SENT, "rows": 2}]
    refused = cli.invoke(app, ["retry", "again", "--already-sent", "--db", db_path])
    assert refused.exit_code == 2 and "--yes" in refused.output
    result = cli.invoke(app, ["retry", "again", "--already-sent", "--yes", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert sorted(api.counts_by_phone().values()) == [2, 2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7", 7 * DAY),
        ("0", 0.0),
        ("1.5", 1.5 * DAY),
        ("7d", 7 * DAY),
        ("12h", 43200.0),
        ("30m", 1800.0),
        ("30M", 1800.0),
        (3, 3 * DAY),
    ],
)
def test_window_spellings(text, seconds):
    """Days as a number, or 7d / 12h / 30m."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "7 days", "h", "1w", ""])
def test_bad_window_is_one_clear_error(text):
    """Anything else is refused with a sentence that shows the accepted forms."""
    with pytest.raises(UsageError, match="7d, 12h or 30m"):
        parse_duration(text)


def test_the_window_can_come_from_a_config_file(api, tmp_path, db_path):
    """dedupe_window = 0 in the config file turns the guard off, like the flag."""
    args = ["--sender-id", str(SENDER), "--template-id", str(TEMPLATE), "--db", db_path]
    cli.invoke(app, ["run", str(write_csv(tmp_path / "a.csv", phones(0))), *args])
    write_csv(tmp_path / "b.csv", phones(0))
    config = tmp_path / "campaign.toml"
    config.write_text(
        f'recipients = "b.csv"\nsender_id = {SENDER}\ntemplate_id = {TEMPLATE}\n'
        f'db = "{db_path}"\ndedupe_window = "0"\n'
    )
    assert read_config(config)["dedupe_window"] == "0"
    result = cli.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert api.messages_to(phone(0)) == 2


async def test_a_copy_of_a_sent_file_is_skipped_before_the_first_send(tmp_path, db_path):
    """The rows another campaign already sent are skipped in one pass when the run starts
    (the opening counts show them), not one claim at a time."""
    sandbox = fake.Sandbox()
    path = write_csv(tmp_path / "customers.csv", phones(*range(30)))
    await send(path, sandbox, db_path)
    opening: list[dict[str, int]] = []
    copy = shutil.copy(path, tmp_path / "customers (1).csv")
    again = await run_campaign(
        Path(copy),
        SENDER,
        TEMPLATE,
        settings_for(db_path),
        transport=in_process(sandbox),
        on_start=lambda campaign, counts: opening.append(counts),
    )
    assert opening[0]["skipped"] == 30 and opening[0]["pending"] == 0
    assert again.counts["skipped"] == 30 and len(sandbox.messages) == 30
