"""Each recipient's daytime: the send window (fixed instants), and runs over the real CLI."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from helpers import (
    SENDER,
    TEMPLATE,
    campaign_argv,
    cli_env,
    in_process,
    run_argv,
    wait_for,
    write_recipients,
)
from phonenumbers import timezone as phone_zones
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.client import AutocallsClient
from campaign.daytime import Daytime, NeverOpen, SendWindow, is_open, next_open, zones_of
from campaign.dispatcher import Dispatcher, DispatchSettings
from campaign.errors import UsageError
from campaign.limiter import AccountLimiter
from campaign.model import Recipient
from campaign.runner import SendSettings, campaign_window
from campaign.store import CampaignInfo, Store

LONDON = [f"+4479111234{i:02d}" for i in range(3)]
TOKYO = [f"+8190123456{i:02d}" for i in range(2)]
RUSSIAN_MOBILE = "+79161234567"  # sixteen zones, from Europe/Bucharest to Asia/Anadyr
NO_ZONE = "+870301234567"  # Inmarsat: a valid number with no time zone known


def at(text: str) -> float:
    """Epoch seconds of a UTC time written 2026-01-15 12:00."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


def utc(seconds: float | None) -> str | None:
    return (
        None if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")
    )


# --- the window ------------------------------------------------------------------------


def test_window_parses_and_bad_values_are_one_usage_error():
    """HH:MM-HH:MM parses; malformed, out-of-range or empty windows are a UsageError."""
    assert SendWindow.parse("09:00-20:00") == SendWindow(540, 1200)
    assert str(SendWindow.parse(" 9:30 - 17:05 ")) == "09:30-17:05"
    for bad in ("9-17", "25:00-08:00", "09:60-10:00", "09:00-09:00", "09:00"):
        with pytest.raises(UsageError, match="--send-window"):
            SendWindow.parse(bad)


def test_window_across_midnight():
    """20:00-08:00 is open late in the evening and early in the morning, closed by day."""
    window = SendWindow.parse("20:00-08:00")
    london = ("Europe/London",)  # UTC+0 in January
    assert next_open(window, london, at("2026-01-15 23:00")) is None
    assert next_open(window, london, at("2026-01-15 07:59")) is None
    assert utc(next_open(window, london, at("2026-01-15 08:00"))) == "2026-01-15 20:00"
    assert utc(next_open(window, london, at("2026-01-15 12:00"))) == "2026-01-15 20:00"


def test_several_zones_must_all_be_open():
    """London and Tokyo, 08:00-20:00: open together only 08:00-11:00 UTC in winter."""
    window = SendWindow.parse("08:00-20:00")
    both = ("Europe/London", "Asia/Tokyo")
    assert utc(next_open(window, both, at("2026-01-15 02:00"))) == "2026-01-15 08:00"
    assert next_open(window, both, at("2026-01-15 10:30")) is None
    assert utc(next_open(window, both, at("2026-01-15 11:00"))) == "2026-01-16 08:00"
    assert utc(next_open(window, ("Asia/Tokyo",), at("2026-01-15 12:00"))) == "2026-01-15 23:00"


def test_dst_changes_move_the_opening_in_utc():
    """London's 09:00 moves from 09:00 to 08:00 UTC in spring; a skipped start opens at the jump."""
    window = SendWindow.parse("09:00-17:00")
    london = ("Europe/London",)
    assert utc(next_open(window, london, at("2026-03-28 06:00"))) == "2026-03-28 09:00"
    assert utc(next_open(window, london, at("2026-03-28 20:00"))) == "2026-03-29 08:00"
    assert utc(next_open(window, london, at("2026-10-24 20:00"))) == "2026-10-25 09:00"
    skipped = SendWindow.parse("02:30-05:00")
    new_york = ("America/New_York",)  # 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC)
    assert utc(next_open(skipped, new_york, at("2026-03-08 05:00"))) == "2026-03-08 07:00"
    assert is_open(skipped, new_york, at("2026-03-08 07:00"))


def test_zones_come_from_the_number():
    """A UK mobile maps to London (and the islands), a Japanese one to Tokyo; unknown: ()."""
    assert "Europe/London" in zones_of(LONDON[0])
    assert zones_of(TOKYO[0]) == ("Asia/Tokyo",)
    assert zones_of(NO_ZONE) == ()


def test_zones_are_phonenumbers_own_answer_in_every_region():
    """The shortcut for one-zone countries agrees with phonenumbers on every region's examples."""
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    checked = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in kinds:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            expected = phone_zones.time_zones_for_number(number)
            assert zones_of(e164) == tuple(z for z in expected if z != "Etc/Unknown"), e164
            checked += 1
    assert checked > 300


