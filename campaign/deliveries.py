"""Delivery truth: a signed `message_status` event from the autocalls webhook -> its row.

`record_event` keeps every event the webhook received (its raw JSON, when, the row it
matched or none) and applies it, in one durable transaction: the webhook answers 2xx
only after it. Events come more than once and out of order, so applying one is
idempotent (the same body twice is kept once and changes nothing) and never moves a row
backwards (`MAY_FOLLOW`).

Which row an event names: the row whose `message_sid` is the event's, else the row whose
`whatsapp_message_id` is. An event naming no row of ours is kept, unmatched: a later
`catch_up` applies it if such a row appears (its answer was recorded after the event
came, or it was resolved).

Resolving an `unknown` row (a request whose answer was lost): an event that names no row
resolves one when all of these hold, and the row becomes `sent` with the event's ids and
`resolved_by = "webhook"`:
- its status is one of STATUSES and it carries a message_sid or whatsapp_message_id;
- its `to` (E.164, "whatsapp:" prefix dropped) is the row's phone, and the row is `unknown`;
- the row's campaign sent from the event's sender: the event's `sender_id` if it has one,
  else a sender whose phone number is the event's `from`. Numbers are learned: a run
  records its sender's phone number (from the account) when it starts, and every event
  that matches a row by its ids teaches us that the row's sender sends from that
  event's `from` (`sender_numbers`). An event with neither resolves nothing;
- if the event names a `template_id`, the campaign sent that template;
- the row's last attempt (`claimed_at`, when it was marked `sending`) was at most
  RESOLVE_WINDOW before the event's time, and at most CLOCK_SLACK after it;
- it is unambiguous: exactly one row fits, and no other kept event to that phone in the
  window names another message. Otherwise the event is kept, marked ambiguous.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select, update

from campaign.model import RowState, whole_number
from campaign.store import (
    Campaign,
    DeliveryEvent,
    Row,
    SenderNumber,
    Store,
    insert_sender_number,
    utcnow,
)

MESSAGE_STATUS = "message_status"
STATUSES = ("sent", "delivered", "read", "failed", "undelivered")
FAILED = frozenset({"failed", "undelivered"})

# Which delivery status may replace which: a message moves forward only. `failed` and
# `undelivered` are final; a late `delivered` cannot undo `read`, nor a late `sent`
# anything. The same status again changes nothing (a replay).
MAY_FOLLOW: dict[str | None, frozenset[str]] = {
    None: frozenset(STATUSES),
    "sent": frozenset({"delivered", "read", "failed", "undelivered"}),
    "delivered": frozenset({"read"}),
    "read": frozenset(),
    "failed": frozenset(),
    "undelivered": frozenset(),
}

RESOLVE_WINDOW = 600.0  # seconds: an event this long after a row's last attempt may resolve it
CLOCK_SLACK = 60.0  # seconds: ...or this long before it (the API's clock is not ours)
WEBHOOK = "webhook"  # rows.resolved_by of a row the webhook resolved
CATCH_UP_WINDOW = 86400.0  # seconds: how far back catch_up looks for events naming a row

# The event's time, by the first of these fields it has ({status}: e.g. delivered_at).
TIME_FIELDS = ("{status}_at", "timestamp", "updated_at", "occurred_at", "created_at")
E164 = re.compile(r"\+[1-9]\d{5,14}")


class Outcome(enum.StrEnum):
    """What one received event did (delivery_events.outcome)."""

    APPLIED = "applied"  # the row's delivery status moved forward
    NO_CHANGE = "no_change"  # it names a row, but brings nothing newer
    RESOLVED = "resolved"  # an unknown row became sent with the event's ids
    UNMATCHED = "unmatched"  # it names no row of ours (yet): kept
    AMBIGUOUS = "ambiguous"  # more than one unknown row or message could be it: kept
    IGNORED = "ignored"  # not a message_status event, or not JSON: kept, never applied


@dataclass(frozen=True)
class StatusEvent:
    """The fields of a message_status event that we use, read leniently."""

    status: str | None
    message_sid: str | None
    whatsapp_message_id: int | None
    conversation_id: int | None
    to: str | None  # E.164 when it could be read so
    sender: str | None  # the event's `from`, the same way
    sender_id: int | None
    template_id: int | None
    at: datetime | None  # the event's own time, if it gave one
    error_code: str | None
    error_message: str | None

    @property
    def message(self) -> str | int | None:
        """What names the message: its SID, else its WhatsApp message id."""
        return self.message_sid or self.whatsapp_message_id


@dataclass(frozen=True)
class Received:
    """What `record_event` did with one delivery: `replay` means kept before."""

    event_id: int
    outcome: Outcome
    row_id: int | None
    replay: bool = False


@dataclass(frozen=True)
class _Target:
    id: int
    delivery_status: str | None
    sender_id: int


# --- reading an event -----------------------------------------------------------------


def parse(body: Any) -> StatusEvent | None:
    """The message_status event in a decoded JSON body; None for anything else."""
    if not isinstance(body, dict) or body.get("event") != MESSAGE_STATUS:
        return None
    status = _text(body.get("status"), 20)
    status = status.lower() if status else None
    return StatusEvent(
        status=status,
        message_sid=_text(body.get("message_sid"), 64),
        whatsapp_message_id=whole_number(body.get("whatsapp_message_id")),
        conversation_id=whole_number(body.get("conversation_id")),
        to=phone_of(body.get("to")),
        sender=phone_of(body.get("from")),
        sender_id=whole_number(body.get("sender_id")),
        template_id=whole_number(body.get("template_id")),
        at=event_time(body, status),
        error_code=_text(body.get("error_code"), 80),
        error_message=_text(body.get("error_message")),
    )


def phone_of(value: Any) -> str | None:
    """A phone as the store keeps it (E.164): "whatsapp:+1 415…" and "1415…" both read."""
    text = _text(value)
    if text is None:
        return None
    text = re.sub(r"[\s().-]", "", text.removeprefix("whatsapp:"))
    if text.isdigit():
        text = "+" + text
    return text if E164.fullmatch(text) else None


def event_time(body: dict[str, Any], status: str | None) -> datetime | None:
    """The event's time: ISO 8601 text, or epoch seconds or milliseconds; None if none."""
    nested = body.get("timestamps")
    places = [body] + ([nested] if isinstance(nested, dict) else [])
    names = [name.format(status=status) for name in TIME_FIELDS] + [status or "", "status_at"]
    for place in places:
        for name in names:
            found = _moment(place.get(name))
            if found is not None:
                return found
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value  # milliseconds are that big
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _text(value: Any, longest: int | None = None) -> str | None:
    """A value as stripped text; None if empty, not a scalar, or longer than its column."""
    if value is None or isinstance(value, dict | list) or str(value).strip() == "":
        return None
    text = str(value).strip()
    return None if longest is not None and len(text) > longest else text


