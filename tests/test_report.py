"""Reports: spreadsheet-safe CSV, whole JSON, a self-contained escaped HTML page, the list."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from campaign import outcomes, report
from campaign.eligibility import Eligibility
from campaign.model import Fate, Recipient, RowState, SendOutcome, SkippedRow
from campaign.store import Attempt, Row, Store

FORMULA_NAME = '=HYPERLINK("http://evil.example","click")'
SCRIPT_NAME = "<script>alert(1)</script>"
PHONE = "+14155550100"


@pytest.fixture
def store(tmp_path):
    store = Store.open(str(tmp_path / "report.db"))
    yield store
    store.close()


def make_campaign(store: Store, name: str = "spring", names: list[str] | None = None):
    """A campaign of one row per name (phones +1415555010x) and one skipped duplicate."""
    names = names or ["Ann", "Bob", "Cid", "Dee"]
    recipients = [Recipient(i + 2, f"+1415555{100 + i:04d}", n, {}) for i, n in enumerate(names)]
    skipped = [SkippedRow(len(names) + 2, PHONE, "Dup", "duplicate of row 2")]
    return store.create_campaign(
        name=name,
        fingerprint=name.ljust(64, "f"),
        source="list.csv",
        account="a" * 32,
        sender_id=12,
        template_id=45,
        recipients=recipients,
        skipped=skipped,
    )


def send(store: Store, campaign, row: int, fate: Fate, outcome: SendOutcome) -> None:
    """Take the pending row numbered `row` through sending to `fate`."""
    due = next(r for r in store.due_rows(campaign.id, 1000) if r.recipient.row == row)
    attempt = store.claim(due.id, Eligibility()).attempt
    store.record(campaign.id, due.id, attempt, outcome, fate, state=RowState(fate.value))


def played(store: Store, names: list[str] | None = None, name: str = "spring"):
    """Rows 2 sent, 3 failed, 4 unknown, 5 left pending, 6 skipped."""
    campaign = make_campaign(store, name, names)
    send(store, campaign, 2, Fate.SENT, SendOutcome(200, conversation_id=7, api_status="queued"))
    failed = SendOutcome(422, error_code="INVALID_NUMBER", error_message="=not on <WhatsApp>")
    send(store, campaign, 3, Fate.FAILED, failed)
    unknown = SendOutcome(None, error_code=outcomes.READ_TIMEOUT, error_message="no answer")
    send(store, campaign, 4, Fate.UNKNOWN, unknown)
    return campaign


def html_page(store: Store, campaign) -> str:
    out = io.StringIO()
    report.write_html(store, campaign, out)
    return out.getvalue()


def test_csv_neutralises_formulas_but_keeps_phones(store):
    """Cells starting with = + - @ get a quote; an E.164 phone stays as it is."""
    names = [FORMULA_NAME, "+SUM(A1)", "-2+3", "@cmd"]
    campaign = played(store, names)
    out = io.StringIO()
    assert report.write_csv(report.records(store, campaign), out) == 5
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [line["name"] for line in lines[:4]] == ["'" + n for n in names]
    assert lines[0]["phone"] == PHONE
    assert lines[1]["error_message"] == "'=not on <WhatsApp>"
    assert tuple(lines[0]) == report.COLUMNS


def test_json_report_has_campaign_counts_and_rows(store):
    """The JSON report holds the campaign, its counts and every row as stored."""
    campaign = played(store)
    out = io.StringIO()
    n = report.write_json(campaign, store.counts(campaign.id), report.records(store, campaign), out)
    data = json.loads(out.getvalue())
    assert n == 5 and len(data["rows"]) == 5
    assert data["campaign"]["name"] == "spring"
    assert data["counts"] == {
        "pending": 1,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "unknown": 1,
        "skipped": 1,
    }
    assert [r["state"] for r in data["rows"]] == ["sent", "failed", "unknown", "pending", "skipped"]
    assert data["rows"][0]["conversation_id"] == 7


def test_html_has_overview_totals_and_chart(store):
    """The page names the campaign and shows totals per state and an SVG chart of sends."""
    campaign = played(store)
    store.set_status(campaign.id, "halted", "balance <empty>")
    page = html_page(store, store.find_campaign("spring"))
    assert "<h1>Campaign spring</h1>" in page
    assert "list.csv" in page and ">12<" in page and ">45<" in page
    assert "balance &lt;empty&gt;" in page
    for state in ("pending", "sending", "sent", "failed", "unknown", "skipped"):
        assert re.search(rf"<td>{state}</td><td class=\"num\">[01]</td>", page)
    assert re.search(r'<tr class="total"><td>total</td><td class="num">5</td>', page)
    assert "<svg" in page and page.count('<rect class="bar"') == 1
    assert "requests per second" in page


def test_html_lists_error_codes_and_problem_rows(store):
    """The error-code table and the failed and unknown rows, unknown ones flagged."""
    campaign = played(store)
    page = html_page(store, campaign)
    assert '<td>failed</td><td>INVALID_NUMBER</td><td class="num">1</td>' in page
    assert '<td>skipped</td><td>SKIPPED</td><td class="num">1</td>' in page
    problems = page[page.index("Failed and unknown rows") :]
    assert "Bob" in problems and "Cid" in problems
    assert "Ann" not in problems and "Dee" not in problems
    assert "=not on &lt;WhatsApp&gt;" in problems
    unknown_row = re.search(r'<tr class="unknown">.*</tr>', problems).group(0)
    assert "Cid" in unknown_row and report.UNKNOWN_NOTE in unknown_row


def test_html_escapes_and_fetches_nothing(store):
    """Spreadsheet values are escaped, and the page loads no script, style or image."""
    campaign = played(store, [SCRIPT_NAME, FORMULA_NAME, SCRIPT_NAME, "Dee"], name=SCRIPT_NAME)
    page = html_page(store, campaign)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<(link|img|iframe|object|embed)\b|@import|url\(", page, re.IGNORECASE)


def test_html_without_sends_or_problems(store):
    """A campaign nothing happened to yet still gives a readable page."""
    campaign = make_campaign(store)
    page = html_page(store, campaign)
    assert "No send request has left yet." in page and "No failed or unknown rows." in page
    assert "<svg" not in page


def test_long_campaign_chart_keeps_bars_few(store):
    """Three hours of requests are shown in wider bars: never more than MAX_BARS."""
    campaign = make_campaign(store)
    for row in (2, 3, 4, 5):
        send(store, campaign, row, Fate.SENT, SendOutcome(200))
    start = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
    with store.engine.begin() as conn:
        for i, row in enumerate((2, 3, 4, 5)):
            row_id = sa.select(Row.id).where(Row.campaign_id == campaign.id, Row.row == row)
            conn.execute(
                sa.update(Attempt)
                .where(Attempt.row_id == row_id.scalar_subquery())
                .values(left_at=start + timedelta(hours=i))
            )
    page = html_page(store, campaign)
    assert page.count('<rect class="bar"') == 91  # 09:00 to 12:00 in 2-minute bars
    assert "one bar per 2 minutes" in page and "09:00" in page


def test_bucket_width_fits_the_span():
    """Short runs get per-second bars, an hour per-minute, a week wider ones."""
    assert report.bucket_seconds(0, 90) == 1
    assert report.bucket_seconds(0, 3600) == 60
    for span in (7 * 86400, 400 * 86400):
        size = report.bucket_seconds(0, span)
        assert span // size + 1 <= report.MAX_BARS


def test_campaign_list_gives_every_campaign_with_counts(store):
    """One entry per campaign, oldest first, with its status, size and counts."""
    played(store)
    other = make_campaign(store, "autumn")
    store.set_status(other.id, "halted", "no balance")
    listed = report.campaign_list(store)
    assert [c["name"] for c in listed] == ["spring", "autumn"]
    assert listed[0]["counts"]["sent"] == 1 and listed[0]["counts"]["unknown"] == 1
    assert listed[1]["counts"]["pending"] == 4 and listed[1]["total_rows"] == 5
    assert (listed[1]["status"], listed[1]["halt_reason"]) == ("halted", "no balance")
    assert set(listed[0]) == {
        "name",
        "status",
        "created_at",
        "total_rows",
        "counts",
        "halt_reason",
        "send_window",
        "default_timezone",
        "max_per_recipient",
    }
    json.dumps(listed)  # ready for --json as it is
