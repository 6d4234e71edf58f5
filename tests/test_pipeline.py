"""The send pipeline end to end, in process against the sandbox: once each, within the rate."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from helpers import SENDER, TEMPLATE, in_process, phone, settings_for

from campaign import outcomes
from campaign import sandbox as fake
from campaign.errors import CampaignBusy, InputError, UsageError
from campaign.runner import resume_campaign, run_campaign
from campaign.store import Store

pytestmark = pytest.mark.anyio


async def test_every_recipient_gets_exactly_one_message(recipients, db_path):
    """50 recipients in process: one message each, every row sent.

    The rate itself is measured in test_rate.py against the sandbox as a real server: in
    process the sandbox shares our event loop, so its clock sees our own pauses.
    """
    sandbox = fake.Sandbox(latency=(0.05, 0.3))
    result = await run_campaign(
        recipients(50), SENDER, TEMPLATE, settings_for(db_path), transport=in_process(sandbox)
    )
    assert result.exit_code == 0
    assert result.counts["sent"] == 50
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 50


async def test_sent_rows_record_the_api_ids(recipients, db_path):
    """A sent row keeps conversation_id, message ids, message_sid and the API status."""
    sandbox = fake.Sandbox()
    result = await run_campaign(
        recipients(2), SENDER, TEMPLATE, settings_for(db_path), transport=in_process(sandbox)
    )
    store = Store.open(db_path)
    rows = list(store.report_rows(result.campaign.id))
    by_phone = {m.phone: m for m in sandbox.messages}
    for row in rows:
        message = by_phone[row.phone]
        assert (row.conversation_id, row.message_id, row.message_sid) == (
            message.conversation_id,
            message.message_id,
            message.message_sid,
        )
        assert row.api_status == "queued"
        assert row.row >= 2  # spreadsheet numbering: the header is row 1


async def test_running_again_sends_nothing_twice(recipients, db_path):
    """The same file again is the same campaign: finished rows are not sent again."""
    sandbox = fake.Sandbox()
    path = recipients(5)
    settings = settings_for(db_path)
    first = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    again = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert again.campaign.name == first.campaign.name
    assert again.load is None  # resumed without reading the file again
    assert len(sandbox.messages) == 5


async def test_a_new_file_is_a_new_campaign(recipients, db_path):
    """Tomorrow's export (other content) gets its own campaign by default."""
    sandbox = fake.Sandbox()
    settings = settings_for(db_path)
    first = await run_campaign(
        recipients(2), SENDER, TEMPLATE, settings, transport=in_process(sandbox)
    )
    second = await run_campaign(
        recipients(3), SENDER, TEMPLATE, settings, transport=in_process(sandbox)
    )
    assert first.campaign.name != second.campaign.name


async def test_reusing_a_name_with_another_file_is_refused(recipients, db_path):
    """--name of an existing campaign with a different file: a clear refusal."""
    sandbox = fake.Sandbox()
    settings = settings_for(db_path)
    await run_campaign(
        recipients(2), SENDER, TEMPLATE, settings, name="spring", transport=in_process(sandbox)
    )
    with pytest.raises(UsageError, match="another file"):
        await run_campaign(
            recipients(3), SENDER, TEMPLATE, settings, name="spring", transport=in_process(sandbox)
        )


async def test_invalid_rows_stop_everything(recipients, db_path):
    """One invalid row: nothing is sent and the error names the row."""
    sandbox = fake.Sandbox()
    path = recipients(3, phones=[phone(1), "not a phone", phone(2)])
    with pytest.raises(InputError) as caught:
        await run_campaign(
            path, SENDER, TEMPLATE, settings_for(db_path), transport=in_process(sandbox)
        )
    assert [p.row for p in caught.value.problems if p.severity == "error"] == [3]
    assert sandbox.messages == []


async def test_skip_invalid_records_them_as_skipped(recipients, db_path):
    """With skip_invalid the bad row is stored as skipped with its reason; the rest go."""
    sandbox = fake.Sandbox()
    path = recipients(3, phones=[phone(1), "not a phone", phone(2)])
    result = await run_campaign(
        path,
        SENDER,
        TEMPLATE,
        settings_for(db_path, skip_invalid=True),
        transport=in_process(sandbox),
    )
    assert (result.counts["sent"], result.counts["skipped"]) == (2, 1)
    skipped = [r for r in Store.open(db_path).report_rows(result.campaign.id) if r.row == 3]
    assert skipped[0].state == "skipped" and skipped[0].error_message


async def test_rate_limited_rows_are_retried_not_lost(recipients, db_path):
    """A 429 puts the row back to pending; it is sent later, once."""
    sandbox = fake.Sandbox(rate=2)  # stricter than our 5/s: 429s are certain
    result = await run_campaign(
        recipients(8),
        SENDER,
        TEMPLATE,
        settings_for(db_path, max_attempts=20),
        transport=in_process(sandbox),
    )
    assert sandbox.rate_limited > 0
    assert result.counts["sent"] == 8
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 8


