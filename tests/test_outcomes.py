"""The outcome table: every API result has one decided fate."""

from __future__ import annotations

import pytest

from campaign import outcomes
from campaign.model import Fate, SendOutcome
from campaign.outcomes import fate_of


@pytest.mark.parametrize(
    ("status", "code", "fate"),
    [
        (200, None, Fate.SENT),
        (201, None, Fate.SENT),
        (402, None, Fate.HALT),
        (402, "INSUFFICIENT_BALANCE", Fate.HALT),
        (401, None, Fate.HALT),
        (404, "SENDER_NOT_FOUND", Fate.HALT),
        (404, "TEMPLATE_NOT_FOUND", Fate.HALT),
        (422, "SENDER_OFFLINE", Fate.HALT),
        (422, "TEMPLATE_NOT_APPROVED", Fate.HALT),
        (422, "TEMPLATE_NOT_SYNCED", Fate.HALT),
        (422, "NO_ASSISTANT_CONFIGURED", Fate.HALT),
        (422, "MESSAGING_LIMIT_UNAVAILABLE", Fate.HALT),
        (422, "VOICE_CALL_LIMIT_NOT_MET", Fate.HALT),
        (422, "INVALID_PHONE", Fate.FAILED),
        (422, "TEMPLATE_MISMATCH", Fate.FAILED),
        (422, "UNKNOWN_ERROR", Fate.FAILED),
        (422, "TWILIO_ERROR_21610", Fate.FAILED),
        (422, "SOMETHING_NEW", Fate.FAILED),
        (429, outcomes.RATE_LIMITED, Fate.RETRY),
        (503, None, Fate.UNKNOWN),
        (503, outcomes.MAINTENANCE, Fate.RETRY),
        (500, None, Fate.UNKNOWN),
        (500, "UNKNOWN_ERROR", Fate.UNKNOWN),
        (500, "HTTP_500", Fate.UNKNOWN),
        (503, "HTTP_503", Fate.UNKNOWN),
        (404, "HTTP_404", Fate.HALT),
        (409, "HTTP_409", Fate.FAILED),
        (502, None, Fate.UNKNOWN),
        (504, None, Fate.UNKNOWN),
        (418, None, Fate.FAILED),
        (302, None, Fate.UNKNOWN),
        (200, outcomes.UNREADABLE_BODY, Fate.UNKNOWN),
        (200, "INVALID_PHONE", Fate.FAILED),
        (200, "NEVER_HEARD_OF", Fate.FAILED),
    ],
)
def test_answers(status, code, fate):
    """Each HTTP answer maps to the fate the README's table gives it."""
    assert fate_of(SendOutcome(http_status=status, error_code=code)) is fate


@pytest.mark.parametrize(
    ("code", "fate"),
    [
        (outcomes.CONNECT_ERROR, Fate.RETRY),
        (outcomes.CONNECT_TIMEOUT, Fate.RETRY),
        (outcomes.POOL_TIMEOUT, Fate.RETRY),
        (outcomes.READ_TIMEOUT, Fate.UNKNOWN),
        (outcomes.WRITE_TIMEOUT, Fate.UNKNOWN),
        (outcomes.CONNECTION_DROPPED, Fate.UNKNOWN),
        (outcomes.TRANSPORT_ERROR, Fate.UNKNOWN),
        (None, Fate.UNKNOWN),
        ("SOMETHING_ELSE", Fate.UNKNOWN),
    ],
)
def test_no_answer(code, fate):
    """Without an answer, only errors that prove nothing left are retried."""
    assert fate_of(SendOutcome(http_status=None, error_code=code)) is fate


def test_only_the_maintenance_code_retries_a_server_error():
    """A 5xx is `unknown` whatever its code, unless ours says the API refused it unprocessed."""
    for status in (500, 502, 503, 504, 599):
        for code in (None, f"HTTP_{status}", outcomes.CONNECT_ERROR, "INVALID_PHONE"):
            assert fate_of(SendOutcome(http_status=status, error_code=code)) is Fate.UNKNOWN
    assert fate_of(SendOutcome(http_status=503, error_code=outcomes.MAINTENANCE)) is Fate.RETRY


def test_validation_error_about_the_row_fails_the_row():
    """A 422 about the recipient's fields fails that row only."""
    outcome = SendOutcome(
        http_status=422,
        error_code=outcomes.VALIDATION_ERROR,
        invalid_fields=("recipient_name", "variables.1"),
    )
    assert fate_of(outcome) is Fate.FAILED


def test_validation_error_about_the_campaign_halts():
    """A 422 about sender_id or template_id would fail every row: halt."""
    outcome = SendOutcome(
        http_status=422, error_code=outcomes.VALIDATION_ERROR, invalid_fields=("sender_id",)
    )
    assert fate_of(outcome) is Fate.HALT
