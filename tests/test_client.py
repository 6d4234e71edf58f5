"""The API client: every answer, however odd, becomes a SendOutcome."""

from __future__ import annotations

import httpx
import pytest

from campaign import outcomes
from campaign.client import ApiError, AutocallsClient, check_base_url
from campaign.errors import UsageError
from campaign.model import Recipient

pytestmark = pytest.mark.anyio
KEY = "1|s3cret-key"
ALICE = Recipient(2, "+14155550100", "Alice", {"1": "Alice"})


class CannedApi:
    """A plain ASGI app that answers every request with one canned response."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests: list[dict] = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.requests.append(
            {
                "path": scope["path"],
                "headers": dict(scope["headers"]),
                "body": message.get("body", b""),
            }
        )
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


async def send_with(app) -> outcomes.SendOutcome:
    client = AutocallsClient(KEY, "http://127.0.0.1", transport=httpx.ASGITransport(app=app))
    async with client:
        return await client.send_template(12, 45, ALICE)


async def test_success_body_is_read():
    """A 200 gives the ids and status of the documented body."""
    body = (
        b'{"success": true, "conversation_id": 1234, "message_id": 567,'
        b' "whatsapp_message_id": 890, "message_sid": "SMabc", "status": "queued"}'
    )
    app = CannedApi(200, body)
    outcome = await send_with(app)
    assert (outcome.http_status, outcome.conversation_id, outcome.message_id) == (200, 1234, 567)
    assert (outcome.whatsapp_message_id, outcome.message_sid, outcome.api_status) == (
        890,
        "SMabc",
        "queued",
    )
    assert outcome.error_code is None
    request = app.requests[0]
    assert request["path"] == "/api/user/whatsapp/send"
    assert request["headers"][b"authorization"] == f"Bearer {KEY}".encode()


async def test_error_code_shape():
    """`{"success": false, "error": ..., "error_code": ...}` gives the code and message."""
    body = b'{"success": false, "error": "Phone is invalid", "error_code": "INVALID_PHONE"}'
    outcome = await send_with(CannedApi(422, body))
    assert (outcome.error_code, outcome.error_message) == ("INVALID_PHONE", "Phone is invalid")


async def test_laravel_validation_shape():
    """`{"message": ..., "errors": {field: [...]}}` gives the fields and their messages."""
    body = (
        b'{"message": "The given data was invalid.",'
        b' "errors": {"recipient_name": ["The recipient name may not be greater than 255."]}}'
    )
    outcome = await send_with(CannedApi(422, body))
    assert outcome.error_code == outcomes.VALIDATION_ERROR
    assert outcome.invalid_fields == ("recipient_name",)
    assert "may not be greater than 255" in outcome.error_message


@pytest.mark.parametrize("body", [b"<html><h1>Bad Gateway</h1></html>", b"", b"\xff\xfe\x00junk"])
async def test_any_other_error_body_is_kept_raw(body):
    """HTML, empty or binary error bodies are survived and kept for the record."""
    outcome = await send_with(CannedApi(502, body))
    assert outcome.http_status == 502
    assert outcome.error_code == "HTTP_502"
    assert outcome.error_message.startswith("HTTP 502")
    assert outcome.raw_body is not None


async def test_unreadable_success_body():
    """A 200 whose body is not the documented JSON is its own code (an unknown fate)."""
    outcome = await send_with(CannedApi(200, b"<html>ok</html>"))
    assert outcome.error_code == outcomes.UNREADABLE_BODY
    assert outcome.raw_body == "<html>ok</html>"


async def test_success_false_in_a_200():
    """A 200 saying success: false is not a send."""
    outcome = await send_with(CannedApi(200, b'{"success": false, "error_code": "INVALID_PHONE"}'))
    assert outcome.error_code == "INVALID_PHONE"


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "code"),
    [
        (503, b'{"message": "Service Unavailable"}', JSON, outcomes.MAINTENANCE),
        (503, b'{"message":"Service Unavailable"}', JSON, outcomes.MAINTENANCE),
        (503, b'{"message": "Service Unavailable"}', {"Content-Type": "text/html"}, "HTTP_503"),
        (503, b'{"message": "service unavailable"}', JSON, "HTTP_503"),
        (503, b'{"message": "Service Unavailable", "retry": 60}', JSON, "HTTP_503"),
        (503, b'{"message": "Server Error"}', JSON, "HTTP_503"),
        (503, b'{"error_code": "MAINTENANCE", "error": "down"}', JSON, "HTTP_503"),
        (503, b'["Service Unavailable"]', JSON, "HTTP_503"),
        (503, b"<html><h1>503 Service Temporarily Unavailable</h1></html>", {}, "HTTP_503"),
        (503, b"", {}, "HTTP_503"),
        (500, b'{"message": "Service Unavailable"}', JSON, "HTTP_500"),
    ],
)
async def test_only_the_apis_own_maintenance_answer_is_maintenance(status, body, headers, code):
    """Laravel's exact maintenance JSON is MAINTENANCE; any other 503 (a proxy's) is HTTP_503."""
    outcome = await send_with(CannedApi(status, body, headers))
    assert (outcome.http_status, outcome.error_code) == (status, code)


async def test_a_server_errors_own_code_stays_in_its_message():
    """A 5xx is named by its status, whatever code the body claims; the claim is kept to read."""
    body = b'{"success": false, "error": "Oops", "error_code": "CONNECT_ERROR"}'
    outcome = await send_with(CannedApi(500, body, JSON))
    assert outcome.error_code == "HTTP_500"
    assert outcome.error_message == "CONNECT_ERROR: Oops"


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), ("0.5", 0.5), ("soon", None)])
async def test_retry_after(header, seconds):
    """A 429's Retry-After is read in seconds; an unreadable one is ignored."""
    app = CannedApi(429, b'{"message": "Too Many Attempts."}', {"Retry-After": header})
    outcome = await send_with(app)
    assert outcome.error_code == outcomes.RATE_LIMITED
    assert outcome.retry_after == seconds