async def test_possibly_processed_rows_end_unknown_and_stay_so(recipients, db_path):
    """500s and drops (after acceptance) end `unknown` and are never resent by a rerun."""
    faults = fake.Faults(error_500_phones={phone(1)}, drop_phones={phone(2)})
    sandbox = fake.Sandbox(faults=faults)
    path = recipients(4)
    settings = settings_for(db_path)
    result = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert result.exit_code == 1
    assert (result.counts["sent"], result.counts["unknown"]) == (2, 2)
    sandbox.faults = fake.Faults()
    await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert sandbox.messages_to(phone(1)) == 1 and sandbox.messages_to(phone(2)) == 1
    codes = {r.phone: r.error_code for r in Store.open(db_path).report_rows(result.campaign.id)}
    assert codes[phone(2)] == outcomes.CONNECTION_DROPPED


def attempts_of(db_path: str, phone_: str) -> list[tuple[str, str | None, str | None]]:
    """(fate, error code, raw body) of every request made for the row of `phone_`."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT a.fate, a.error_code, a.raw_body FROM attempts a "
            "JOIN rows r ON r.id = a.row_id WHERE r.phone = ? ORDER BY a.id",
            (phone_,),
        ).fetchall()


async def test_a_proxys_503_after_acceptance_ends_unknown_and_is_never_resent(recipients, db_path):
    """A load balancer's HTML 503 may follow a send: the row is `unknown`, sent once only."""
    sandbox = fake.Sandbox(faults=fake.Faults(proxy_503_phones={phone(1)}))
    path = recipients(3)
    settings = settings_for(db_path)
    result = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert result.exit_code == 1
    assert (result.counts["sent"], result.counts["unknown"]) == (2, 1)
    [(fate, code, raw)] = attempts_of(db_path, phone(1))
    assert (fate, code) == ("unknown", "HTTP_503") and "503" in raw
    sandbox.faults = fake.Faults()
    await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert sandbox.messages_to(phone(1)) == 1
    assert len(attempts_of(db_path, phone(1))) == 1


@dataclasses.dataclass(frozen=True)
class DownForTheFirstSend(fake.Faults):
    """The API is in maintenance for the first send to each phone, then up again."""

    refused: set[str] = dataclasses.field(default_factory=set)

    def forced(self, phone: str) -> str | None:
        if phone in self.refused:
            return None
        self.refused.add(phone)
        return fake.ERROR_503


async def test_the_apis_maintenance_503_is_retried_and_sent_once(recipients, db_path):
    """The API's own maintenance answer proves nothing was processed: retried, sent once."""
    sandbox = fake.Sandbox(faults=DownForTheFirstSend())
    result = await run_campaign(
        recipients(2), SENDER, TEMPLATE, settings_for(db_path), transport=in_process(sandbox)
    )
    assert result.exit_code == 0 and result.counts["sent"] == 2
    assert sorted(sandbox.counts_by_phone().values()) == [1, 1]
    fates = [(fate, code) for fate, code, _ in attempts_of(db_path, phone(1))]
    assert fates == [("retry", outcomes.MAINTENANCE), ("sent", None)]


async def test_row_level_failure_goes_on(recipients, db_path):
    """A Twilio error fails that row with its code; the others are sent."""
    sandbox = fake.Sandbox()
    path = recipients(3, phones=[phone(1), fake.TWILIO_ERROR_PHONE, phone(2)])
    result = await run_campaign(
        path, SENDER, TEMPLATE, settings_for(db_path), transport=in_process(sandbox)
    )
    assert (result.counts["sent"], result.counts["failed"]) == (2, 1)
    assert result.exit_code == 1


async def test_insufficient_balance_halts_and_resumes(recipients, db_path):
    """402 halts (exit 3) with the rest pending; after a top-up the rest is sent, once each."""
    sandbox = fake.Sandbox(balance=4)
    path = recipients(10)
    settings = settings_for(db_path)
    halted = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    assert halted.exit_code == 3
    assert halted.counts["sent"] == 4 and halted.counts["pending"] == 6
    assert "INSUFFICIENT_BALANCE" in halted.halt_reason
    sandbox.top_up(100)
    done = await resume_campaign(halted.campaign.name, settings, transport=in_process(sandbox))
    assert done.exit_code == 0 and done.counts["sent"] == 10
    assert sorted(sandbox.counts_by_phone().values()) == [1] * 10


async def test_a_second_run_of_a_busy_campaign_is_refused(recipients, db_path):
    """While a run holds the campaign, another gets CampaignBusy (exit 4)."""
    from campaign.store import lease_owner_id

    sandbox = fake.Sandbox()
    path = recipients(2)
    settings = settings_for(db_path)
    first = await run_campaign(path, SENDER, TEMPLATE, settings, transport=in_process(sandbox))
    store = Store.open(db_path)
    assert store.acquire_lease(first.campaign.id, lease_owner_id(), ttl=60)
    with pytest.raises(CampaignBusy) as caught:
        await resume_campaign(first.campaign.name, settings, transport=in_process(sandbox))
    assert caught.value.exit_code == 4


async def test_a_long_maintenance_trips_the_breaker_and_leaves_the_rest_pending(
    recipients, db_path
):
    """Rows that end failed after their last retry (the API in maintenance) count for the
    circuit breaker: the campaign halts instead of failing every row."""
    sandbox = fake.Sandbox(faults=fake.Faults(error_503=1.0))  # the API's maintenance answer
    result = await run_campaign(
        recipients(30),
        SENDER,
        TEMPLATE,
        settings_for(db_path, max_attempts=1),
        transport=in_process(sandbox),
    )
    assert result.exit_code == 3 and "MAINTENANCE" in result.halt_reason
    assert result.counts["failed"] < 30 and result.counts["pending"] > 0
    assert sandbox.messages == []