# --- recording and applying -----------------------------------------------------------


def record_event(store: Store, raw: bytes, received_at: datetime | None = None) -> Received:
    """Keep one delivery of the webhook and apply it; durable once this returns.

    The same body delivered again is not kept twice and changes nothing. Raises
    StoreUnavailable if the store cannot take it now (the webhook answers 503: the
    sender tries again later).
    """
    received = received_at or utcnow()
    digest = hashlib.sha256(raw).hexdigest()
    body = _json(raw)
    event = parse(body)
    try:
        with store.transaction(durable=True) as conn:
            earlier = _kept(conn, digest)
            if earlier is not None:
                return earlier
            outcome, row_id = _apply(conn, event, received) if event else (Outcome.IGNORED, None)
            kept = dict(digest=digest, received_at=received, row_id=row_id, outcome=outcome)
            event_id = conn.execute(
                sa.insert(DeliveryEvent).returning(DeliveryEvent.id),
                kept | _event_columns(raw, body, event),
            ).scalar_one()
    except sa.exc.IntegrityError:  # the same body, recorded by a concurrent delivery
        with store.engine.connect() as conn:
            earlier = _kept(conn, digest)
        if earlier is None:
            raise
        return earlier
    return Received(event_id, outcome, row_id)


def _event_columns(raw: bytes, body: dict[str, Any], event: StatusEvent | None) -> dict:
    """What delivery_events keeps of a body besides its digest, time and outcome."""
    text = raw.decode("utf-8", "replace").replace("\x00", "\\u0000")  # PostgreSQL: no NUL
    if event is None:
        return dict(raw=text, event=_text(body.get("event"), 40))
    return dict(
        raw=text,
        event=MESSAGE_STATUS,
        status=event.status,
        message_sid=event.message_sid,
        whatsapp_message_id=event.whatsapp_message_id,
        to_phone=event.to,
    )


def _json(raw: bytes) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:  # also bad UTF-8
        return {}
    return body if isinstance(body, dict) else {}


def _kept(conn: sa.Connection, digest: str) -> Received | None:
    found = conn.execute(
        select(DeliveryEvent.id, DeliveryEvent.outcome, DeliveryEvent.row_id).where(
            DeliveryEvent.digest == digest
        )
    ).first()
    return None if found is None else Received(found.id, Outcome(found.outcome), found.row_id, True)