async def test_connection_refused_is_a_connect_error():
    """Nothing listening: a connect error, which the table retries."""
    async with AutocallsClient(KEY, "http://127.0.0.1:9", timeout=2) as client:
        outcome = await client.send_template(12, 45, ALICE)
    assert outcome.http_status is None
    assert outcome.error_code == outcomes.CONNECT_ERROR
    assert KEY not in (outcome.error_message or "")


async def test_app_exception_is_a_transport_error():
    """Anything else that goes wrong mid-request is recorded, not raised."""

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    outcome = await send_with(broken)
    assert outcome.error_code == outcomes.TRANSPORT_ERROR


async def test_get_errors_raise_api_error():
    """Senders, templates and account calls raise ApiError with status and code."""
    app = CannedApi(401, b'{"message": "Unauthenticated."}')
    client = AutocallsClient(KEY, "http://127.0.0.1", transport=httpx.ASGITransport(app=app))
    async with client:
        with pytest.raises(ApiError) as caught:
            await client.senders()
    assert caught.value.status == 401
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8000", "ftp://x"])
def test_plain_http_is_refused_off_loopback(url):
    """The key never travels unencrypted: plain http only to loopback."""
    with pytest.raises(UsageError):
        check_base_url(url)


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://app.autocalls.ai", "https://app.autocalls.ai"),
        ("https://app.autocalls.ai/api/", "https://app.autocalls.ai"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_accepted_base_urls(url, root):
    """https anywhere, http on loopback; a trailing /api is tolerated."""
    assert check_base_url(url) == root


def test_one_account_whatever_the_spelling_of_its_address():
    """The account is named by a normalised API root and the key: spellings do not split it."""
    from campaign.client import account_id

    spellings = ["https://HOST", "https://host/", "https://host/api", "https://host:443/api/"]
    assert len({account_id(url, "key") for url in spellings}) == 1
    assert account_id("https://host:8443", "key") != account_id("https://host", "key")
    assert account_id("https://host", "other") != account_id("https://host", "key")
    assert "key" not in account_id("https://host", "key")


class SlowToConnect(httpx.AsyncHTTPTransport):
    """httpx's own transport, but every request waits `delay` first, as a slow TLS set-up."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import anyio

        await anyio.sleep(self.delay)
        return await super().handle_async_request(request)


async def test_a_request_slow_to_connect_waits_for_a_new_turn(db_path):
    """A request whose connection took 80 ms misses its turn: it books another and leaves on it.

    Its turn is given back before anything is written, so turns booked meanwhile keep
    their distance; what left is recorded, each within a few ms of the turn it used.
    """
    import sqlalchemy as sa
    from strict_server import KEY as STRICT_KEY
    from strict_server import StrictServer, running

    from campaign.limiter import WRITE_TOLERANCE, AccountLimiter
    from campaign.store import Store

    store = Store.open(db_path)
    api = StrictServer()
    with running(api) as url:
        limiter = AccountLimiter(store, "acct", 5)
        client = AutocallsClient(STRICT_KEY, url, limiter=limiter, transport=SlowToConnect(0.08))
        async with client:
            for _ in range(3):
                assert (await client.send_template(12, 45, ALICE)).http_status == 200
    with store.engine.connect() as conn:
        turns = conn.execute(sa.text("SELECT id, planned, written FROM account_turns")).all()
    assert len(turns) == 3 and api.accepted == 3  # the missed turns were given back
    # Each left on the turn it used, not 80 ms after it.
    assert all(0 <= written - planned <= WRITE_TOLERANCE for _, planned, written in turns)