def test_unknown_zone_is_sent_with_one_warning_per_country_code(caplog):
    """Without --default-timezone a zoneless number goes anytime, warned once per country code."""
    daytime = Daytime(SendWindow.parse("09:00-17:00"))
    with caplog.at_level(logging.WARNING, logger="campaign.daytime"):
        assert daytime.opens(NO_ZONE, at("2026-01-15 02:00")) is None
        assert daytime.opens("+870301234568", at("2026-01-15 02:00")) is None
    warnings = [r for r in caplog.records if "+870" in r.getMessage()]
    assert len(warnings) == 1 and "--default-timezone" in warnings[0].getMessage()


def test_unknown_zone_with_a_default_timezone_waits_for_it():
    """With --default-timezone Asia/Tokyo, a number with no known zone keeps Tokyo's hours."""
    daytime = Daytime(SendWindow.parse("09:00-17:00"), default_zone="Asia/Tokyo")
    assert utc(daytime.opens(NO_ZONE, at("2026-01-15 12:00"))) == "2026-01-16 00:00"
    assert daytime.opens(NO_ZONE, at("2026-01-16 01:00")) is None


def test_zones_that_never_share_the_window_fall_back_to_the_default():
    """09:00-18:00 never holds in all Russia's zones at once: the default decides, else send."""
    window = SendWindow.parse("09:00-18:00")
    with pytest.raises(NeverOpen):
        next_open(window, zones_of(RUSSIAN_MOBILE), at("2026-01-15 12:00"))
    moscow = Daytime(window, default_zone="Europe/Moscow")  # UTC+3
    assert utc(moscow.opens(RUSSIAN_MOBILE, at("2026-01-15 16:00"))) == "2026-01-16 06:00"
    assert Daytime(window).opens(RUSSIAN_MOBILE, at("2026-01-15 16:00")) is None


# --- over the real CLI -----------------------------------------------------------------


def london_window() -> str:
    """A window around London's time now: open in London, closed in Tokyo (8-9 h ahead)."""
    now = datetime.now(ZoneInfo("Europe/London"))
    return f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=2):%H:%M}"


def faketime(offset: float) -> list[str]:
    """The `faketime` command putting a run's clock `offset` seconds ahead (or skip)."""
    if shutil.which("faketime") is None:
        if os.environ.get("CI"):
            pytest.fail("faketime is not installed: .ci/run installs it")
        pytest.skip("faketime is not installed")
    return ["faketime", "-f", f"{offset:+.0f}"]


@pytest.fixture
def server():
    """The sandbox on loopback: (its state, its base URL)."""
    sandbox = fake.Sandbox()
    with fake.running(sandbox) as base_url:
        yield sandbox, base_url


