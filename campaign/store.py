"""The store: the tables of campaigns, rows and attempts, and the few queries the rest needs.

SQLAlchemy Core throughout: the tables are declared as ORM models (the classes below, so
that Alembic compares them with the migrations and queries read `Row.state`), but every
query is a Core statement run on a Connection; no Session, no ORM objects. What leaves
the store is a small frozen dataclass (CampaignInfo, StoredRow, …), read from the
columns its fields name (`_columns`, `_record`), so the two cannot drift apart.

Every state change of a row is one call here, committed before the action it describes.
SQLite by default (WAL; the commit of `sending` waits for the disk, so it survives a
power cut), any SQLAlchemy URL otherwise. Alembic migrations run on open.

A failure that may pass (a locked or full database, a lost connection, a restarted
server) is raised as `StoreUnavailable`, decided in one place: `_unavailable`. The run
waits for the store (patience.py); any other database error is a bug.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import json
import os
import re
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar
from urllib.parse import unquote, unquote_plus

import sqlalchemy as sa
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaign import outcomes
from campaign.config import duration_text
from campaign.errors import StoreError, StoreUnavailable
from campaign.model import (
    ALREADY_SENT,
    FREQUENCY_CAP,
    SEND_WINDOW,
    SUPPRESSED,
    Fate,
    Recipient,
    RowState,
    SendOutcome,
    SkippedRow,
)
from campaign.redact import Redactor

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

DEFAULT_DB = "campaigns.db"
T = TypeVar("T")
INSERT_CHUNK = 5000
URL_EXAMPLE = "postgresql+psycopg://user:password@host:5432/dbname"
MASK = "***"
# A URL's password: everything between the user's colon and the last "@" (a password
# may hold an unescaped "@"; masking too much is safe, too little is not).
URL_PASSWORD = re.compile(r"^(?P<head>[^:/?#]*://[^:@/?#]*:)(?P<secret>.*)@")
# A query parameter named like a secret: ?password=, &sslpassword=, token=, api_key=…
URL_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;][^=&#?]*(?:pass|pwd|secret|token|key|auth|cred)[^=&#?]*=)(?P<secret>[^&#]*)",
    re.IGNORECASE,
)
DEFAULT_DEDUPE_WINDOW = 7 * 86400.0  # seconds the guard looks back (--dedupe-window)
# Rows whose message may have reached its recipient: the guard counts them as sent.
MAY_HAVE_SENT = (RowState.SENT, RowState.UNKNOWN, RowState.SENDING)
BIG_CACHE_KIB = 256 * 1024  # SQLite page cache while a campaign's rows are inserted
GUARD_CHUNK = 500  # message keys per query when counting what the guard will skip

# SQLite errors that may pass: a lock held too long, a full or failing disk, a file
# briefly unwritable. Others (no such table, a syntax error) are bugs.
SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: sa.JSON}


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # file content + sender + template
    source: Mapped[str] = mapped_column(sa.String(1000))
    account: Mapped[str | None] = mapped_column(sa.String(32))  # client.account_id; None: old
    sender_id: Mapped[int]
    template_id: Mapped[int]
    total_rows: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20), default="ready")
    halt_reason: Mapped[str | None] = mapped_column(sa.Text)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[float | None]  # epoch seconds
    # The recipients' send window (HH:MM-HH:MM; None: any hour) and the zone of numbers
    # with none known: given when the campaign was started, kept for its later runs.
    send_window: Mapped[str | None] = mapped_column(sa.String(11))
    default_timezone: Mapped[str | None] = mapped_column(sa.String(64))
    # The frequency cap (N/PERIOD such as 1/1d; None: none), kept for its later runs too.
    max_per_recipient: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Row(Base):
    """One input row: its recipient, its state, and what the API said."""

    __tablename__ = "rows"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "row"),
        sa.Index("ix_rows_campaign_state_row", "campaign_id", "state", "row"),
        # A phone's recent sends, counted by the frequency cap (eligibility.py).
        sa.Index("ix_rows_phone_claimed_at", "phone", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"))
    row: Mapped[int]  # the spreadsheet's row number
    phone: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(1000))
    variables: Mapped[dict[str, Any]]
    # What the recipient gets, whatever the campaign: see message_keyer. None for skipped
    # rows and for rows stored before the guard existed (migration 0003).
    message_key: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    state: Mapped[str] = mapped_column(sa.String(10))
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[float | None]  # epoch seconds; a retried row waits until then
    # Epoch seconds: a pending row outside its recipient's send window waits until then
    # (daytime.py). Not an attempt; each run decides it again with its own window.
    daytime_at: Mapped[float | None]
    # Epoch seconds: when last marked `sending`, the moment the message may have left.
    claimed_at: Mapped[float | None] = mapped_column(sa.Float)
    conversation_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    whatsapp_message_id: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    message_sid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    api_status: Mapped[str | None] = mapped_column(sa.String(40))
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # What the delivery status webhook said of the message (see deliveries.py).
    delivery_status: Mapped[str | None] = mapped_column(sa.String(20))
    delivery_updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    delivery_error_code: Mapped[str | None] = mapped_column(sa.String(80))
    delivery_error_message: Mapped[str | None] = mapped_column(sa.Text)
    resolved_by: Mapped[str | None] = mapped_column(sa.String(20))  # "webhook": was unknown


class Attempt(Base):
    """The append-only log: one line per request, and one per interrupted request."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    row_id: Mapped[int] = mapped_column(sa.ForeignKey("rows.id"), index=True)
    number: Mapped[int]
    fate: Mapped[str] = mapped_column(sa.String(10))
    http_status: Mapped[int | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    raw_body: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # When the request was written out (None: it never left, or an older store).
    left_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class AccountPace(Base):
    """One account's shared pace (see limiter.py); times are the database's epoch seconds."""

    __tablename__ = "account_pace"

    account: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    paused_until: Mapped[float]
    # Learned from 429s; a new account starts at limiter.GUARD_START (10 ms).
    guard: Mapped[float] = mapped_column(server_default=sa.text("0.01"))


class AccountTurn(Base):
    """An account's recent turns: when each was planned, and when its request was written."""

    __tablename__ = "account_turns"
    __table_args__ = (sa.Index("ix_account_turns_account_planned", "account", "planned"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(64))
    planned: Mapped[float]
    written: Mapped[float | None]


class TestSend(Base):
    """One message sent by `campaign test` to the operator's own number: never a campaign row."""

    __tablename__ = "test_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    account: Mapped[str] = mapped_column(sa.String(32))  # client.account_id
    sender_id: Mapped[int]
    template_id: Mapped[int]
    to_phone: Mapped[str] = mapped_column(sa.String(64))  # E.164
    source: Mapped[str] = mapped_column(sa.String(1000))  # the file the values came from
    row: Mapped[int]  # the spreadsheet row whose values were sent
    # sending (committed before the request leaves), then sent, failed or unknown
    status: Mapped[str] = mapped_column(sa.String(10))
    http_status: Mapped[int | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    message_sid: Mapped[str | None] = mapped_column(sa.String(64))


class DeliveryEvent(Base):
    """Every signed event the delivery status webhook received, matched to a row or not."""

    __tablename__ = "delivery_events"
    __table_args__ = (sa.Index("ix_delivery_events_row_received", "row_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)  # sha256 of the raw body
    raw: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    event: Mapped[str | None] = mapped_column(sa.String(40))
    status: Mapped[str | None] = mapped_column(sa.String(20))
    message_sid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    whatsapp_message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    to_phone: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # None: no row matched (yet). `outcome` says what the event did (deliveries.Outcome).
    row_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rows.id"))
    outcome: Mapped[str] = mapped_column(sa.String(20))


class SenderNumber(Base):
    """A sender's phone number: from the account when a run starts, and from the `from`
    of webhook events that matched its rows."""

    __tablename__ = "sender_numbers"

    sender_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    phone: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class Suppression(Base):
    """A number (E.164) an account must never message: its suppression list."""

    __tablename__ = "suppressions"
    __table_args__ = (sa.UniqueConstraint("account", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(32))  # client.account_id, as campaigns.account
    phone: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    added_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    fingerprint: str
    source: str
    sender_id: int
    template_id: int
    total_rows: int
    status: str
    halt_reason: str | None
    created_at: datetime
    send_window: str | None = None  # HH:MM-HH:MM in each recipient's local time; None: any hour
    default_timezone: str | None = None  # for numbers with no known zone
    max_per_recipient: str | None = None  # the frequency cap, N/PERIOD; None: none


@dataclass(frozen=True)
class StoredRow:
    """One stored row as reports show it: its recipient, its state, what the API said."""

    id: int
    row: int  # the spreadsheet's row number
    phone: str
    name: str
    state: str
    attempts: int
    api_status: str | None
    conversation_id: int | None
    message_id: int | None
    whatsapp_message_id: int | None
    message_sid: str | None
    error_code: str | None
    error_message: str | None
    delivery_status: str | None
    delivery_updated_at: datetime | None
    delivery_error_code: str | None
    delivery_error_message: str | None
    resolved_by: str | None


@dataclass(frozen=True)
class TestSendInfo:
    """One recorded test send, as `Store.test_sends` gives it."""

    id: int
    at: datetime
    account: str
    sender_id: int
    template_id: int
    to_phone: str
    source: str
    row: int
    status: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    message_sid: str | None


D = TypeVar("D")


def _columns(record: type, table: sa.Table) -> list[sa.Column]:
    """The table's columns that a dataclass's fields name, in the fields' order."""
    return [table.c[f.name] for f in dataclasses.fields(record)]


def _record(record: type[D], row: sa.Row) -> D:
    """A dataclass from a row selected by `_columns(record, …)`."""
    return record(**row._mapping)


@dataclass(frozen=True)
class ClockReading:
    """The database's clock against this host's: database time = local time + offset.

    Read with one round trip; the offset assumes the database read its clock halfway
    through it, so it is off by at most half of `rtt`.
    """

    offset: float
    rtt: float


@dataclass(frozen=True)
class PastTurn:
    planned: float
    written: float | None  # None until its request is known to have left


@dataclass(frozen=True)
class Pace:
    """An account's pace as a booking sees it, on the database's clock."""

    now: float
    paused_until: float
    guard: float
    recent: list[PastTurn]  # the newest turns, newest first


@dataclass(frozen=True)
class Booking:
    turn_id: int
    at: float  # the database's clock
    clock: ClockReading


# How a booking places its turn: (when, the account's new guard) from the account's pace.
PlanTurn = Callable[[Pace], tuple[float, float]]

TURN_LOG_KEEP = 60.0  # seconds of turns kept per account: enough for any rate >= 1/60


@dataclass(frozen=True)
class RowToSend:
    id: int
    recipient: Recipient


@dataclass(frozen=True)
class Claim:
    """What claiming a row came to: `sending` as this attempt, or refused by the rules."""

    attempt: int = 0
    refusal: str | None = None  # why the row was skipped instead
    code: str | None = None  # the refusal's code: SUPPRESSED, ALREADY_SENT, FREQUENCY_CAP…


@dataclass(frozen=True)
class Candidate:
    """A pending row being claimed, as the eligibility rules see it."""

    row_id: int
    phone: str
    message_key: str | None  # None: stored before the guard existed
    campaign_id: int
    campaign: str  # the campaign's name, for the reasons
    account: str | None  # client.account_id; None: stored before accounts were recorded


@dataclass(frozen=True)
class Refusal:
    """Why a row may not be messaged now: its code and a sentence for the report."""

    code: str
    reason: str


Reason = Callable[[int], str]  # a refusal's sentence from a count


class ClaimRules(Protocol):
    """Who may be messaged (eligibility.Eligibility), asked in the claim's transaction."""

    def __call__(self, conn: sa.Connection, row: Candidate, now: float) -> Refusal | None: ...


@dataclass(frozen=True)
class SuppressedNumber:
    """One number of an account's suppression list."""

    phone: str
    reason: str | None
    added_at: datetime


@dataclass(frozen=True)
class Deferral:
    """A pending row that waits for its recipient's daytime: until when, and why."""

    row_id: int
    until: float  # epoch seconds
    why: str


@dataclass(frozen=True)
class DaytimeWaits:
    """A campaign's pending rows that wait for their recipients' daytime."""

    rows: int = 0
    next_at: float | None = None  # epoch seconds: when the first of them may go
    next_phone: str | None = None  # that row's phone, for its local time


@dataclass(frozen=True)
class AlreadySent:
    """Rows whose message the guard will find already sent, and by which campaigns."""

    rows: int = 0
    campaigns: tuple[str, ...] = ()  # most recent first
    window: float = 0.0  # seconds looked back

    def plus(self, more: AlreadySent) -> AlreadySent:
        """Both counts together (of two parts of one file)."""
        names = tuple(dict.fromkeys(more.campaigns + self.campaigns))
        return AlreadySent(self.rows + more.rows, names, self.window)


def message_keyer(account: str, sender_id: int, template_id: int) -> Callable[[str, dict], str]:
    """The key of a message from this account, sender and template: a function of the
    phone (E.164) and the variables as sent. The recipient's name is not part of it.

    sha256 hex of `account|sender|template|phone|variables as canonical JSON`; the
    prefix is hashed once, so a million rows cost little more than their JSON.
    """
    prefix = hashlib.sha256(f"{account}|{sender_id}|{template_id}|".encode())
    canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

    def key(phone: str, variables: dict) -> str:
        digest = prefix.copy()
        digest.update(f"{phone}|{canonical(variables)}".encode())
        return digest.hexdigest()

    return key


def database_url(db: str | None) -> str:
    """A SQLAlchemy URL from a path or a URL; a bare path is a SQLite file."""
    db = db or os.environ.get("CAMPAIGN_DB") or DEFAULT_DB
    return db if "://" in db else f"sqlite:///{Path(db).expanduser()}"


def lease_owner_id() -> str:
    """host:pid:nonce — the nonce tells this run from an earlier one that had the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


CAMPAIGN_INFO = _columns(CampaignInfo, Campaign.__table__)
# A campaign's settings that its later runs keep unless they are given again.
KEPT_SETTINGS = ("send_window", "default_timezone", "max_per_recipient")
STORED_ROW = _columns(StoredRow, Row.__table__)
SUPPRESSED_NUMBER = _columns(SuppressedNumber, Suppression.__table__)
CANDIDATE = (
    Row.id.label("row_id"),
    Row.phone,
    Row.message_key,
    Row.campaign_id,
    Campaign.name.label("campaign"),
    Campaign.account,
)


class Store:
    """One database of campaigns. Safe to call from several threads, one call at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # On SQLite, a write transaction takes the write lock when it begins, so it never
        # fails half-way on a lock upgrade while another process writes.
        self._writer = engine.execution_options(begin_immediate=True)
        self._durable_writer = engine.execution_options(begin_immediate=True, durable=True)
        self._accounts: set[str] = set()  # account_pace rows known to exist

    @classmethod
    def open(cls, db: str | None = None) -> Store:
        """Open (creating and migrating as needed) the store at a path or URL.

        Every failure is a StoreError of one line that shows the URL's secrets masked.
        """
        url = database_url(db)
        try:
            parsed = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):  # e.g. no scheme, a port that is no number
            raise StoreError(
                f"the store URL {_safe_url(url)} does not parse; give a file path or a "
                f"URL such as {URL_EXAMPLE}"
            ) from None
        password = URL_PASSWORD.match(url)
        if password and "@" in password["secret"]:  # where the password ends is a guess
            raise StoreError(
                f"the store URL {_safe_url(url)} has more than one '@' after its user name; "
                "write an '@' of the password as %40"
            )
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            _create_private_file(Path(url.removeprefix("sqlite:///")))
        try:
            # pool_pre_ping: a connection the server dropped (a restart) is replaced on checkout.
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError, ValueError, TypeError) as exc:
            raise StoreError(_cannot_open(url, exc)) from None
        event.listen(engine, "handle_error", _unavailable)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        # Build the ORM's mappers now: lazily, the first row recorded would stall the event
        # loop for tens of milliseconds while a request is leaving.
        sa.orm.configure_mappers()
        try:
            migrate(engine.execution_options(begin_immediate=True))
        except StoreUnavailable as exc:
            engine.dispose()
            raise StoreUnavailable(
                f"cannot open the store {_safe_url(url)} ({exc.reason}); try again later",
                reason=exc.reason,
            ) from None
        except sa.exc.DBAPIError as exc:  # also "file is not a database"
            engine.dispose()
            raise StoreError(_cannot_open(url, exc.orig)) from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def transaction(self, *, durable: bool = False) -> contextlib.AbstractContextManager:
        """A write transaction for a module that keeps its own queries (deliveries.py).

        `durable`: on SQLite its commit waits for the disk, as the commit of `sending` does.
        """
        return (self._durable_writer if durable else self._writer).begin()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- campaigns --------------------------------------------------------------------

    def find_campaign(self, name: str) -> CampaignInfo | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(*CAMPAIGN_INFO).where(Campaign.name == name)).first()
        return _record(CampaignInfo, found) if found else None

    def campaigns(self) -> list[CampaignInfo]:
        with self.engine.connect() as conn:
            found = conn.execute(select(*CAMPAIGN_INFO).order_by(Campaign.id)).all()
        return [_record(CampaignInfo, c) for c in found]

    def create_campaign(
        self,
        *,
        name: str,
        fingerprint: str,
        source: str,
        account: str,
        sender_id: int,
        template_id: int,
        recipients: Iterable[Recipient] = (),
        skipped: Iterable[SkippedRow] = (),
        batches: Iterable[tuple[Iterable[Recipient], Iterable[SkippedRow]]] = (),
        lease: tuple[str, float] | None = None,
        send_window: str | None = None,
        default_timezone: str | None = None,
        max_per_recipient: str | None = None,
    ) -> CampaignInfo:
        """Store a campaign and every one of its rows in one transaction.

        `account` (client.account_id) keys each row's message, for the guard in `claim`.
        The rows are `recipients` and `skipped`, then those of each of `batches` (a file read
        a block at a time, never held whole), each in row order.
        `lease` (owner, seconds): create it already held by that run, so that no other
        run can start it between its creation and the first send.
        `send_window` (HH:MM-HH:MM), `default_timezone` and `max_per_recipient` (the
        frequency cap, N/PERIOD) are kept for its later runs.
        """
        key = message_keyer(account, sender_id, template_id)
        with self._writer.begin() as conn, _big_cache(conn):
            campaign_id = conn.execute(
                sa.insert(Campaign)
                .values(
                    name=name,
                    fingerprint=fingerprint,
                    source=source,
                    account=account,
                    sender_id=sender_id,
                    template_id=template_id,
                    total_rows=0,  # counted below
                    lease_owner=lease[0] if lease else None,
                    send_window=send_window,
                    default_timezone=default_timezone,
                    max_per_recipient=max_per_recipient,
                )
                .returning(Campaign.id)
            ).scalar_one()
            now = utcnow()  # given once: a default would be called for every row
            total = 0
            for batch_recipients, batch_skipped in chain([(recipients, skipped)], batches):
                pending = (_pending_row(r, key(r.phone, r.variables)) for r in batch_recipients)
                rows = heapq.merge(pending, map(_skipped_row, batch_skipped), key=itemgetter("row"))
                while chunk := list(islice(rows, INSERT_CHUNK)):
                    for row in chunk:
                        row.update(campaign_id=campaign_id, created_at=now, updated_at=now)
                    conn.execute(sa.insert(Row), chunk)
                    total += len(chunk)
            expires = self._db_now() + lease[1] if lease else None  # after the insert
            conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(total_rows=total, lease_expires_at=expires)
            )
        found = self.find_campaign(name)
        assert found is not None
        return found

    def set_status(self, campaign_id: int, status: str, halt_reason: str | None = None) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(status=status, halt_reason=halt_reason, updated_at=utcnow())
            )

    def set_kept_settings(self, campaign_id: int, **kept: str | None) -> None:
        """The campaign's kept settings from now on, for its later runs: its send window
        (None: any hour), default_timezone and max_per_recipient (None: no cap)."""
        unknown = set(kept) - set(KEPT_SETTINGS)
        assert not unknown, f"not a kept setting: {unknown}"
        with self._writer.begin() as conn:
            conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(**kept, updated_at=utcnow())
            )

    def add_sender_number(self, sender_id: int, phone: str) -> None:
        """This sender sends from `phone` (E.164): the delivery webhook knows its events by
        that `from` (deliveries.py). Idempotent: a number is kept once."""
        with self._writer.begin() as conn:
            insert_sender_number(conn, sender_id, phone)

    # --- the lease: one run at a time per campaign --------------------------------------

    # Lease times are the database's clock, so that hosts whose clocks disagree still agree
    # on whether a lease is live.

    def acquire_lease(self, campaign_id: int, owner: str, ttl: float) -> bool:
        """Take the campaign if no live run holds it. One statement, so two runs cannot both win."""
        now = self._db_now()
        free = sa.or_(
            Campaign.lease_owner.is_(None),
            Campaign.lease_expires_at < now,
            Campaign.lease_owner == owner,
        )
        dead = _dead_local_owner(self._lease_owner(campaign_id))
        if dead:
            free = sa.or_(free, Campaign.lease_owner == dead)
        with self._writer.begin() as conn:
            taken = conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, free)
                .values(lease_owner=owner, lease_expires_at=now + ttl)
            )
        return taken.rowcount == 1

    def renew_lease(self, campaign_id: int, owner: str, ttl: float) -> bool:
        """Extend our lease; False means another run took it and we must stop sending."""
        with self._writer.begin() as conn:
            kept = conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
                .values(lease_expires_at=self._db_now() + ttl)
            )
        return kept.rowcount == 1

    def release_lease(self, campaign_id: int, owner: str) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def _lease_owner(self, campaign_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(Campaign.lease_owner).where(Campaign.id == campaign_id))

    # --- the account's pace, shared by every run on it ----------------------------------
    # Every time here is the database's clock, so that runs on hosts whose clocks
    # disagree share one pace; each call that reads it says how it compares to ours.

    def book_turn(self, account: str, newest: int, plan: PlanTurn) -> Booking:
        """Book the account's next turn where `plan` puts it, seeing the `newest` past turns.

        One transaction holding the account's pace row, so bookings never interleave.
        """
        with self._locked_pace(account) as (conn, paused_until, guard):
            now, clock = self._read_clock(conn)  # after the lock: a wait for it is no skew
            recent = conn.execute(
                select(AccountTurn.planned, AccountTurn.written)
                .where(AccountTurn.account == account)
                .order_by(AccountTurn.planned.desc())
                .limit(newest)
            ).all()
            at, guard = plan(Pace(now, paused_until, guard, [PastTurn(*t) for t in recent]))
            conn.execute(
                update(AccountPace).where(AccountPace.account == account).values(guard=guard)
            )
            turn_id = conn.execute(
                sa.insert(AccountTurn).returning(AccountTurn.id),
                dict(account=account, planned=at, written=None),
            ).scalar_one()
            conn.execute(
                sa.delete(AccountTurn).where(
                    AccountTurn.account == account, AccountTurn.planned < now - TURN_LOG_KEEP
                )
            )
        return Booking(turn_id, at, clock)

    def turn_written(self, turn_id: int, at: float) -> None:
        """The request of a turn was written out at `at` (the database's clock)."""
        with self._pace_writer() as conn:
            conn.execute(update(AccountTurn).where(AccountTurn.id == turn_id).values(written=at))

    def release_turn(self, turn_id: int) -> None:
        """A turn whose request will not leave: it no longer counts in the account's window."""
        with self._pace_writer() as conn:
            conn.execute(sa.delete(AccountTurn).where(AccountTurn.id == turn_id))

    def account_pause(self, account: str) -> tuple[float, ClockReading]:
        """Until when the account is paused, and a fresh reading of the database's clock."""
        self._ensure_account(account)
        before = time.time()
        with self.engine.connect() as conn:
            paused_until, now = conn.execute(
                select(AccountPace.paused_until, self._db_now_sql()).where(
                    AccountPace.account == account
                )
            ).one()
        after = time.time()
        if not self._clock_is_remote:
            return paused_until, ClockReading(0.0, 0.0)
        return paused_until, _clock(now, before, after)

    def pause_account(
        self, account: str, seconds: float, widen: Callable[[float], float] | None = None
    ) -> float:
        """No turn of this account before `seconds` from now; returns when that is.

        `widen` (a 429): the account's new guard from its guard, unless a pause was already
        in force (one burst of 429s widens it once).
        """
        with self._locked_pace(account) as (conn, paused_until, guard):
            now, _ = self._read_clock(conn)
            values: dict[str, float] = {}
            if widen is not None and paused_until <= now:
                values["guard"] = widen(guard)
            if now + seconds > paused_until:
                values["paused_until"] = now + seconds
            if values:
                conn.execute(
                    update(AccountPace).where(AccountPace.account == account).values(**values)
                )
        return max(paused_until, now + seconds)

    def account_guard(self, account: str) -> float | None:
        """The account's learned guard (seconds), if it has a pace yet."""
        with self.engine.connect() as conn:
            return conn.scalar(select(AccountPace.guard).where(AccountPace.account == account))

    @contextlib.contextmanager
    def _locked_pace(self, account: str) -> Iterator[tuple[sa.Connection, float, float]]:
        """A pace transaction holding the account's row: (connection, paused_until, guard)."""
        self._ensure_account(account)
        with self._pace_writer() as conn:
            paused_until, guard = conn.execute(
                select(AccountPace.paused_until, AccountPace.guard)
                .where(AccountPace.account == account)
                .with_for_update()
            ).one()
            yield conn, paused_until, guard

    def _ensure_account(self, account: str) -> None:
        if account in self._accounts:
            return
        try:
            with self._writer.begin() as conn:
                exists = conn.scalar(
                    select(AccountPace.account).where(AccountPace.account == account)
                )
                if not exists:
                    conn.execute(sa.insert(AccountPace), dict(account=account, paused_until=0.0))
        except sa.exc.IntegrityError:
            pass  # another process inserted it first
        self._accounts.add(account)

    @contextlib.contextmanager
    def _pace_writer(self) -> Iterator[sa.Connection]:
        """A write transaction of the pace: losing one in a crash loses nothing that matters."""
        with self._writer.begin() as conn:
            if self._clock_is_remote:
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    # --- the database's clock -----------------------------------------------------------

    @property
    def _clock_is_remote(self) -> bool:
        """SQLite lives on this host: its clock is ours. A server has its own."""
        return self.engine.dialect.name != "sqlite"

    def _db_now_sql(self) -> sa.ColumnElement[float]:
        """The database's time now, in epoch seconds, as SQL."""
        if self.engine.dialect.name == "postgresql":
            # clock_timestamp(), not now(): the time of this statement, not of the transaction.
            return sa.cast(sa.extract("epoch", func.clock_timestamp()), sa.Float)
        return sa.literal(time.time(), sa.Float)

    def _db_now(self) -> float | sa.ColumnElement[float]:
        """The database's time now: SQL evaluated by the server, or this host's clock."""
        return self._db_now_sql() if self._clock_is_remote else time.time()

    def _read_clock(self, conn: sa.Connection) -> tuple[float, ClockReading]:
        """The database's time now, and how it compares to ours (one round trip)."""
        if not self._clock_is_remote:
            return time.time(), ClockReading(0.0, 0.0)
        before = time.time()
        now = conn.scalar(select(self._db_now_sql()))
        after = time.time()
        return now, _clock(now, before, after)

    # --- rows -------------------------------------------------------------------------

    def mark_interrupted(self, campaign_id: int) -> int:
        """Rows left `sending` by a run that died become `unknown`: they may have been sent."""
        interrupted = SendOutcome(
            http_status=None,
            error_code=outcomes.INTERRUPTED,
            error_message="the previous run stopped while this request was in flight; "
            "it may have been sent",
        )
        with self._writer.begin() as conn:
            stuck = conn.execute(
                select(Row.id, Row.attempts).where(
                    Row.campaign_id == campaign_id, Row.state == RowState.SENDING
                )
            ).all()
            for row_id, attempts in stuck:
                conn.execute(
                    update(Row)
                    .where(Row.id == row_id)
                    .values(
                        state=RowState.UNKNOWN,
                        error_code=interrupted.error_code,
                        error_message=interrupted.error_message,
                        updated_at=utcnow(),
                    )
                )
                _log_attempt(conn, campaign_id, row_id, attempts, interrupted, Fate.UNKNOWN)
        return len(stuck)

    def due_rows(self, campaign_id: int, limit: int) -> list[RowToSend]:
        """Pending rows whose retry time (and daytime) has come, in spreadsheet order."""
        now = time.time()
        return self._pending_rows(
            campaign_id,
            limit,
            sa.or_(Row.retry_at.is_(None), Row.retry_at <= now),
            sa.or_(Row.daytime_at.is_(None), Row.daytime_at <= now),
        )

    def next_retry_at(self, campaign_id: int) -> float | None:
        """When the earliest waiting pending row becomes due; None when nothing is pending
        (rows that wait for their recipients' daytime aside: see daytime_waits)."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(func.count(), func.min(Row.retry_at)).where(
                    Row.campaign_id == campaign_id,
                    Row.state == RowState.PENDING,
                    sa.or_(Row.daytime_at.is_(None), Row.daytime_at <= time.time()),
                )
            ).one()
        count, earliest = pending
        if not count:
            return None
        return earliest or time.time()

    # --- each recipient's daytime (see daytime.py) -------------------------------------

    def pending_after(self, campaign_id: int, after_row: int, limit: int) -> list[RowToSend]:
        """Pending rows after spreadsheet row `after_row`, in order, waiting or not: one
        page of a pass over them all (the campaign's index serves it page by page)."""
        return self._pending_rows(campaign_id, limit, Row.row > after_row)

    def _pending_rows(
        self, campaign_id: int, limit: int, *conditions: sa.ColumnElement[bool]
    ) -> list[RowToSend]:
        """Up to `limit` pending rows meeting `conditions`, in spreadsheet order."""
        query = (
            select(Row.id, Row.row, Row.phone, Row.name, Row.variables)
            .where(Row.campaign_id == campaign_id, Row.state == RowState.PENDING, *conditions)
            .order_by(Row.row)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [
            RowToSend(r.id, Recipient(r.row, r.phone, r.name, r.variables or {})) for r in found
        ]

    def defer_for_daytime(self, deferrals: Sequence[Deferral]) -> None:
        """These pending rows wait for their recipients' daytime: one transaction for all.

        Not an attempt: the row stays pending, its attempts unchanged; its code says why
        it waits (SEND_WINDOW), which a retried row's code never does.
        """
        if not deferrals:
            return
        with self._writer.begin() as conn:
            conn.execute(
                update(Row)
                .where(Row.id == sa.bindparam("row_id"), Row.state == RowState.PENDING)
                .values(
                    daytime_at=sa.bindparam("until"),
                    error_code=SEND_WINDOW,
                    error_message=sa.bindparam("why"),
                    updated_at=utcnow(),
                ),
                [dict(row_id=d.row_id, until=d.until, why=d.why) for d in deferrals],
            )

    def forget_daytime(self, campaign_id: int) -> int:
        """A new run decides every row's window again: pending rows wait no more.

        Returns how many waited (a run without --send-window sends them now).
        """
        with self._writer.begin() as conn:
            forgotten = conn.execute(
                update(Row)
                .where(*_waiting_for_daytime(campaign_id))
                .values(daytime_at=None, error_code=None, error_message=None, updated_at=utcnow())
            )
        return forgotten.rowcount

    def daytime_waits(self, campaign_id: int) -> DaytimeWaits:
        """How many pending rows wait for their recipients' daytime, and the first to go."""
        waiting = _waiting_for_daytime(campaign_id)
        with self.engine.connect() as conn:
            rows, next_at = conn.execute(
                select(func.count(), func.min(Row.daytime_at)).where(*waiting)
            ).one()
            if not rows:
                return DaytimeWaits()
            phone = conn.scalar(
                select(Row.phone).where(*waiting, Row.daytime_at == next_at).limit(1)
            )
        return DaytimeWaits(rows, next_at, phone)

    def claim(self, row_id: int, rules: ClaimRules) -> Claim | None:
        """Commit `sending` before the request leaves, unless `rules` refuse the row.

        None: the row is no longer pending, so another run has taken this campaign.

        The rules (eligibility.py) read the store in this very transaction, and a refused
        row is skipped with their code and reason in it too: so a number suppressed, or a
        message sent by another run, a moment ago counts, and two runs claiming rows to one
        recipient cannot both pass. SQLite lets one writer in at a time (BEGIN IMMEDIATE);
        on PostgreSQL the rules take an advisory lock on the recipient.
        """
        now = time.time()
        pending = update(Row).where(Row.id == row_id, Row.state == RowState.PENDING)
        with self._durable_writer.begin() as conn:
            found = conn.execute(
                select(*CANDIDATE)
                .join(Campaign, Campaign.id == Row.campaign_id)
                .where(Row.id == row_id, Row.state == RowState.PENDING)
            ).first()
            if found is None:
                return None
            refusal = rules(conn, Candidate(**found._mapping), now)
            if refusal is not None:
                # No line in the attempt log: that log is of requests, and none was made.
                conn.execute(
                    pending.values(
                        state=RowState.SKIPPED,
                        error_code=refusal.code,
                        error_message=refusal.reason,
                        updated_at=utcnow(),
                    )
                )
                return Claim(refusal=refusal.reason, code=refusal.code)
            attempt = conn.execute(
                pending.values(
                    state=RowState.SENDING,
                    attempts=Row.attempts + 1,
                    claimed_at=now,
                    updated_at=utcnow(),
                ).returning(Row.attempts)
            ).scalar_one_or_none()
        return None if attempt is None else Claim(attempt=attempt)

    def already_sent(self, keys: Iterable[str], dedupe_window: float) -> AlreadySent:
        """How many of these message keys (one per row) the guard would refuse now, and
        because of which campaigns (for `validate`)."""
        wanted = Counter(keys)
        if dedupe_window <= 0 or not wanted:
            return AlreadySent(window=dedupe_window)
        since = time.time() - dedupe_window
        unique = list(wanted)
        earlier: dict[str, sa.Row] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(unique, GUARD_CHUNK):
                earlier.update(earlier_sends(conn, chunk, since))
        return _already_sent_summary(
            [e for key, e in earlier.items() for _ in range(wanted[key])], dedupe_window
        )

    def skip_already_sent(self, campaign_id: int, dedupe_window: float) -> AlreadySent:
        """Skip, in bulk, the pending rows whose message another campaign already sent.

        `claim` checks every row again as it goes (a run started meanwhile); this pass at
        the start spares a re-run of a big file one durable commit per row, and gives the
        opening summary its count.
        """
        if dedupe_window <= 0:
            return AlreadySent(window=dedupe_window)
        since = time.time() - dedupe_window
        this = self.campaign_name(campaign_id)
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(Row.id, Row.message_key).where(
                    Row.campaign_id == campaign_id,
                    Row.state == RowState.PENDING,
                    Row.message_key.is_not(None),
                )
            ).all()
        found: list[sa.Row] = []
        for chunk in _chunks(pending, GUARD_CHUNK):
            with self._writer.begin() as conn:
                earlier = earlier_sends(conn, [key for _, key in chunk], since, campaign_id)
                refused = [(row_id, earlier[key]) for row_id, key in chunk if key in earlier]
                _skip_pending(
                    conn,
                    ALREADY_SENT,
                    [(row_id, already_sent_text(this, e, dedupe_window)) for row_id, e in refused],
                )
            found += [e for _, e in refused]
        return _already_sent_summary(found, dedupe_window)

    def already_sent_keys(self, keys: Sequence[str], dedupe_window: float) -> set[str]:
        """Those of these message keys whose message the guard would find sent now."""
        if dedupe_window <= 0:
            return set()
        since = time.time() - dedupe_window
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(set(keys)), GUARD_CHUNK):
                found.update(earlier_sends(conn, chunk, since))
        return found

    def campaign_name(self, campaign_id: int) -> str:
        with self.engine.connect() as conn:
            return conn.scalar(select(Campaign.name).where(Campaign.id == campaign_id))

    def unmark_sending(self, row_id: int) -> None:
        """A row marked `sending` whose request never left goes back to pending."""
        with self._writer.begin() as conn:
            conn.execute(
                update(Row)
                .where(Row.id == row_id, Row.state == RowState.SENDING)
                .values(state=RowState.PENDING, attempts=Row.attempts - 1, updated_at=utcnow())
            )

    def record(
        self,
        campaign_id: int,
        row_id: int,
        attempt: int,
        outcome: SendOutcome,
        fate: Fate,
        *,
        state: RowState,
        retry_at: float | None = None,
    ) -> None:
        """Record one request's outcome: the row's new state and a line in the attempt log."""
        values: dict[str, Any] = dict(
            state=state,
            retry_at=retry_at,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            updated_at=utcnow(),
        )
        if fate is Fate.SENT:
            values.update(
                conversation_id=outcome.conversation_id,
                message_id=outcome.message_id,
                whatsapp_message_id=outcome.whatsapp_message_id,
                message_sid=outcome.message_sid,
                api_status=outcome.api_status,
                sent_at=utcnow(),
            )
        with self._writer.begin() as conn:
            conn.execute(update(Row).where(Row.id == row_id).values(**values))
            # Written again after a commit whose answer was lost (a server restarting)?
            # The row's update is the same; the log keeps one line per request.
            if not _logged(conn, row_id, attempt, outcome, fate):
                _log_attempt(conn, campaign_id, row_id, attempt, outcome, fate)

    def requeue(self, campaign_id: int, states: Iterable[RowState], code: str | None = None) -> int:
        """Put rows in `states` (optionally only those with `code`) back to pending."""
        conditions = [Row.campaign_id == campaign_id, Row.state.in_(list(states))]
        if code is not None:
            conditions.append(Row.error_code == code)
        with self._writer.begin() as conn:
            moved = conn.execute(
                update(Row)
                .where(*conditions)
                .values(state=RowState.PENDING, attempts=0, retry_at=None, updated_at=utcnow())
            )
        return moved.rowcount

    # --- the suppression list: numbers an account never messages -----------------------

    def add_suppressions(self, account: str, phones: Iterable[str], reason: str | None) -> int:
        """Put numbers (E.164) on the account's list; how many were new. A number already
        there keeps its first reason and date."""
        wanted = list(dict.fromkeys(phones))
        try:
            return self._add_suppressions(account, wanted, reason)
        except sa.exc.IntegrityError:  # another command added one of them meanwhile
            return self._add_suppressions(account, wanted, reason)  # it sees them now

    def _add_suppressions(self, account: str, phones: list[str], reason: str | None) -> int:
        added = 0
        with self._writer.begin() as conn:
            for chunk in _chunks(phones, GUARD_CHUNK):
                there = set(conn.scalars(_suppressions_of(account, chunk, Suppression.phone)))
                new = [p for p in chunk if p not in there]
                if new:
                    now = utcnow()
                    conn.execute(
                        sa.insert(Suppression),
                        [dict(account=account, phone=p, reason=reason, added_at=now) for p in new],
                    )
                added += len(new)
        return added

    def remove_suppressions(self, account: str, phones: Iterable[str]) -> int:
        """Take numbers off the account's list; how many were on it."""
        removed = 0
        with self._writer.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(phones)), GUARD_CHUNK):
                gone = conn.execute(
                    sa.delete(Suppression).where(
                        Suppression.account == account, Suppression.phone.in_(chunk)
                    )
                )
                removed += gone.rowcount
        return removed

    def suppressions(self, account: str) -> list[SuppressedNumber]:
        """The account's list, oldest first."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(*SUPPRESSED_NUMBER)
                .where(Suppression.account == account)
                .order_by(Suppression.added_at, Suppression.phone)
            ).all()
        return [_record(SuppressedNumber, f) for f in found]

    def suppressed_among(self, account: str, phones: Sequence[str]) -> set[str]:
        """Those of these numbers that are on the account's list (for `validate`)."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(set(phones)), GUARD_CHUNK):
                found.update(conn.scalars(_suppressions_of(account, chunk, Suppression.phone)))
        return found

    def skip_suppressed(self, campaign_id: int) -> int:
        """Skip, in bulk, the pending rows whose number is on the account's list; how many.

        `claim` checks every row again as it goes (a number added during the run); this
        pass at the start spares a big file one durable commit per suppressed row.
        """
        with self._writer.begin() as conn:
            account = conn.scalar(select(Campaign.account).where(Campaign.id == campaign_id))
            found = conn.execute(
                select(Row.id, Suppression.reason, Suppression.added_at)
                .join(
                    Suppression,
                    sa.and_(Suppression.phone == Row.phone, Suppression.account == account),
                )
                .where(Row.campaign_id == campaign_id, Row.state == RowState.PENDING)
            ).all()
            _skip_pending(
                conn,
                SUPPRESSED,
                [(row_id, suppressed_text(reason, added_at)) for row_id, reason, added_at in found],
            )
        return len(found)

    def skip_capped(self, campaign_id: int, messages: int, period: float, why: Reason) -> int:
        """Skip, in bulk, the pending rows whose number already had `messages` messages
        from the account within `period` seconds, in any campaign; how many. `why` gives
        each row's reason from its count (see eligibility.over_cap, which `claim` asks
        again as it goes: this pass spares a big file one durable commit per capped row).
        """
        since = time.time() - period
        earlier = sa.orm.aliased(Row)
        with self._writer.begin() as conn:
            account = conn.scalar(select(Campaign.account).where(Campaign.id == campaign_id))
            found = conn.execute(
                select(Row.id, func.count(earlier.id))
                .join(earlier, earlier.phone == Row.phone)
                .join(Campaign, Campaign.id == earlier.campaign_id)
                .where(
                    Row.campaign_id == campaign_id,
                    Row.state == RowState.PENDING,
                    earlier.claimed_at >= since,
                    earlier.state.in_(MAY_HAVE_SENT),
                    Campaign.account == account,
                )
                .group_by(Row.id)
                .having(func.count(earlier.id) >= messages)
            ).all()
            _skip_pending(conn, FREQUENCY_CAP, [(row_id, why(count)) for row_id, count in found])
        return len(found)

    def recent_sends(self, account: str, phones: Sequence[str], period: float) -> Counter[str]:
        """How many messages each of these numbers may have had from the account within
        `period` seconds, in any campaign (for `validate`; see eligibility.over_cap)."""
        since = time.time() - period
        found: Counter[str] = Counter()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(set(phones)), GUARD_CHUNK):
                counted = conn.execute(
                    select(Row.phone, func.count())
                    .join(Campaign, Campaign.id == Row.campaign_id)
                    .where(*_recent_sends_to(account, chunk, since))
                    .group_by(Row.phone)
                ).all()
                found.update(dict(counted))
        return found

    # --- reading ----------------------------------------------------------------------

    def counts(self, campaign_id: int) -> dict[str, int]:
        """Rows per state, every state named."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(Row.state, func.count())
                .where(Row.campaign_id == campaign_id)
                .group_by(Row.state)
            ).all()
        counts = {state.value: 0 for state in RowState}
        counts.update({state: n for state, n in found})
        return counts

    def error_counts(self, campaign_id: int) -> list[tuple[str, str, int]]:
        """(state, error code, rows) for failed and unknown rows, most common first."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(Row.state, Row.error_code, func.count().label("n"))
                .where(
                    Row.campaign_id == campaign_id,
                    Row.state.in_([RowState.FAILED, RowState.UNKNOWN, RowState.SKIPPED]),
                )
                .group_by(Row.state, Row.error_code)
                .order_by(sa.desc("n"))
            ).all()
        return [(state, code or "", n) for state, code, n in found]

    def recent_rate(self, campaign_id: int, window: float = 60.0) -> float:
        """Requests finished per second over the last `window` seconds."""
        since = datetime.fromtimestamp(time.time() - window, UTC)
        with self.engine.connect() as conn:
            n = conn.scalar(
                select(func.count()).where(Attempt.campaign_id == campaign_id, Attempt.at >= since)
            )
        return (n or 0) / window

    def lease_holder(self, campaign_id: int) -> str | None:
        """The owner of a live lease, if a run is active."""
        with self.engine.connect() as conn:
            owner, expires, now = conn.execute(
                select(Campaign.lease_owner, Campaign.lease_expires_at, self._db_now_sql()).where(
                    Campaign.id == campaign_id
                )
            ).one()
        return owner if owner and (expires or 0) > now else None

    def report_rows(self, campaign_id: int) -> Iterator[StoredRow]:
        """Every row of a campaign in spreadsheet order, for reports."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(*STORED_ROW).where(Row.campaign_id == campaign_id).order_by(Row.row)
            )
            for found in result:
                yield _record(StoredRow, found)

    def sent_times(self, campaign_id: int) -> list[datetime]:
        """When each accepted send of a campaign was recorded, earliest first (for charts).

        SQLite gives naive datetimes (they are UTC); other databases may give aware ones.
        """
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    select(Row.sent_at)
                    .where(Row.campaign_id == campaign_id, Row.sent_at.is_not(None))
                    .order_by(Row.sent_at)
                )
            )

    def left_times(self, campaign_id: int, since: datetime | None = None) -> list[datetime]:
        """When each send request of a campaign was written out, earliest first (for charts);
        with `since`, only those from that moment on (a live chart's last minutes).

        An attempt logged before that time was recorded (an older store) counts at the
        time its accepted answer was recorded; interrupted requests, whose time is unknown,
        do not count.
        """
        left = func.coalesce(Attempt.left_at, Attempt.at)
        recent = () if since is None else (left >= since,)
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    select(left)
                    .where(
                        Attempt.campaign_id == campaign_id,
                        sa.or_(Attempt.left_at.is_not(None), Attempt.fate == Fate.SENT),
                        *recent,
                    )
                    .order_by(left)
                )
            )

    def problem_rows(self, campaign_id: int) -> Iterator[StoredRow]:
        """The failed and unknown rows of a campaign in spreadsheet order: what a person checks."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(*STORED_ROW)
                .where(
                    Row.campaign_id == campaign_id,
                    Row.state.in_([RowState.FAILED, RowState.UNKNOWN]),
                )
                .order_by(Row.row)
            )
            for found in result:
                yield _record(StoredRow, found)

    # --- test sends (`campaign test`), apart from every campaign -------------------------

    def start_test_send(
        self,
        *,
        account: str,
        sender_id: int,
        template_id: int,
        to_phone: str,
        source: str,
        row: int,
    ) -> int:
        """Record a test send as `sending`, durably, before its request leaves; its id."""
        with self._durable_writer.begin() as conn:
            return conn.scalar(
                sa.insert(TestSend)
                .values(
                    at=utcnow(),
                    account=account,
                    sender_id=sender_id,
                    template_id=template_id,
                    to_phone=to_phone,
                    source=source,
                    row=row,
                    status="sending",
                )
                .returning(TestSend.id)
            )

    def finish_test_send(self, test_id: int, status: str, outcome: SendOutcome | None) -> None:
        """What the API answered a test send: sent, failed, or unknown (no answer to trust)."""
        values: dict[str, Any] = {"status": status}
        if outcome is not None:
            values.update(
                http_status=outcome.http_status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                message_sid=outcome.message_sid,
            )
        with self._writer.begin() as conn:
            conn.execute(update(TestSend).where(TestSend.id == test_id).values(**values))

    def test_sends(self, account: str | None = None) -> list[TestSendInfo]:
        """The recorded test sends, oldest first (of one account, if given)."""
        query = select(*_columns(TestSendInfo, TestSend.__table__)).order_by(TestSend.id)
        if account is not None:
            query = query.where(TestSend.account == account)
        with self.engine.connect() as conn:
            return [_record(TestSendInfo, found) for found in conn.execute(query)]


