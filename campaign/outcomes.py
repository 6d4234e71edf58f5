"""The ONE table that decides the fate of every API outcome.

The README's "What happens to each outcome" section shows the same table. With no answer,
our transport code decides; a 5xx (or any status outside 2xx-4xx) goes by its status,
since the server (or a proxy in front of it) may have failed after sending, unless the
client recognised the API's own maintenance answer; for 2xx and 4xx the API's error code
decides first, then the status. Whatever none of them names is `unknown` if the
request may have been processed, `failed` if the server refused it.
"""

from __future__ import annotations

from campaign.model import Fate, SendOutcome

# Codes we give to outcomes that carry no API code.
CONNECT_ERROR = "CONNECT_ERROR"  # never connected: nothing was sent
CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
POOL_TIMEOUT = "POOL_TIMEOUT"  # no free connection in our own pool: nothing was sent
READ_TIMEOUT = "READ_TIMEOUT"  # sent, no answer in time
WRITE_TIMEOUT = "WRITE_TIMEOUT"  # part of the request may have left
CONNECTION_DROPPED = "CONNECTION_DROPPED"  # the server closed the connection mid-answer
UNREADABLE_BODY = "UNREADABLE_BODY"  # a 200 whose body is not the documented JSON
TRANSPORT_ERROR = "TRANSPORT_ERROR"  # any other failure once the request may have left
RATE_LIMITED = "RATE_LIMITED"
VALIDATION_ERROR = "VALIDATION_ERROR"  # a Laravel-style 422 about this row's fields
INTERRUPTED = "INTERRUPTED"  # found `sending` at start: the run before died mid-request
MAINTENANCE = "MAINTENANCE"  # a 503 with the API's own maintenance body: refused unprocessed
# An error answer without an API code is named after its status, e.g. HTTP_503: the
# status table below decides its fate, and `status` and `retry --code` can name it.
# A 5xx is always named by us (HTTP_5xx or MAINTENANCE), whatever code its body claims.

# An API error code decides first.
CODE_FATES: dict[str, Fate] = {
    # Account-level: nothing in this campaign can succeed until a human fixes it.
    "INSUFFICIENT_BALANCE": Fate.HALT,
    "SENDER_NOT_FOUND": Fate.HALT,
    "TEMPLATE_NOT_FOUND": Fate.HALT,
    "SENDER_OFFLINE": Fate.HALT,
    "TEMPLATE_NOT_APPROVED": Fate.HALT,
    "TEMPLATE_NOT_SYNCED": Fate.HALT,
    "NO_ASSISTANT_CONFIGURED": Fate.HALT,
    "MESSAGING_LIMIT_UNAVAILABLE": Fate.HALT,
    "VOICE_CALL_LIMIT_NOT_MET": Fate.HALT,
    # Row-level: this row is refused, the campaign goes on.
    "INVALID_PHONE": Fate.FAILED,
    "TEMPLATE_MISMATCH": Fate.FAILED,
    "UNKNOWN_ERROR": Fate.FAILED,
    VALIDATION_ERROR: Fate.FAILED,
    # Ours, for answers that never came or could not be read.
    CONNECT_ERROR: Fate.RETRY,
    CONNECT_TIMEOUT: Fate.RETRY,
    POOL_TIMEOUT: Fate.RETRY,
    RATE_LIMITED: Fate.RETRY,
    READ_TIMEOUT: Fate.UNKNOWN,
    WRITE_TIMEOUT: Fate.UNKNOWN,
    CONNECTION_DROPPED: Fate.UNKNOWN,
    UNREADABLE_BODY: Fate.UNKNOWN,
    TRANSPORT_ERROR: Fate.UNKNOWN,
}

# Codes of ours that decide a 5xx before its status: each proves nothing was processed.
SERVER_ERROR_CODE_FATES: dict[str, Fate] = {MAINTENANCE: Fate.RETRY}

# Codes that share a prefix and a fate, e.g. TWILIO_ERROR_21610.
CODE_PREFIX_FATES: dict[str, Fate] = {"TWILIO_ERROR_": Fate.FAILED}

# Then the HTTP status, when the body named no code we know.
STATUS_FATES: dict[int, Fate] = {
    401: Fate.HALT,  # the key is wrong or revoked
    402: Fate.HALT,  # insufficient balance
    403: Fate.HALT,  # the key may not send
    404: Fate.HALT,  # sender or template not found
    422: Fate.FAILED,  # a documented row error without a code we know
    429: Fate.RETRY,  # not processed: wait Retry-After, try again
    500: Fate.UNKNOWN,  # the server failed, perhaps after sending
    502: Fate.UNKNOWN,
    503: Fate.UNKNOWN,  # a proxy's 503 may come after the API sent; see MAINTENANCE
    504: Fate.UNKNOWN,
}

# Fields of a 422 validation error that concern the row, not the campaign.
ROW_FIELDS = ("recipient_phone", "recipient_name", "variables")


def fate_of(outcome: SendOutcome) -> Fate:
    """Look the outcome up in the tables above; never raises."""
    status = outcome.http_status
    if status is None:  # no answer: our transport code says whether anything left
        return _fate_of_code(outcome.error_code) or Fate.UNKNOWN
    if status // 100 not in (2, 4):  # a server error or a surprise may hide a sent message
        if outcome.error_code in SERVER_ERROR_CODE_FATES:
            return SERVER_ERROR_CODE_FATES[outcome.error_code]
        return STATUS_FATES.get(status, Fate.UNKNOWN)
    if outcome.invalid_fields and not _about_row(outcome.invalid_fields):
        return Fate.HALT  # e.g. "sender_id is invalid": every row would fail the same way
    fate = _fate_of_code(outcome.error_code)
    if fate is not None:
        return fate
    if status < 300:
        return Fate.SENT if outcome.error_code is None else Fate.FAILED
    # A 4xx refused the request: nothing was sent.
    return STATUS_FATES.get(status, Fate.FAILED)


def _fate_of_code(code: str | None) -> Fate | None:
    if code is None:
        return None
    if code in CODE_FATES:
        return CODE_FATES[code]
    for prefix, fate in CODE_PREFIX_FATES.items():
        if code.startswith(prefix):
            return fate
    return None


def _about_row(fields: tuple[str, ...]) -> bool:
    return all(f.split(".")[0] in ROW_FIELDS for f in fields)
