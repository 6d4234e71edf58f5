"""The store: schema by migration, row states, leases, and what reports read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from importlib import resources

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from campaign import outcomes
from campaign.eligibility import Eligibility
from campaign.limiter import plan_turn, requests_per_window
from campaign.model import Fate, Recipient, RowState, SendOutcome, SkippedRow
from campaign.store import Store, database_url


def new_campaign(store: Store, n: int = 3, name: str = "c"):
    recipients = [Recipient(i + 2, f"+1415555{i:04d}", f"R{i}", {"1": "x"}) for i in range(n)]
    return store.create_campaign(
        name=name,
        fingerprint="f" * 64,
        source="list.csv",
        account="a" * 32,
        sender_id=12,
        template_id=45,
        recipients=recipients,
        skipped=[SkippedRow(n + 2, "+14155550000", "Dup", "duplicate of row 2")],
    )


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("campaign.migrations")))
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_open_creates_the_schema_by_migration(store_db):
    """Opening a new store runs the migrations to the newest revision."""
    Store.open(store_db).close()
    engine = sa.create_engine(database_url(store_db))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head()
        tables = set(sa.inspect(conn).get_table_names())
    assert {"campaigns", "rows", "attempts", "account_pace"} <= tables


def test_an_old_store_is_upgraded_on_open(store_db):
    """A store left at the first revision is brought to the newest when opened."""
    engine = sa.create_engine(database_url(store_db))
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    store = Store.open(store_db)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head()
    assert store.book_turn("acct", 5, lambda pace: (pace.now, pace.guard)).at > 0


def test_reopening_is_harmless(store_db):
    """A second open finds the schema current and keeps the data."""
    store = Store.open(store_db)
    new_campaign(store)
    store.close()
    assert Store.open(store_db).find_campaign("c") is not None


def test_new_store_file_is_private(db_path):
    """A new SQLite store is readable and writable by its owner only."""
    Store.open(db_path).close()
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_wal_mode(db_path):
    """SQLite stores use write-ahead logging."""
    store = Store.open(db_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_rows_keep_spreadsheet_order_and_skips(store_db):
    """Recipients and skipped rows are stored together in row order with their states."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    states = [(r.row, r.state) for r in store.report_rows(campaign.id)]
    assert states == [(2, "pending"), (3, "pending"), (4, "pending"), (5, "skipped")]
    assert store.counts(campaign.id)["skipped"] == 1


def test_rows_given_in_batches_are_all_stored_and_counted(store_db):
    """Rows given a batch at a time (a file read in blocks) are stored in one campaign,
    counted, and the campaign is created holding its lease."""
    store = Store.open(store_db)
    batches = (
        (
            [Recipient(r, f"+1415555{r:04d}", f"R{r}", {"1": "x"}) for r in (b, b + 2)],
            [SkippedRow(b + 1, "bad", f"S{b}", "phone is empty", "INVALID_ROW")],
        )
        for b in range(2, 32, 3)
    )
    campaign = store.create_campaign(
        name="b",
        fingerprint="f" * 64,
        source="big.csv",
        account="a" * 32,
        sender_id=12,
        template_id=45,
        batches=batches,
        lease=("host:1:a", 30),
    )
    assert campaign.total_rows == 30
    assert [r.row for r in store.report_rows(campaign.id)] == list(range(2, 32))
    assert store.counts(campaign.id)["skipped"] == 10
    assert not store.acquire_lease(campaign.id, "host:2:b", ttl=30)


def test_sending_then_sent_is_logged(store_db):
    """A row goes pending -> sending -> sent, and the attempt log has a line."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    row = store.due_rows(campaign.id, 1)[0]
    assert store.claim(row.id, Eligibility()).attempt == 1
    assert store.counts(campaign.id)["sending"] == 1
    outcome = SendOutcome(200, conversation_id=7, message_sid="SM1", api_status="queued")
    store.record(campaign.id, row.id, 1, outcome, Fate.SENT, state=RowState.SENT)
    line = next(r for r in store.report_rows(campaign.id) if r.id == row.id)
    assert (line.state, line.conversation_id, line.message_sid) == ("sent", 7, "SM1")
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM attempts")) == 1


def test_rows_left_sending_become_unknown(store_db):
    """A row found `sending` (its run died mid-request) is marked unknown, never pending."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    row = store.due_rows(campaign.id, 1)[0]
    store.claim(row.id, Eligibility())
    assert store.mark_interrupted(campaign.id) == 1
    line = next(r for r in store.report_rows(campaign.id) if r.id == row.id)
    assert (line.state, line.error_code) == ("unknown", outcomes.INTERRUPTED)


def test_retry_waits_until_due(store_db):
    """A row put back with a retry time is not due before it."""
    import time

    store = Store.open(store_db)
    campaign = new_campaign(store, n=1)
    row = store.due_rows(campaign.id, 1)[0]
    store.claim(row.id, Eligibility())
    outcome = SendOutcome(429, error_code=outcomes.RATE_LIMITED)
    later = time.time() + 60
    store.record(
        campaign.id, row.id, 1, outcome, Fate.RETRY, state=RowState.PENDING, retry_at=later
    )
    assert store.due_rows(campaign.id, 10) == []
    assert store.next_retry_at(campaign.id) == later