def insert_sender_number(conn: sa.Connection, sender_id: int, phone: str) -> None:
    """Keep (sender, phone) in sender_numbers unless it is there: in the caller's
    transaction; two runs (or deliveries) adding the same number at once keep it once."""
    known = conn.scalar(
        select(SenderNumber.phone).where(
            SenderNumber.sender_id == sender_id, SenderNumber.phone == phone
        )
    )
    if known is not None:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    number = dict(sender_id=sender_id, phone=phone)
    conn.execute(insert(SenderNumber).on_conflict_do_nothing(), number)


def _waiting_for_daytime(campaign_id: int) -> tuple[sa.ColumnElement[bool], ...]:
    """Pending rows deferred to their recipients' daytime (a retry's code replaces it)."""
    return (
        Row.campaign_id == campaign_id,
        Row.state == RowState.PENDING,
        Row.error_code == SEND_WINDOW,
        Row.daytime_at.is_not(None),
    )


def _skip_pending(conn: sa.Connection, code: str, reasons: Sequence[tuple[int, str]]) -> None:
    """Skip these rows, each with its reason, if still pending: one statement for all."""
    if not reasons:
        return
    conn.execute(
        update(Row)
        .where(Row.id == sa.bindparam("row_id"), Row.state == RowState.PENDING)
        .values(
            state=RowState.SKIPPED,
            error_code=code,
            error_message=sa.bindparam("why"),
            updated_at=utcnow(),
        ),
        [dict(row_id=row_id, why=why) for row_id, why in reasons],
    )