def invoke(*args: str) -> str:
    """A read-only command's stdout (status, report), run in this process."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def cli(argv: list[str], db: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=cli_env(db), capture_output=True, text=True, timeout=timeout)


def test_london_open_tokyo_closed_exits_6_and_a_later_resume_sends_them_once(
    server, tmp_path, db_path
):
    """London open, Tokyo shut: +44 sent, +81 wait, exit 6, status says; a resume then sends."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "world.csv", 5, phones=LONDON + TOKYO)
    window = london_window()
    first = cli(run_argv(path, base_url, "--name", "world", "--send-window", window), db_path)
    assert first.returncode == 6, first.stderr
    assert "finished for now: 2 rows wait for their recipients' daytime, the next at" in (
        first.stderr
    )
    assert "in Asia/Tokyo" in first.stderr and "Traceback" not in first.stderr
    assert sorted(sandbox.counts_by_phone()) == sorted(LONDON)

    state = json.loads(invoke("status", "world", "--json", "--db", db_path))
    assert state["status"] == "waiting"
    assert state["counts"]["sent"] == 3 and state["counts"]["pending"] == 2
    assert state["daytime"]["rows"] == 2
    next_at = datetime.fromisoformat(state["daytime"]["next_at"]).timestamp()
    assert next_at > time.time() + 3600  # Tokyo's window is hours away
    text = invoke("status", "world", "--db", db_path)
    assert "2 rows wait for their recipients' daytime, the next at" in " ".join(text.split())

    report = invoke("report", "world", "--db", db_path)
    tokyo = [line for line in csv.DictReader(io.StringIO(report)) if line["phone"] in TOKYO]
    assert {(t["state"], t["error_code"], t["attempts"]) for t in tokyo} == {
        ("pending", "SEND_WINDOW", "0")
    }

    later = faketime(next_at - time.time() + 60)  # a minute into Tokyo's window
    resumed = cli([*later, *campaign_argv("resume", "world", "--base-url", base_url,
                                          "--send-window", window)], db_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert sandbox.counts_by_phone() == {p: 1 for p in LONDON + TOKYO}
    again = invoke("status", "world", "--json", "--db", db_path)
    assert json.loads(again)["daytime"] == {"rows": 0, "next_at": None, "text": None}


def test_wait_sleeps_until_the_window_opens_then_sends(server, tmp_path, db_path):
    """--wait seconds before Tokyo's 09:00 says it waits, then sends at the opening (not before)."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "tokyo.csv", 2, phones=TOKYO)
    now = datetime.now(UTC)
    opening = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    # Tokyo's 08:59:50: enough for the run to start on a busy machine and find it closed.
    before = faketime(opening.timestamp() - now.timestamp() - 10)
    argv = run_argv(path, base_url, "--name", "tokyo", "--send-window", "09:00-17:00", "--wait")
    done = cli([*before, *argv], db_path)
    assert done.returncode == 0, done.stderr
    assert "waiting: 2 rows wait for their recipients' daytime" in done.stderr
    assert sandbox.counts_by_phone() == {p: 1 for p in TOKYO}
    sent = json.loads(invoke("report", "tokyo", "--db", db_path, "--format", "json"))
    assert {r["state"] for r in sent["rows"]} == {"sent"}
    with Store.open(db_path) as store:  # the run's own (fake) clock wrote when it sent
        times = store.sent_times(store.find_campaign("tokyo").id)
    assert min(t.replace(tzinfo=UTC) for t in times) >= opening


def test_wait_is_interrupted_by_ctrl_c(server, tmp_path, db_path):
    """Ctrl-C during a wait for daytime stops the run at once: exit 130, rows pending."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "tokyo.csv", 2, phones=TOKYO)
    argv = run_argv(path, base_url, "--name", "tokyo", "--send-window", london_window(), "--wait")
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(argv, env=cli_env(db_path), stderr=stderr, text=True)
        try:
            wait_for(lambda: "waiting:" in log.read_text(), what="the wait for daytime")
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 130
        finally:
            process.kill()
    assert sandbox.messages == []


def test_bad_send_window_is_one_line_exit_2(server, tmp_path, db_path):
    """A malformed --send-window (or an unknown --default-timezone) is one line, exit 2."""
    _, base_url = server
    path = write_recipients(tmp_path / "x.csv", 1, phones=LONDON[:1])
    for more in (
        ["--send-window", "9am-5pm"],
        ["--send-window", "09:00-17:00", "--default-timezone", "Mars/Olympus"],
        ["--wait"],
    ):
        result = cli(run_argv(path, base_url, *more), db_path)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_send_window_from_the_config_file(server, tmp_path, db_path):
    """send_window in --config defers the rows like the flag does."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "world.csv", 5, phones=LONDON + TOKYO)
    config = Path(tmp_path / "campaign.toml")
    config.write_text(f'send_window = "{london_window()}"\n')
    result = cli(run_argv(path, base_url, "--config", config), db_path)
    assert result.returncode == 6, result.stderr
    assert sorted(sandbox.counts_by_phone()) == sorted(LONDON)
    [listed] = json.loads(invoke("list", "--json", "--db", db_path))
    assert listed["send_window"] == config.read_text().split('"')[1]  # kept for later runs


# --- in bulk ---------------------------------------------------------------------------


class CountingStore(Store):
    """A real store that counts the calls the dispatcher makes of it, by name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    def claim(self, *args, **kwargs):
        self.calls["claim"] += 1
        return super().claim(*args, **kwargs)

    def defer_for_daytime(self, *args, **kwargs):
        self.calls["defer_for_daytime"] += 1
        return super().defer_for_daytime(*args, **kwargs)


@pytest.mark.anyio
async def test_a_big_file_at_night_is_deferred_in_bulk(store_db):
    """1,500 closed rows are deferred a page per commit, never claimed, no attempt (SQLite, PG)."""
    tokyo = [f"+81901{i:07d}" for i in range(1500)]
    phones = [*LONDON[:2], *tokyo, *LONDON[2:]]
    recipients = [
        Recipient(i + 2, p, f"R{i}", {"1": f"R{i}", "2": "1 December 2026"})
        for i, p in enumerate(phones)
    ]
    sandbox = fake.Sandbox()
    with CountingStore(Store.open(store_db).engine) as store:
        campaign = store.create_campaign(
            name="night", fingerprint="n", source="night.csv", account="a" * 32,
            sender_id=SENDER, template_id=TEMPLATE, recipients=recipients,
        )  # fmt: skip
        limiter = AccountLimiter(store, "account", 50)
        async with AutocallsClient(
            fake.DEFAULT_KEY, "http://127.0.0.1", limiter=limiter, transport=in_process(sandbox)
        ) as client:
            daytime = Daytime(SendWindow.parse(london_window()))
            dispatcher = Dispatcher(store, client, campaign, DispatchSettings(daytime=daytime))
            result = await dispatcher.run()
        assert result.daytime is not None and result.daytime.rows == len(tokyo)
        assert store.calls["claim"] == len(LONDON)
        assert store.calls["defer_for_daytime"] <= 2
        assert store.daytime_waits(campaign.id).rows == len(tokyo)
        assert store.counts(campaign.id)["pending"] == len(tokyo)
        assert {r.attempts for r in store.report_rows(campaign.id) if r.phone in tokyo} == {0}
    assert sorted(sandbox.counts_by_phone()) == sorted(LONDON)


def test_a_resume_without_the_flag_keeps_the_campaigns_window(server, tmp_path, db_path):
    """A resume or retry without --send-window keeps deferring; --send-window off sends once."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "world.csv", 5, phones=LONDON + TOKYO)
    window = london_window()
    first = cli(run_argv(path, base_url, "--name", "world", "--send-window", window), db_path)
    assert first.returncode == 6, first.stderr
    resumed = cli(campaign_argv("resume", "world", "--base-url", base_url), db_path)
    assert resumed.returncode == 6, resumed.stderr
    assert f"send window {window} in each recipient's local time: the campaign's own" in (
        resumed.stderr
    )
    retried = cli(campaign_argv("retry", "world", "--failed", "--base-url", base_url), db_path)
    assert retried.returncode == 6, retried.stderr
    assert sorted(sandbox.counts_by_phone()) == sorted(LONDON)

    off = campaign_argv("resume", "world", "--base-url", base_url, "--send-window", "off")
    resumed = cli(off, db_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"the send window {window} is removed from campaign 'world'" in resumed.stderr
    assert "2 rows waited for their recipients' daytime; without a send window" in resumed.stderr
    assert sandbox.counts_by_phone() == {p: 1 for p in LONDON + TOKYO}
    state = json.loads(invoke("status", "world", "--json", "--db", db_path))
    assert (state["send_window"], state["default_timezone"]) == (None, None)


def test_a_window_given_later_replaces_the_campaigns_own(server, tmp_path, db_path):
    """--send-window on a resume replaces the kept one (said so); status, report, list show it."""
    sandbox, base_url = server
    path = write_recipients(tmp_path / "world.csv", 5, phones=LONDON + TOKYO)
    london = london_window()
    more = ("--name", "world", "--send-window", london, "--default-timezone", "Europe/London")
    assert cli(run_argv(path, base_url, *more), db_path).returncode == 6
    state = json.loads(invoke("status", "world", "--json", "--db", db_path))
    assert (state["send_window"], state["default_timezone"]) == (london, "Europe/London")
    [listed] = json.loads(invoke("list", "--json", "--db", db_path))
    assert listed["send_window"] == london
    report = json.loads(invoke("report", "world", "--format", "json", "--db", db_path))
    assert report["campaign"]["send_window"] == london
    page = tmp_path / "world.html"
    invoke("report", "world", "--db", db_path, "--html", str(page))
    assert f"send window {london} in each recipient&#x27;s local time" in page.read_text()

    tokyo_now = datetime.now(ZoneInfo("Asia/Tokyo"))
    tokyo = f"{tokyo_now - timedelta(hours=1):%H:%M}-{tokyo_now + timedelta(hours=2):%H:%M}"
    argv = campaign_argv("resume", "world", "--base-url", base_url, "--send-window", tokyo)
    resumed = cli(argv, db_path)
    assert resumed.returncode == 0, resumed.stderr
    said = f"campaign 'world' now sends in the window {tokyo} (numbers with no known zone: "
    assert said + f"Europe/London) (it was {london}, Europe/London)" in resumed.stderr
    assert sandbox.counts_by_phone() == {p: 1 for p in LONDON + TOKYO}
    text = " ".join(invoke("status", "world", "--db", db_path).split())
    assert f"send window {tokyo} in each recipient's local time (Europe/London for" in text


def test_wait_and_default_timezone_need_a_window_given_or_kept():
    """--wait and --default-timezone need a window, given or kept (not turned off)."""
    kept = CampaignInfo(1, "c", "f", "c.csv", SENDER, TEMPLATE, 1, "waiting", None,
                        datetime.now(UTC), "09:00-17:00", "Asia/Tokyo")  # fmt: skip
    bare = dataclasses.replace(kept, send_window=None, default_timezone=None)
    waits = SendSettings(wait_for_daytime=True)
    assert campaign_window(waits, kept).send_window == SendWindow.parse("09:00-17:00")
    assert campaign_window(waits, kept).default_timezone == "Asia/Tokyo"
    for sending, campaign in (
        (waits, bare),
        (waits, None),
        (SendSettings(default_timezone="Asia/Tokyo"), bare),
        (SendSettings(send_window_off=True, wait_for_daytime=True), kept),
    ):
        with pytest.raises(UsageError, match="go with a send window"):
            campaign_window(sending, campaign)
    off = campaign_window(SendSettings(send_window_off=True), kept)
    assert (off.send_window, off.default_timezone) == (None, None)
