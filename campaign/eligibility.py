"""Who may be messaged now: decided when a row is claimed, in the claim's own transaction.

Each rule is a small function of the row being claimed: it reads the store on the
claim's connection and returns a Refusal (its code and a sentence for the report) or
None. `RULES` lists them, in the order they are asked; the first refusal wins and the
row is skipped with it (Store.claim). `Eligibility` holds a run's settings of the rules
and is the one place that applies them.

    SUPPRESSED     the number is on the account's suppression list (`campaign suppress`)
    ALREADY_SENT   the same message (account, sender, template, phone, variables) may have
                   reached the recipient within --dedupe-window, in any campaign
    FREQUENCY_CAP  the recipient may have had N messages from the account within PERIOD,
                   in any campaign (--max-per-recipient N/PERIOD)

Because the count and the claim are one transaction, two runs claiming rows to one
recipient cannot both pass: SQLite lets one writer in at a time (BEGIN IMMEDIATE), and
on PostgreSQL the claim first takes an advisory lock on the account and phone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from campaign.config import duration_flag, duration_text, parse_duration
from campaign.errors import UsageError
from campaign.model import ALREADY_SENT, FREQUENCY_CAP, SUPPRESSED
from campaign.store import (
    DEFAULT_DEDUPE_WINDOW,
    Candidate,
    Refusal,
    already_sent_text,
    earlier_sends,
    recent_sends_to,
    suppressed_text,
    suppression_of,
)

CAP_FORM = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")


@dataclass(frozen=True)
class Cap:
    """At most `messages` messages to one recipient within `period` seconds."""

    messages: int
    period: float

    def __str__(self) -> str:
        return f"{self.messages}/{duration_flag(self.period)}"


def parse_cap(text: str) -> Cap:
    """A cap from `N/PERIOD`, e.g. 1/24h or 3/7d (PERIOD as --dedupe-window takes it)."""
    option = "--max-per-recipient"
    match = CAP_FORM.fullmatch(str(text))
    if match is None or int(match[1]) < 1:
        raise UsageError(
            f"{option} must be N/PERIOD with N at least 1, such as 1/24h or 3/7d, not {text!r}"
        )
    period = parse_duration(match[2], option)
    if period <= 0:
        raise UsageError(f"{option} needs a period longer than 0, such as 24h or 7d")
    return Cap(int(match[1]), period)


@dataclass(frozen=True)
class Eligibility:
    """A run's rules: the guard's window (0: off) and the frequency cap (None: none)."""

    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    cap: Cap | None = None

    def __call__(self, conn: sa.Connection, row: Candidate, now: float) -> Refusal | None:
        """The first rule that refuses the row, in the claim's transaction; None: send it."""
        if row.account is None:  # stored before accounts were recorded: nothing to compare
            return None
        counts_others = self.dedupe_window > 0 or self.cap is not None
        if counts_others and conn.dialect.name == "postgresql":  # held until the claim ends
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(row)})
        for rule in RULES:
            refusal = rule(self, conn, row, now)
            if refusal is not None:
                return refusal
        return None


def suppressed(
    rules: Eligibility, conn: sa.Connection, row: Candidate, now: float
) -> Refusal | None:
    """SUPPRESSED: the number is on the account's suppression list."""
    entry = suppression_of(conn, row.account, row.phone)
    if entry is None:
        return None
    return Refusal(SUPPRESSED, suppressed_text(entry.reason, entry.added_at))


def already_sent(
    rules: Eligibility, conn: sa.Connection, row: Candidate, now: float
) -> Refusal | None:
    """ALREADY_SENT: the same message may have reached the recipient within the window."""
    if not row.message_key or rules.dedupe_window <= 0:
        return None
    # The row itself is pending, so never among the rows that may have sent.
    earlier = earlier_sends(conn, [row.message_key], now - rules.dedupe_window)
    found = earlier.get(row.message_key)
    if found is None:
        return None
    return Refusal(ALREADY_SENT, already_sent_text(row.campaign, found, rules.dedupe_window))


def over_cap(rules: Eligibility, conn: sa.Connection, row: Candidate, now: float) -> Refusal | None:
    """FREQUENCY_CAP: the recipient may have had as many messages as the cap allows."""
    cap = rules.cap
    if cap is None:
        return None
    count = recent_sends_to(conn, row.account, row.phone, now - cap.period)
    if count < cap.messages:
        return None
    return Refusal(FREQUENCY_CAP, cap_text(count, cap))


Rule = Callable[[Eligibility, sa.Connection, Candidate, float], Refusal | None]
RULES: tuple[Rule, ...] = (suppressed, already_sent, over_cap)  # asked in this order


def cap_text(count: int, cap: Cap) -> str:
    """Why a row was skipped FREQUENCY_CAP: the count, the period and the cap."""
    period = duration_text(cap.period)
    messages = "1 message" if count == 1 else f"{count} messages"
    return (
        f"{messages} to this number (sent, possibly sent or being sent, in any campaign of "
        f"this account) in the last {period}: the cap is {cap.messages} per {period} "
        f"(--max-per-recipient {cap})"
    )


def _lock_id(row: Candidate) -> int:
    """A signed 64-bit number naming the recipient, for pg_advisory_xact_lock: every
    claim to one phone of one account waits for the others (the same message key has the
    same account and phone, so the guard is covered too)."""
    digest = hashlib.sha256(f"{row.account}|{row.phone}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