def _clock(now: float, before: float, after: float) -> ClockReading:
    """The database read `now` between our `before` and `after`: assume halfway."""
    return ClockReading(offset=now - (before + after) / 2, rtt=after - before)


def _log_attempt(
    conn: sa.Connection,
    campaign_id: int,
    row_id: int,
    number: int,
    outcome: SendOutcome,
    fate: Fate,
) -> None:
    """Append one line to the attempt log, in the caller's transaction."""
    conn.execute(
        sa.insert(Attempt),
        dict(
            campaign_id=campaign_id,
            row_id=row_id,
            number=number,
            fate=fate,
            http_status=outcome.http_status,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            raw_body=outcome.raw_body,
            left_at=_moment(outcome.left_at),
        ),
    )


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@contextlib.contextmanager
def _big_cache(conn: sa.Connection) -> Iterator[None]:
    """SQLite: a page cache that holds the message-key index while a campaign's rows go in.

    Their keys are random, so each row touches some page of that index; with SQLite's
    default 2 MB cache most of those pages would be spilled and read back many times.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    default = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{BIG_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={default}")  # and give the memory back


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    return (items[start : start + size] for start in range(0, len(items), size))


def earlier_sends(
    conn: sa.Connection, keys: Sequence[str], since: float, besides: int | None = None
) -> dict[str, sa.Row]:
    """For each of these message keys, the latest row that may have reached the recipient
    since `since`; `besides` leaves out that campaign's own rows."""
    query = (
        select(Row.message_key, Row.state, Row.claimed_at, Campaign.name)
        .join(Campaign, Campaign.id == Row.campaign_id)
        .where(
            Row.message_key.in_(keys),
            Row.state.in_(MAY_HAVE_SENT),
            Row.claimed_at >= since,
        )
        .order_by(Row.claimed_at)  # the latest of a key comes last, and wins below
    )
    if besides is not None:
        query = query.where(Row.campaign_id != besides)
    return {row.message_key: row for row in conn.execute(query)}