def _apply(
    conn: sa.Connection, event: StatusEvent, received: datetime
) -> tuple[Outcome, int | None]:
    """Apply one event in the caller's transaction: (what it did, the row it matched)."""
    target = _named_row(conn, event)
    if target is None:
        return _resolve_unknown(conn, event, received)
    _learn_sender(conn, target.sender_id, event.sender)
    return _set_delivery(conn, target, event, received), target.id


def _named_row(conn: sa.Connection, event: StatusEvent) -> _Target | None:
    """The row whose message_sid, else whatsapp_message_id, is the event's."""
    columns = select(Row.id, Row.delivery_status, Campaign.sender_id).join(
        Campaign, Campaign.id == Row.campaign_id
    )
    for column, value in (
        (Row.message_sid, event.message_sid),
        (Row.whatsapp_message_id, event.whatsapp_message_id),
    ):
        if value is not None:
            found = conn.execute(columns.where(column == value).order_by(Row.id).limit(1)).first()
            if found is not None:
                return _Target(*found)
    return None


def _set_delivery(
    conn: sa.Connection, target: _Target, event: StatusEvent, received: datetime
) -> Outcome:
    """Move the row's delivery status forward, if the event's status may follow it."""
    if event.status not in MAY_FOLLOW.get(target.delivery_status, frozenset()):
        return Outcome.NO_CHANGE
    failed = event.status in FAILED
    moved = conn.execute(
        update(Row)
        .where(
            Row.id == target.id, Row.delivery_status.is_not_distinct_from(target.delivery_status)
        )
        .values(
            delivery_status=event.status,
            delivery_updated_at=event.at or received,
            delivery_error_code=event.error_code if failed else None,
            delivery_error_message=event.error_message if failed else None,
        )
    )
    return Outcome.APPLIED if moved.rowcount == 1 else Outcome.NO_CHANGE


def _resolve_unknown(
    conn: sa.Connection, event: StatusEvent, received: datetime
) -> tuple[Outcome, int | None]:
    """An event naming no row may resolve an `unknown` row (the rules: module docstring)."""
    campaigns = _campaigns_sending_as(event)
    if event.to is None or event.status not in STATUSES or not event.message or campaigns is None:
        return Outcome.UNMATCHED, None
    at = (event.at or received).timestamp()
    candidates = conn.scalars(
        select(Row.id).where(
            Row.campaign_id.in_(campaigns),
            Row.state == RowState.UNKNOWN,
            Row.phone == event.to,
            Row.claimed_at.between(at - RESOLVE_WINDOW, at + CLOCK_SLACK),
        )
    ).all()
    if not candidates:
        return Outcome.UNMATCHED, None
    if len(candidates) > 1 or _another_message(conn, event, received):
        return Outcome.AMBIGUOUS, None
    row_id = candidates[0]
    now = utcnow()
    resolved = conn.execute(
        update(Row)
        .where(Row.id == row_id, Row.state == RowState.UNKNOWN)
        .values(
            state=RowState.SENT,
            message_sid=event.message_sid,
            whatsapp_message_id=event.whatsapp_message_id,
            conversation_id=event.conversation_id,
            resolved_by=WEBHOOK,
            error_code=None,
            error_message=None,
            sent_at=now,
            updated_at=now,
        )
    )
    if resolved.rowcount != 1:
        return Outcome.UNMATCHED, None
    sender_id = conn.scalar(
        select(Campaign.sender_id).join(Row, Row.campaign_id == Campaign.id).where(Row.id == row_id)
    )
    _set_delivery(conn, _Target(row_id, None, sender_id), event, received)
    return Outcome.RESOLVED, row_id


def _campaigns_sending_as(event: StatusEvent) -> sa.Select | None:
    """The campaigns that sent from the event's sender (and template, if it names one);
    None when the event does not say which sender it came from."""
    query = select(Campaign.id)
    if event.sender_id is not None:
        query = query.where(Campaign.sender_id == event.sender_id)
    elif event.sender is not None:
        learned = select(SenderNumber.sender_id).where(SenderNumber.phone == event.sender)
        query = query.where(Campaign.sender_id.in_(learned))
    else:
        return None
    if event.template_id is not None:
        query = query.where(Campaign.template_id == event.template_id)
    return query


