"""Plain data shared by every layer: no I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class RowState(enum.StrEnum):
    """Where one input row stands. `sending` is committed before its request leaves."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


# The codes of rows skipped when claimed (see eligibility.py): the same message went out
# lately; the number is on the account's suppression list; the recipient had enough
# messages lately (--max-per-recipient).
ALREADY_SENT = "ALREADY_SENT"
# The code of a pending row that waits for its recipient's daytime (see daytime.py).
SEND_WINDOW = "SEND_WINDOW"
SUPPRESSED = "SUPPRESSED"
FREQUENCY_CAP = "FREQUENCY_CAP"


@dataclass(frozen=True)
class Recipient:
    """One valid input row, ready to be stored and sent."""

    row: int  # as a spreadsheet shows it: the header is row 1
    phone: str  # E.164
    name: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SkippedRow:
    """An input row that will never be sent, kept so the report accounts for it."""

    row: int
    phone: str  # E.164 when it could be normalised, else the raw value
    name: str
    reason: str
    code: str = "SKIPPED"  # stored as the row's error code: DUPLICATE, INVALID_ROW…


class Severity(enum.StrEnum):
    ERROR = "error"  # the row (or file) is invalid
    WARNING = "warning"  # repaired or suspicious, still sent
    SKIP = "skip"  # the row is skipped on purpose (a duplicate, say)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input, named by its spreadsheet row (None: the whole file)."""

    row: int | None
    column: str | None
    value: str | None
    code: str
    message: str
    severity: Severity = Severity.ERROR

    @classmethod
    def for_file(cls, code: str, message: str) -> Problem:
        """A problem with the whole file: no row, column or value."""
        return cls(None, None, None, code, message)


class Fate(enum.StrEnum):
    """What the dispatcher does with a row after one request."""

    SENT = "sent"
    FAILED = "failed"  # the API refused this row; the campaign goes on
    UNKNOWN = "unknown"  # the request may have been processed: a human decides
    RETRY = "retry"  # certainly not processed: back to pending, try again later
    HALT = "halt"  # an account-level problem: stop the campaign, the row stays pending


@dataclass(frozen=True)
class SendOutcome:
    """What one send request came to, as the client saw it."""

    http_status: int | None  # None when no answer arrived
    error_code: str | None = None  # the API's code, or ours for transport errors
    error_message: str | None = None
    conversation_id: int | None = None
    message_id: int | None = None
    whatsapp_message_id: int | None = None
    message_sid: str | None = None
    api_status: str | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After
    raw_body: str | None = None  # kept when the body was not what we expected
    invalid_fields: tuple[str, ...] = ()  # field names of a 422 validation error
    left_at: float | None = None  # epoch seconds: when the request was written out


@dataclass(frozen=True)
class RowEvent:
    """One row reached a new state; the dispatcher's only news for the outside."""

    row: int
    state: RowState
    error_code: str | None = None


def whole_number(value: object) -> int | None:
    """An id from JSON as a (64-bit) number, from a number or digits; None otherwise."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value