def _already_sent_summary(earlier: Sequence[sa.Row], window: float) -> AlreadySent:
    """How many rows, and which campaigns sent their messages, the most recent first."""
    latest: dict[str, float] = {}
    for e in earlier:
        latest[e.name] = max(latest.get(e.name, 0.0), e.claimed_at)
    names = sorted(latest, key=latest.__getitem__, reverse=True)
    return AlreadySent(len(earlier), tuple(names), window)


def _suppressions_of(account: str, phones: Sequence[str], *columns: Any) -> sa.Select:
    return select(*columns).where(Suppression.account == account, Suppression.phone.in_(phones))


def suppression_of(conn: sa.Connection, account: str, phone: str) -> sa.Row | None:
    """The number's entry (reason, added_at) on the account's list, if it is there."""
    return conn.execute(
        _suppressions_of(account, [phone], Suppression.reason, Suppression.added_at)
    ).first()


def _recent_sends_to(account: str, phones: Sequence[str], since: float) -> list[Any]:
    """Conditions on rows joined with their campaign: a message from the account to one of
    these phones that may have reached it since `since` (the cap counts them)."""
    return [
        Row.phone.in_(phones),
        Row.claimed_at >= since,
        Row.state.in_(MAY_HAVE_SENT),
        Campaign.account == account,
    ]