def test_one_lease_at_a_time(store_db):
    """While a run holds the lease no other run can take it; released, it can."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    assert store.acquire_lease(campaign.id, "host:1:a", ttl=30)
    assert not store.acquire_lease(campaign.id, "host:2:b", ttl=30)
    store.release_lease(campaign.id, "host:1:a")
    assert store.acquire_lease(campaign.id, "host:2:b", ttl=30)


def test_expired_lease_can_be_taken(store_db):
    """A lease nobody renewed expires."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    assert store.acquire_lease(campaign.id, "elsewhere:1:a", ttl=-1)
    assert store.acquire_lease(campaign.id, "elsewhere:2:b", ttl=30)
    assert not store.renew_lease(campaign.id, "elsewhere:1:a", ttl=30)


def test_lease_of_a_dead_local_process_is_free_at_once(store_db):
    """A lease whose holder on this host no longer exists does not wait for expiry."""
    import socket

    store = Store.open(store_db)
    campaign = new_campaign(store)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    owner = f"{socket.gethostname()}:{dead.stdout.strip()}:x"
    assert store.acquire_lease(campaign.id, owner, ttl=300)
    assert store.acquire_lease(campaign.id, f"{socket.gethostname()}:{os.getpid()}:y", ttl=30)


def test_requeue_failed_by_code(store_db):
    """Failed rows of one code go back to pending; others stay."""
    store = Store.open(store_db)
    campaign = new_campaign(store)
    for row, code in zip(store.due_rows(campaign.id, 3), ["A", "B", "A"], strict=True):
        store.claim(row.id, Eligibility())
        store.record(
            campaign.id,
            row.id,
            1,
            SendOutcome(422, error_code=code),
            Fate.FAILED,
            state=RowState.FAILED,
        )
    assert store.requeue(campaign.id, [RowState.FAILED], code="A") == 2
    assert store.counts(campaign.id)["pending"] == 2


def test_url_password_is_not_shown(tmp_path):
    """An error opening a database URL does not print its password."""
    import pytest

    from campaign.errors import StoreError

    with pytest.raises(StoreError) as caught:
        Store.open("postgresql+psycopg://user:s3cret@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


def book(store: Store, rate: float = 5) -> float:
    """Book the account's next turn as the limiter would; its time (the database's clock)."""
    return store.book_turn("acct", requests_per_window(rate), lambda p: plan_turn(p, rate)).at


def test_turns_are_booked_an_interval_apart(store_db):
    """The account's turns come (1 s + guard) / rate apart, whoever books them."""
    first, second = Store.open(store_db), Store.open(store_db)
    a, b, c = book(first), book(second), book(first)
    guard = first.account_guard("acct")
    assert b - a == pytest.approx((1 + guard) / 5, abs=1e-4)
    assert c - b == pytest.approx((1 + guard) / 5, abs=1e-4)


def test_a_pause_holds_the_next_turn(store_db):
    """A 429's pause holds the account's next turn until it ends."""
    import time

    store = Store.open(store_db)
    store.pause_account("acct", 5.0)
    assert book(store) >= time.time() + 4.5


def test_a_late_write_pushes_the_turn_a_window_later(store_db):
    """Turn k + rate waits a window after turn k's request actually left, not its plan."""
    store = Store.open(store_db)
    first = store.book_turn("acct", 4, lambda p: plan_turn(p, 2))
    second = store.book_turn("acct", 4, lambda p: plan_turn(p, 2))
    store.turn_written(first.turn_id, first.at + 0.3)  # it left 300 ms late
    store.turn_written(second.turn_id, second.at)  # as usual, on time
    guard = store.account_guard("acct")
    assert book(store, 2) == pytest.approx(first.at + 0.3 + 1 + guard, abs=1e-4)


def test_a_released_turn_no_longer_counts(store_db):
    """A turn given back (its request never left) leaves the account's window."""
    store = Store.open(store_db)
    first = store.book_turn("acct", 1, lambda p: plan_turn(p, 1))
    store.release_turn(first.turn_id)
    assert book(store, 1) < first.at + 0.5


def test_models_match_the_migrations(store_db):
    """The schema the migrations build is the one store.py's models describe (alembic check)."""
    from alembic import command

    from campaign.store import alembic_config

    store = Store.open(store_db)
    with store.engine.connect() as conn:
        command.check(alembic_config(conn))  # raises AutogenerateDiffsDetected on a difference


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        (
            "postgresql+psycopg://u@h/db?password=a&sslpassword=b&api_key=c&Auth_Token=d"
            "&sslmode=require&application_name=nightly",
            "postgresql+psycopg://u@h/db?password=***&sslpassword=***&api_key=***&Auth_Token=***"
            "&sslmode=require&application_name=nightly",
        ),
        ("postgresql://u:p%40w@h:notaport/db", "postgresql://u:***@h:notaport/db"),
        ("postgresql://u:p@w@h/db", "postgresql://u:***@h/db"),  # unescaped @: mask to the last
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
    ],
)
def test_a_url_is_shown_with_every_secret_masked(url, shown):
    """The password and secret-named query values are masked, parsed or not; nothing else."""
    from campaign.store import _safe_url

    assert _safe_url(url) == shown
