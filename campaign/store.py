"""The store: SQLAlchemy models and the few queries the rest needs.

Every state change of a row is one call here, committed before the action it describes.
SQLite by default (WAL; the commit of `sending` waits for the disk, so it survives a
power cut), any SQLAlchemy URL otherwise. Alembic migrations run on open.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaign import outcomes
from campaign.errors import StoreError
from campaign.model import Fate, Recipient, RowState, SendOutcome, SkippedRow

DEFAULT_DB = "campaigns.db"
INSERT_CHUNK = 5000


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
    sender_id: Mapped[int]
    template_id: Mapped[int]
    total_rows: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20), default="ready")
    halt_reason: Mapped[str | None] = mapped_column(sa.Text)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[float | None]  # epoch seconds
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Row(Base):
    """One input row: its recipient, its state, and what the API said."""

    __tablename__ = "rows"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "row"),
        sa.Index("ix_rows_campaign_state_row", "campaign_id", "state", "row"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"))
    row: Mapped[int]  # the spreadsheet's row number
    phone: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(1000))
    variables: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(sa.String(10))
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[float | None]  # epoch seconds; a retried row waits until then
    conversation_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    whatsapp_message_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    message_sid: Mapped[str | None] = mapped_column(sa.String(64))
    api_status: Mapped[str | None] = mapped_column(sa.String(40))
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


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


def database_url(db: str | None) -> str:
    """A SQLAlchemy URL from a path or a URL; a bare path is a SQLite file."""
    db = db or os.environ.get("CAMPAIGN_DB") or DEFAULT_DB
    return db if "://" in db else f"sqlite:///{Path(db).expanduser()}"


def lease_owner_id() -> str:
    """host:pid:nonce — the nonce tells this run from an earlier one that had the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


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
        """Open (creating and migrating as needed) the store at a path or URL."""
        url = database_url(db)
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            _create_private_file(Path(url.removeprefix("sqlite:///")))
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot open the store {_safe_url(url)}: {exc}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        # Build the ORM's mappers now: lazily, the first row recorded would stall the event
        # loop for tens of milliseconds while a request is leaving.
        sa.orm.configure_mappers()
        try:
            migrate(engine.execution_options(begin_immediate=True))
        except sa.exc.DatabaseError as exc:  # also "file is not a database"
            raise StoreError(f"cannot open the store {_safe_url(url)}: {exc.orig}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- campaigns --------------------------------------------------------------------

    def find_campaign(self, name: str) -> CampaignInfo | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(Campaign.__table__).where(Campaign.name == name)).first()
        return _campaign_info(found) if found else None

    def campaigns(self) -> list[CampaignInfo]:
        with self.engine.connect() as conn:
            found = conn.execute(select(Campaign.__table__).order_by(Campaign.id)).all()
        return [_campaign_info(c) for c in found]

    def create_campaign(
        self,
        *,
        name: str,
        fingerprint: str,
        source: str,
        sender_id: int,
        template_id: int,
        recipients: Iterable[Recipient],
        skipped: Iterable[SkippedRow] = (),
        lease: tuple[str, float] | None = None,
    ) -> CampaignInfo:
        """Store a campaign and every one of its rows in one transaction.

        `lease` (owner, seconds): create it already held by that run, so that no other
        run can start it between its creation and the first send.
        """
        recipients, skipped = list(recipients), list(skipped)
        rows = heapq.merge(
            map(_pending_row, recipients), map(_skipped_row, skipped), key=itemgetter("row")
        )
        with self._writer.begin() as conn:
            campaign_id = conn.execute(
                sa.insert(Campaign)
                .values(
                    name=name,
                    fingerprint=fingerprint,
                    source=source,
                    sender_id=sender_id,
                    template_id=template_id,
                    total_rows=len(recipients) + len(skipped),
                    lease_owner=lease[0] if lease else None,
                    lease_expires_at=self._db_now() + lease[1] if lease else None,
                )
                .returning(Campaign.id)
            ).scalar_one()
            while chunk := list(islice(rows, INSERT_CHUNK)):
                for row in chunk:
                    row["campaign_id"] = campaign_id
                conn.execute(sa.insert(Row), chunk)
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
        self._ensure_account(account)
        with self._pace_writer() as conn:
            paused_until, guard = conn.execute(
                select(AccountPace.paused_until, AccountPace.guard)
                .where(AccountPace.account == account)
                .with_for_update()
            ).one()
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
        self._ensure_account(account)
        with self._pace_writer() as conn:
            paused_until, guard = conn.execute(
                select(AccountPace.paused_until, AccountPace.guard)
                .where(AccountPace.account == account)
                .with_for_update()
            ).one()
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
        """Pending rows whose retry time has come, in spreadsheet order."""
        now = time.time()
        query = (
            select(Row.id, Row.row, Row.phone, Row.name, Row.variables)
            .where(
                Row.campaign_id == campaign_id,
                Row.state == RowState.PENDING,
                sa.or_(Row.retry_at.is_(None), Row.retry_at <= now),
            )
            .order_by(Row.row)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [
            RowToSend(r.id, Recipient(r.row, r.phone, r.name, r.variables or {})) for r in found
        ]

    def next_retry_at(self, campaign_id: int) -> float | None:
        """When the earliest waiting pending row becomes due; None when nothing is pending."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(func.count(), func.min(Row.retry_at)).where(
                    Row.campaign_id == campaign_id, Row.state == RowState.PENDING
                )
            ).one()
        count, earliest = pending
        if not count:
            return None
        return earliest or time.time()

    def mark_sending(self, row_id: int) -> int:
        """Commit `sending` before the request leaves; returns this attempt's number."""
        with self._durable_writer.begin() as conn:
            return conn.execute(
                update(Row)
                .where(Row.id == row_id, Row.state == RowState.PENDING)
                .values(state=RowState.SENDING, attempts=Row.attempts + 1, updated_at=utcnow())
                .returning(Row.attempts)
            ).scalar_one()

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

    def report_rows(self, campaign_id: int) -> Iterator[sa.Row]:
        """Every row of a campaign in spreadsheet order, for reports."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(Row.__table__).where(Row.campaign_id == campaign_id).order_by(Row.row)
            )
            yield from result

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

    def problem_rows(self, campaign_id: int) -> Iterator[sa.Row]:
        """The failed and unknown rows of a campaign in spreadsheet order: what a person checks."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(Row.__table__)
                .where(
                    Row.campaign_id == campaign_id,
                    Row.state.in_([RowState.FAILED, RowState.UNKNOWN]),
                )
                .order_by(Row.row)
            )
            yield from result


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
        ),
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it in an empty database)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("campaign.migrations")))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # two runs opening a new store at once
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7274727)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


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
    """The URL without its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _campaign_info(c: sa.Row) -> CampaignInfo:
    return CampaignInfo(
        id=c.id,
        name=c.name,
        fingerprint=c.fingerprint,
        source=c.source,
        sender_id=c.sender_id,
        template_id=c.template_id,
        total_rows=c.total_rows,
        status=c.status,
        halt_reason=c.halt_reason,
        created_at=c.created_at,
    )


# Both kinds of row carry the same keys: an executemany takes its columns from the first.
def _pending_row(r: Recipient) -> dict[str, Any]:
    return dict(
        row=r.row,
        phone=r.phone,
        name=r.name,
        variables=r.variables,
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
        state=RowState.SKIPPED,
        error_code=s.code,
        error_message=s.reason,
    )