def recent_sends_to(conn: sa.Connection, account: str, phone: str, since: float) -> int:
    """How many messages from the account may have reached `phone` since `since`."""
    return conn.scalar(
        select(func.count())
        .select_from(Row)
        .join(Campaign, Campaign.id == Row.campaign_id)
        .where(*_recent_sends_to(account, [phone], since))
    )


def suppressed_text(reason: str | None, added_at: datetime) -> str:
    """Why a row was skipped SUPPRESSED: when the number was added and why."""
    when = _utc(added_at).strftime("%Y-%m-%d %H:%M:%S UTC")
    why = f" ({reason})" if reason else ""
    return (
        f"the number is on this account's suppression list since {when}{why}; it is never "
        "messaged (campaign suppress remove takes it off)"
    )


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes (they are UTC); other databases give aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


EARLIER_STATE_WORDS = {
    RowState.SENT: "sent",
    RowState.UNKNOWN: "possibly sent (its outcome is unknown)",
    RowState.SENDING: "being sent",
}


def already_sent_text(this: str, earlier: sa.Row, window: float) -> str:
    """Why a row of campaign `this` was refused: the earlier campaign and when, then how
    to send it anyway."""
    when = datetime.fromtimestamp(earlier.claimed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"the same message (phone, template, variables) was {EARLIER_STATE_WORDS[earlier.state]} "
        f'by campaign "{earlier.name}" at {when}, within the last {duration_text(window)}; '
        f"to send it anyway: campaign retry {shlex.quote(this)} --already-sent "
        "(--dedupe-window 0 turns this check off)"
    )