def _another_message(conn: sa.Connection, event: StatusEvent, received: datetime) -> bool:
    """Whether a kept, unmatched event to the same phone around then names another message."""
    window = timedelta(seconds=RESOLVE_WINDOW + CLOCK_SLACK)
    others = conn.execute(
        select(DeliveryEvent.message_sid, DeliveryEvent.whatsapp_message_id).where(
            DeliveryEvent.to_phone == event.to,
            DeliveryEvent.row_id.is_(None),
            DeliveryEvent.received_at.between(received - window, received + window),
        )
    ).all()
    return any((sid or wamid) not in (None, event.message) for sid, wamid in others)


def _learn_sender(conn: sa.Connection, sender_id: int, phone: str | None) -> None:
    """Remember that this sender sends from `phone` (the `from` of its events)."""
    if phone is not None:
        insert_sender_number(conn, sender_id, phone)


# --- kept events that now fit a row ---------------------------------------------------


def catch_up(store: Store, campaign_id: int) -> int:
    """Apply kept events that now name a row (of any campaign), or fit an unknown row of
    this campaign.

    An event can come before its row's answer is recorded (the row still `sending`), or
    before its sender's number was learned. Events naming a row by its ids are looked for
    among those of the last CATCH_UP_WINDOW (they come seconds before the answer); events
    that may resolve an unknown row are found from the campaign's unknown rows, however
    old. Returns how many events were applied now.
    """
    since = utcnow() - timedelta(seconds=CATCH_UP_WINDOW)
    with store.engine.connect() as conn:
        waiting = sorted(set(conn.scalars(_fitting_events(campaign_id, since))))
    applied = 0
    for event_id in waiting:
        with store.transaction() as conn:
            applied += _apply_kept(conn, event_id)
    return applied


def _fitting_events(campaign_id: int, since: datetime) -> sa.CompoundSelect:
    """Kept events that may now fit a row of the campaign (the cheap part of the test)."""
    kept = (DeliveryEvent.row_id.is_(None), DeliveryEvent.event == MESSAGE_STATUS)
    mine = Row.campaign_id == campaign_id
    # From the recent kept events, each looked up by its ids: a big campaign's rows are
    # not all read. An event naming a row of another campaign is applied all the same.
    names_a_row = sa.or_(
        select(Row.id).where(Row.message_sid == DeliveryEvent.message_sid).exists(),
        select(Row.id).where(Row.whatsapp_message_id == DeliveryEvent.whatsapp_message_id).exists(),
    )
    by_ids = select(DeliveryEvent.id).where(*kept, DeliveryEvent.received_at >= since, names_a_row)
    # From the campaign's unknown rows: few.
    by_phone = (
        select(DeliveryEvent.id)
        .join(Row, Row.phone == DeliveryEvent.to_phone)
        .where(*kept, mine, Row.state == RowState.UNKNOWN)
    )
    return sa.union(by_ids, by_phone)


def _apply_kept(conn: sa.Connection, event_id: int) -> int:
    """Apply one kept event again; 1 if it matched a row now."""
    raw, received, row_id = conn.execute(
        select(DeliveryEvent.raw, DeliveryEvent.received_at, DeliveryEvent.row_id).where(
            DeliveryEvent.id == event_id
        )
    ).one()
    event = parse(_json(raw.encode()))
    if row_id is not None or event is None:
        return 0
    outcome, row_id = _apply(conn, event, _utc(received))
    if row_id is None:
        return 0
    conn.execute(
        update(DeliveryEvent)
        .where(DeliveryEvent.id == event_id)
        .values(row_id=row_id, outcome=outcome)
    )
    return 1


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store wrote them in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- what reports show ----------------------------------------------------------------


def delivery_counts(store: Store, campaign_id: int) -> dict[str, int]:
    """The campaign's sent rows by what the webhook said: delivered (not read yet), read,
    failed after sending (failed or undelivered), and no news yet (nothing, or only
    "sent"); the four add up to the sent rows. `resolved` counts unknown rows the
    webhook showed were sent."""
    with store.engine.connect() as conn:
        found = conn.execute(
            select(Row.delivery_status, Row.resolved_by, func.count())
            .where(Row.campaign_id == campaign_id, Row.state == RowState.SENT)
            .group_by(Row.delivery_status, Row.resolved_by)
        ).all()
    counts = dict.fromkeys(("delivered", "read", "failed", "no_news", "resolved"), 0)
    for status, resolved_by, n in found:
        if status in ("delivered", "read"):
            counts[status] += n
        elif status in FAILED:
            counts["failed"] += n
        else:
            counts["no_news"] += n
        if resolved_by == WEBHOOK:
            counts["resolved"] += n
    return counts
