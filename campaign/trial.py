"""A test send: one message, with one row's values, to the operator's own number.

It is recorded in the store's `test_sends`, apart from every campaign (it never marks a
row), `sending` before its request leaves as every send is. It takes a turn of the
account's pace like any request, and it is never repeated: whatever the answer, it is
shown, and a person decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from campaign import outcomes
from campaign.client import account_id
from campaign.errors import AccountPaused, InputError, UsageError
from campaign.loader import Chunk
from campaign.model import Fate, Recipient, SendOutcome
from campaign.phones import normalize_phone
from campaign.preflight import check_account
from campaign.preview import Body
from campaign.runner import OnNotice, RunSettings, account_session, read_file

FIRST_DATA_ROW = 2  # row 1 is the header

# A test send's status in the store, from the outcome table's fate of its answer.
STATUS_OF_FATE = {
    Fate.SENT: "sent",
    Fate.FAILED: "failed",
    Fate.HALT: "failed",  # an account problem: this message was refused all the same
    Fate.RETRY: "not_sent",  # certainly not processed
    Fate.UNKNOWN: "unknown",  # may have been sent: it is not tried again
}


@dataclass(frozen=True)
class TestSendResult:
    """What a test send came to."""

    id: int  # in the store's test_sends
    row: int  # the spreadsheet row whose values were sent
    to: str  # E.164
    sender_id: int
    template_id: int
    text: str | None  # the body as the recipient should read it (None: no body known)
    status: str  # sent, failed, not_sent or unknown
    outcome: SendOutcome | None  # None: no request left

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "sent" else 1


async def send_test(
    path: Path,
    settings: RunSettings,
    sender_id: int,
    template_id: int,
    to: str,
    *,
    row: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_notice: OnNotice | None = None,
) -> TestSendResult:
    """Send row `row` (default: the first valid row) of `path` to `to`, once.

    UsageError (exit 2, nothing sent) for a file that does not exist, a `to` that is not a
    phone number, a row that is not a valid row of the file; PreflightError for a sender or
    template that cannot send.
    """
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    phone = normalize_phone(to, settings.loading.default_region)
    if phone.e164 is None:
        raise UsageError(f"--to {to!r} is not a phone number that can be sent to: {phone.message}")
    if row is not None and row < FIRST_DATA_ROW:
        raise UsageError(f"--row {row} is not a row of recipients: the first one is row 2")
    notice = on_notice or (lambda text: None)
    async with account_session(settings, transport) as (store, client):
        preflight = await check_account(
            client, sender_id, template_id, block_red=settings.sending.block_red
        )
        for warning in preflight.warnings:
            notice(f"warning: {warning}")
        chosen = _pick_row(path, settings, preflight.variables, preflight.body_text, row)
        recipient = Recipient(chosen.row, phone.e164, chosen.name, chosen.variables)
        test_id = store.start_test_send(
            account=account_id(settings.base_url, settings.api_key),
            sender_id=sender_id,
            template_id=template_id,
            to_phone=recipient.phone,
            source=str(path),
            row=recipient.row,
        )
        try:
            outcome = await client.send_template(sender_id, template_id, recipient)
        except AccountPaused:  # no request left
            outcome = None
        status = "not_sent" if outcome is None else STATUS_OF_FATE[outcomes.fate_of(outcome)]
        store.finish_test_send(test_id, status, outcome)
    text = Body(preflight.body_text, preflight.variables) if preflight.body_text else None
    return TestSendResult(
        id=test_id,
        row=recipient.row,
        to=recipient.phone,
        sender_id=sender_id,
        template_id=template_id,
        text=text.fill(recipient.variables) if text else None,
        status=status,
        outcome=outcome,
    )


class _RowFinder:
    """Follows a file's chunks for one row (or the first valid one), and why a row is not."""

    def __init__(self, wanted: int | None) -> None:
        self.wanted = wanted
        self.found: Recipient | None = None
        self.first_valid: int | None = None
        self.why_not: str | None = None  # the wanted row is invalid or a duplicate: why

    def __call__(self, chunk: Chunk) -> None:
        if chunk.recipients and self.first_valid is None:
            self.first_valid = chunk.recipients[0].row
        if self.found is not None:
            return
        for recipient in chunk.recipients:
            if self.wanted in (None, recipient.row):
                self.found = recipient
                return
        for other in (*chunk.invalid, *chunk.skipped):
            if other.row == self.wanted:
                self.why_not = other.reason


def _pick_row(
    path: Path,
    settings: RunSettings,
    variables: list[str] | None,
    body_text: str | None,
    wanted: int | None,
) -> Recipient:
    finder = _RowFinder(wanted)
    loaded = read_file(path, settings, variables, body_text, finder)
    if not loaded.valid_rows:
        raise InputError(f"{path} has no row that can be sent; nothing was sent.", loaded.problems)
    if finder.found is None:
        why = f"it is not valid ({finder.why_not})" if finder.why_not else "there is no such row"
        raise UsageError(
            f"--row {wanted} cannot be sent: {why}; the first valid row is {finder.first_valid}"
        )
    return finder.found