def _logged(
    conn: sa.Connection, row_id: int, number: int, outcome: SendOutcome, fate: Fate
) -> bool:
    """Whether the attempt log already has this line (an earlier try of this very write)."""
    found = conn.scalar(
        select(Attempt.id)
        .where(
            Attempt.row_id == row_id,
            Attempt.number == number,
            Attempt.fate == fate,
            Attempt.error_code.is_not_distinct_from(outcome.error_code),
        )
        .limit(1)
    )
    return found is not None


def _unavailable(context: sa.engine.ExceptionContext) -> StoreUnavailable | None:
    """The one place that decides which database errors mean "try again later".

    SQLAlchemy calls it for every database error (a connection refused, a statement, a
    commit); what it returns is raised instead. A dropped connection is still
    invalidated, and pool_pre_ping replaces the others on their next checkout.
    """
    if context.is_pre_ping:  # a pooled connection found dead: SQLAlchemy opens a new one
        return None
    error = context.original_exception
    if context.dialect.name == "sqlite":
        name = getattr(error, "sqlite_errorname", "")
        transient = name.startswith(SQLITE_TRANSIENT)
    else:  # PostgreSQL and others: connection lost or refused, server restarting,
        # serialization failure, deadlock, disk full are all OperationalErrors
        transient = isinstance(
            context.sqlalchemy_exception, sa.exc.OperationalError | sa.exc.InterfaceError
        )
    if not (transient or context.is_disconnect):
        return None
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StoreUnavailable(f"the store is unavailable ({reason}); try again later", reason=reason)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it in an empty database)."""
    from alembic import command

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # two runs opening a new store at once
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7274727)"))
        command.upgrade(alembic_config(conn), "head")


def alembic_config(conn: sa.Connection) -> AlembicConfig:
    """Alembic's settings for the migrations shipped in campaign.migrations, on `conn`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("campaign.migrations")))
    config.attributes["connection"] = conn
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves: see _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # see _sqlite_begin for the durable ones
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    options = conn.get_execution_options()
    # In WAL mode a NORMAL commit survives a crash of the process but not of the machine.
    # That is enough for every write but `sending`: losing it in a power cut would let a
    # row that may have been sent be sent again, so that one commit waits for the disk.
    synchronous = "FULL" if options.get("durable") else "NORMAL"
    conn.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("begin_immediate") else "BEGIN")


