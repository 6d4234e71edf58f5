"""The redactor, and the client that applies it to everything a server writes."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import string
from urllib.parse import quote

import httpx
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from campaign.client import RAW_BODY_LIMIT, ApiError, AutocallsClient
from campaign.model import Recipient
from campaign.redact import REDACTED, Redactor

KEY = "7|AbC/dEf+gHi=jKl|mNo%pQr&sT<u>\"v'w\\xYz0123"
ALICE = Recipient(2, "+14155550100", "Alice", {"1": "Alice"})
KEY_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)  # printable, no space


def spellings(key: str) -> dict[str, str]:
    """The key as servers write it: plain, in JSON (PHP's too), in a URL, in HTML."""
    return {
        "plain": key,
        "json": json.dumps(key)[1:-1],
        "php json": json.dumps(key)[1:-1].replace("/", "\\/"),
        "json unicode": "".join(f"\\u{ord(c):04x}" for c in key),
        "url": quote(key, safe=""),
        "url lower hex": quote(key, safe="").lower(),
        "html": html.escape(key),
        "backslashed": "".join("\\" + c if not c.isalnum() else c for c in key),
        "upper": key.upper(),
    }


@pytest.mark.parametrize("form", spellings(KEY).keys())
def test_the_key_is_redacted_however_it_is_written(form):
    """Each spelling of the key a server may echo becomes the marker, and only it."""
    written = spellings(KEY)[form]
    assert Redactor.for_api_key(KEY)(f"«{written}»") == f"«{REDACTED}»"


@given(key=st.text(KEY_CHARS, min_size=8, max_size=60), form=st.sampled_from(list(spellings("k"))))
def test_any_printable_key_is_redacted_in_any_spelling(key, form):
    """For any key a header can carry, every spelling is redacted exactly."""
    assume(key.lower() not in REDACTED.lower())
    written = spellings(key)[form]
    assert Redactor.for_api_key(key)(f"«{written}»") == f"«{REDACTED}»"


@given(key=st.text(KEY_CHARS, min_size=8, max_size=60))
@example(key="0000000\\")  # ends in a backslash, which JSON doubles
@example(key='0000000"')
def test_json_that_quotes_the_key_stays_json(key):
    """Redacting a JSON body leaves JSON whose strings hold the marker instead of the key."""
    body = json.dumps({"message": f"Invalid token Bearer {key}", "key": key})
    assert json.loads(Redactor.for_api_key(key)(body)) == {
        "message": f"Invalid token Bearer {REDACTED}",
        "key": REDACTED,
    }


@pytest.mark.parametrize("bearer", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_any_bearer_token_is_redacted(bearer):
    """A `Bearer` value is redacted even when it is not our whole key (a key cut short)."""
    redact = Redactor.for_api_key(KEY)
    assert redact(f"Authorization: {bearer} 7|AbC/dEf") == f"Authorization: {bearer} {REDACTED}"
    assert redact(f"{bearer}%207|AbC") == f"{bearer}%20{REDACTED}"


def test_the_secret_part_of_a_sanctum_key_is_redacted_alone():
    """`id|secret`: the secret without its id is the key's real secret, redacted too."""
    key = "42|" + string.ascii_letters[:40]
    assert Redactor.for_api_key(key)(f"token {key[3:]}!") == f"token {REDACTED}!"


def test_text_without_the_key_is_left_alone():
    """No secret, no change: the redactor does not mangle ordinary messages."""
    text = '<h1>500 | Server Error</h1> {"message": "Phone is invalid", "id": 7}'
    assert Redactor.for_api_key(KEY)(text) == text


# -- the client: every text a server writes passes the redactor ------------------------


class EchoingApi:
    """An ASGI app that quotes the request's key back, as some servers do.

    In `template`, AUTH stands for the Authorization header and KEY for the key alone.
    """

    def __init__(self, status: int, template: str, content_type: str = "text/html") -> None:
        self.status, self.template, self.content_type = status, template, content_type

    async def __call__(self, scope, receive, send):
        await receive()
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        key = auth.removeprefix("Bearer ")
        if "json" in self.content_type:  # quoted as JSON would quote it
            auth, key = json.dumps(auth)[1:-1], json.dumps(key)[1:-1]
        body = self.template.replace("AUTH", auth).replace("KEY", key)
        headers = [(b"content-type", self.content_type.encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


def client_of(app) -> AutocallsClient:
    return AutocallsClient(KEY, "http://127.0.0.1", transport=httpx.ASGITransport(app=app))


def texts_of(outcome) -> str:
    """Every field of an outcome, as one text."""
    return repr(dataclasses.astuple(outcome))


JSON = "application/json"
ECHOES = [
    (500, "<html><pre>Authorization: AUTH</pre></html>", "text/html"),
    (500, "<html>" + "x" * (RAW_BODY_LIMIT - 30) + "AUTH</html>", "text/html"),  # cut there
    (401, '{"message": "Invalid token AUTH"}', JSON),
    (422, '{"success": false, "error": "bad KEY", "error_code": "E_KEY"}', JSON),
    (422, '{"message": "KEY", "errors": {"KEY": ["AUTH"]}}', JSON),
    (200, '{"success": true, "message_sid": "KEY", "status": "AUTH"}', JSON),
    (200, "not json AUTH", "text/plain"),
    (503, '{"message": "AUTH"}', JSON),
    (502, '{"success": false, "error": "KEY", "error_code": "KEY"}', JSON),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "template", "content_type"), ECHOES)
async def test_a_send_outcome_never_holds_the_key(status, template, content_type):
    """Whatever field the server puts the key in, no text of the outcome contains it."""
    async with client_of(EchoingApi(status, template, content_type)) as client:
        outcome = await client.send_template(12, 45, ALICE)
    assert outcome.http_status == status
    text = texts_of(outcome)
    assert REDACTED in text
    for part in (KEY, KEY[2:12], json.dumps(KEY)[1:-1]):
        assert part not in text, text
    if outcome.raw_body is not None:
        assert len(outcome.raw_body) <= RAW_BODY_LIMIT


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_api_errors_and_json_answers_never_hold_the_key():
    """Reads: an error's message and a listing's data come redacted."""
    quoting = EchoingApi(401, '{"message": "Invalid token AUTH"}', JSON)
    async with client_of(quoting) as client:
        with pytest.raises(ApiError) as caught:
            await client.senders()
    assert KEY not in str(caught.value) and REDACTED in str(caught.value)
    listing = EchoingApi(200, '{"data": [{"id": 12, "display_name": "KEY"}]}', JSON)
    async with client_of(listing) as client:
        senders = await client.senders()
    assert senders == [{"id": 12, "display_name": REDACTED}]


@pytest.mark.anyio
async def test_exception_text_and_reason_phrase_never_hold_the_key(caplog):
    """A transport error quoting the key, and httpx's log of a reason phrase, are redacted."""

    def quoting_error(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"bad header {request.headers['authorization']}")

    def quoting_reason(request: httpx.Request) -> httpx.Response:
        reason = request.headers["authorization"].encode()
        return httpx.Response(500, text="oops", extensions={"reason_phrase": reason})

    for handler in (quoting_error, quoting_reason):
        transport = httpx.MockTransport(handler)
        with caplog.at_level(logging.INFO, logger="httpx"):
            async with AutocallsClient(KEY, "http://127.0.0.1", transport=transport) as client:
                outcome = await client.send_template(12, 45, ALICE)
        assert KEY not in texts_of(outcome), outcome
    assert "HTTP Request" in caplog.text and KEY not in caplog.text