def _create_private_file(path: Path) -> None:
    """A new store file is readable and writable by its owner only."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from None


def _dead_local_owner(owner: str | None) -> str | None:
    """The owner string if it names a process on this host that no longer exists."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return owner
    except PermissionError:
        return None  # alive, another user's
    return None


def _safe_url(url: str) -> str:
    """The URL as it may be shown: its password and secret-named query values masked.

    Works on the text, so a URL that does not parse is masked all the same.
    """
    url = URL_PASSWORD.sub(rf"\g<head>{MASK}@", url, count=1)
    return URL_SECRET_PARAM.sub(rf"\g<head>{MASK}", url)


def _url_secrets(url: str) -> list[str]:
    """The secret values of a URL, as written and decoded, to redact from error texts."""
    found = [m["secret"] for m in URL_PASSWORD.finditer(url)]
    found += [m["secret"] for m in URL_SECRET_PARAM.finditer(url)]
    return [form for secret in found for form in (secret, unquote(secret), unquote_plus(secret))]


def _cannot_open(url: str, exc: BaseException) -> str:
    """One line: why the store at `url` cannot be opened, without any secret of the URL."""
    reason = " ".join(Redactor(_url_secrets(url))(str(exc)).split())
    return f"cannot open the store {_safe_url(url)}: {reason}"


# Both kinds of row carry the same keys: an executemany takes its columns from the first.
def _pending_row(r: Recipient, message_key: str) -> dict[str, Any]:
    return dict(
        row=r.row,
        phone=r.phone,
        name=r.name,
        variables=r.variables,
        message_key=message_key,
        state=RowState.PENDING,
        error_code=None,
        error_message=None,
    )


def _skipped_row(s: SkippedRow) -> dict[str, Any]:
    return dict(
        row=s.row,
        phone=s.phone,
        name=s.name,
        variables={},
        message_key=None,
        state=RowState.SKIPPED,
        error_code=s.code,
        error_message=s.reason,
    )
