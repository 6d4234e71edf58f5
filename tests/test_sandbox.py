"""The sandbox: our fake of the autocalls API, in-process and on loopback."""

from __future__ import annotations

import socket
import time

import anyio
import httpx
import pytest

from campaign import sandbox as sb
from campaign.sandbox import Faults, Sandbox, Sender, Template

pytestmark = pytest.mark.anyio

SEND = "/api/user/whatsapp/send"
PHONE = "+14155550100"
AUTH = {"Authorization": f"Bearer {sb.DEFAULT_KEY}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A clock the test moves by hand, for exact rolling windows."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def client(sandbox: Sandbox, key: str | None = sb.DEFAULT_KEY) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=sandbox.app)
    return httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=headers)


def payload(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "sender_id": sb.DEMO_SENDER_ID,
        "template_id": sb.DEMO_TEMPLATE_ID,
        "recipient_phone": PHONE,
        "recipient_name": "Ada Example",
        "variables": {"1": "Ada", "2": "1 December 2026"},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def send(sandbox: Sandbox, **changes: object) -> httpx.Response:
    async with client(sandbox) as http:
        return await http.post(SEND, json=payload(**changes))


def plain(sender_id: int) -> dict[str, object]:
    """Changes that send the sender's template without variables."""
    return {"sender_id": sender_id, "template_id": sb.PLAIN_TEMPLATE_OF[sender_id], "variables": {}}


# -- sends that work -------------------------------------------------------------------


async def test_good_send_returns_documented_body_and_is_recorded():
    """A good send answers 200 with the documented fields and is recorded once."""
    sandbox = Sandbox()
    response = await send(sandbox)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] == "queued"
    for name in ("conversation_id", "message_id", "whatsapp_message_id"):
        assert isinstance(body[name], int)
    assert body["message_sid"].startswith("SM") and len(body["message_sid"]) == 34
    int(body["message_sid"][2:], 16)
    [message] = sandbox.messages
    assert (message.phone, message.name, message.sender_id) == (PHONE, "Ada Example", 12)
    assert message.variables == {"1": "Ada", "2": "1 December 2026"}
    assert message.answered and message.fault is None
    assert sandbox.messages_to(PHONE) == 1 and sandbox.duplicates() == {}


async def test_same_phone_keeps_its_conversation_and_ids_increase():
    """The same phone and sender reuse their conversation; the other ids grow."""
    sandbox = Sandbox()
    first = (await send(sandbox)).json()
    other = (await send(sandbox, recipient_phone="+14155550101")).json()
    again = (await send(sandbox)).json()
    assert again["conversation_id"] == first["conversation_id"] != other["conversation_id"]
    assert first["message_id"] < other["message_id"] < again["message_id"]
    assert first["whatsapp_message_id"] < again["whatsapp_message_id"]
    assert sandbox.counts_by_phone() == {PHONE: 2, "+14155550101": 1}
    assert sandbox.duplicates() == {PHONE: 2}


@pytest.mark.parametrize(
    "variables",
    [{"customer_name": "Ada", "date": "Monday"}, {"1": "Ada", "date": "Monday"}],
)
async def test_variables_by_name_or_position_are_accepted(variables):
    """Variable keys may be the template's names, or mixed with positions."""
    assert (await send(Sandbox(), variables=variables)).status_code == 200


@pytest.mark.parametrize("variables", [{}, None])
async def test_template_without_variables_needs_none(variables):
    """A template without placeholders takes empty or absent variables."""
    changes = plain(sb.DEMO_SENDER_ID) | {"variables": variables}
    assert (await send(Sandbox(), **changes)).status_code == 200


async def test_red_sender_still_sends():
    """RED quality is only shown; sends from it work."""
    assert (await send(Sandbox(), **plain(sb.RED_SENDER_ID))).status_code == 200


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_missing_or_wrong_key_is_401(key):
    """No key or an unknown key answers 401 Unauthenticated and records nothing."""
    sandbox = Sandbox()
    async with client(sandbox, key) as http:
        response = await http.post(SEND, json=payload())
        me = await http.get("/api/user/me")
    assert response.status_code == me.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}
    assert sandbox.messages == [] and sandbox.requests == []


REFUSALS = [
    ({"sender_id": sb.UNKNOWN_SENDER_ID}, 404, "SENDER_NOT_FOUND"),
    ({"template_id": 999}, 404, "TEMPLATE_NOT_FOUND"),
    ({"template_id": sb.PLAIN_TEMPLATE_OF[sb.RED_SENDER_ID]}, 404, "TEMPLATE_NOT_FOUND"),
    (plain(sb.OFFLINE_SENDER_ID), 422, "SENDER_OFFLINE"),
    ({"template_id": sb.PENDING_TEMPLATE_ID}, 422, "TEMPLATE_NOT_APPROVED"),
    ({"template_id": sb.REJECTED_TEMPLATE_ID}, 422, "TEMPLATE_NOT_APPROVED"),
    ({"template_id": sb.UNSYNCED_TEMPLATE_ID, "variables": {}}, 422, "TEMPLATE_NOT_SYNCED"),
    ({"variables": {"1": "Ada"}}, 422, "TEMPLATE_MISMATCH"),
    ({"variables": {"1": "Ada", "2": "x", "3": "y"}}, 422, "TEMPLATE_MISMATCH"),
    ({"variables": {"1": "Ada", "customer_name": "Ada", "2": "x"}}, 422, "TEMPLATE_MISMATCH"),
    ({"variables": {"1": "Ada", "2": "two\nlines"}}, 422, "TEMPLATE_MISMATCH"),
    ({"variables": {"1": "Ada", "2": " "}}, 422, "TEMPLATE_MISMATCH"),
    ({"variables": {"1": "Ada", "2": "x" * 1601}}, 422, "TEMPLATE_MISMATCH"),
    (plain(sb.NO_ASSISTANT_SENDER_ID), 422, "NO_ASSISTANT_CONFIGURED"),
    (plain(sb.VOICE_LIMIT_SENDER_ID), 422, "VOICE_CALL_LIMIT_NOT_MET"),
    ({"recipient_phone": sb.INVALID_PHONE_EXAMPLE}, 422, "INVALID_PHONE"),
    ({"recipient_phone": "14155550100"}, 422, "INVALID_PHONE"),
    ({"recipient_phone": "+1 415 555 0100"}, 422, "INVALID_PHONE"),
    ({"recipient_phone": sb.TWILIO_ERROR_PHONE}, 422, sb.TWILIO_ERROR_CODE),
    ({"recipient_phone": sb.UNKNOWN_ERROR_PHONE}, 422, "UNKNOWN_ERROR"),
]


@pytest.mark.parametrize(("changes", "status", "code"), REFUSALS)
async def test_each_documented_error_code_is_triggerable(changes, status, code):
    """Each documented code comes in the success/error/error_code shape; nothing is sent."""
    sandbox = Sandbox()
    response = await send(sandbox, **changes)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["error_code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert sandbox.messages == []


async def test_messaging_limit_counts_unique_recipients_per_24_hours():
    """Past the sender's messaging_limit of new recipients in 24 h: MESSAGING_LIMIT_UNAVAILABLE."""
    clock = FakeClock()
    sandbox = Sandbox(clock=clock)
    phones = [f"+1415555010{i}" for i in range(sb.SMALL_MESSAGING_LIMIT + 1)]
    changes = plain(sb.SMALL_LIMIT_SENDER_ID)
    for phone in phones[:-1]:
        assert (await send(sandbox, recipient_phone=phone, **changes)).status_code == 200
    refused = await send(sandbox, recipient_phone=phones[-1], **changes)
    assert refused.status_code == 422
    assert refused.json()["error_code"] == "MESSAGING_LIMIT_UNAVAILABLE"
    assert (await send(sandbox, recipient_phone=phones[0], **changes)).status_code == 200
    clock.now += sb.DAY
    assert (await send(sandbox, recipient_phone=phones[-1], **changes)).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"recipient_name": None}, "recipient_name"),
        ({"recipient_name": "   "}, "recipient_name"),
        ({"recipient_name": "x" * 256}, "recipient_name"),
        ({"recipient_phone": 14155550100}, "recipient_phone"),
        ({"sender_id": "twelve"}, "sender_id"),
        ({"template_id": None}, "template_id"),
        ({"variables": ["Ada", "Monday"]}, "variables"),
        ({"variables": {"1": "Ada", "2": 2026}}, "variables.2"),
    ],
)
async def test_bad_fields_get_a_laravel_validation_error(changes, field):
    """Missing or ill-typed fields answer 422 {"message", "errors": {field: [...]}}."""
    sandbox = Sandbox()
    response = await send(sandbox, **changes)
    assert response.status_code == 422
    body = response.json()
    assert isinstance(body["message"], str) and "success" not in body
    assert list(body["errors"]) == [field] and isinstance(body["errors"][field][0], str)
    assert sandbox.messages == []


async def test_unreadable_body_lists_every_required_field():
    """A body that is not JSON is validated as empty: every required field is named."""
    async with client(Sandbox()) as http:
        response = await http.post(SEND, content=b"not json", headers={"Content-Type": "text/x"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"sender_id", "template_id", "recipient_phone", "recipient_name"}
    assert response.json()["message"].endswith("(and 3 more errors)")


async def test_name_of_255_characters_is_fine():
    """recipient_name may be exactly 255 characters long."""
    assert (await send(Sandbox(), recipient_name="x" * 255)).status_code == 200


async def test_zero_balance_gets_402_until_topped_up():
    """With no balance left a send gets 402 and is not recorded; top_up lets it through."""
    sandbox = Sandbox(balance=1)
    assert (await send(sandbox)).status_code == 200
    refused = await send(sandbox, recipient_phone="+14155550101")
    assert refused.status_code == 402
    assert refused.json() == {
        "success": False,
        "error": "Insufficient balance. Please top up your account.",
        "error_code": "INSUFFICIENT_BALANCE",
    }
    assert len(sandbox.messages) == 1
    sandbox.top_up(2)
    assert (await send(sandbox, recipient_phone="+14155550101")).status_code == 200
    async with client(sandbox) as http:
        me = (await http.get("/api/user/me")).json()
    assert me["total_balance"] == pytest.approx(sb.PRICE_PER_MESSAGE)


# -- rate limit and latency ------------------------------------------------------------


async def test_six_requests_at_once_get_one_429():
    """Six sends in the same instant: five are admitted, one gets 429 Retry-After: 1."""
    sandbox = Sandbox()
    responses: list[httpx.Response] = []

    async def one(http: httpx.AsyncClient, i: int) -> None:
        responses.append(await http.post(SEND, json=payload(recipient_phone=f"+1415555011{i}")))

    async with client(sandbox) as http, anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(one, http, i)
    limited = [r for r in responses if r.status_code == 429]
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429]
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json() == {"message": "Too Many Attempts."}
    assert len(sandbox.messages) == 5
    assert sandbox.max_in_rolling_second() == 6 and sandbox.rate_limited == 1


async def test_rate_window_is_rolling_per_key_and_across_endpoints():
    """The window is a half-open second per key, and every /api endpoint counts."""
    clock = FakeClock()
    sandbox = Sandbox(keys=("key-a", "key-b"), clock=clock)
    async with client(sandbox, "key-a") as a, client(sandbox, "key-b") as b:
        for _ in range(5):
            assert (await a.get("/api/user/me")).status_code == 200
        assert (await b.get("/api/user/me")).status_code == 200  # another key, its own limit
        clock.now += 0.999
        assert (await a.get("/api/user/whatsapp/senders")).status_code == 429
        clock.now += 0.001  # exactly 1 s after the first five: they left the window
        assert (await a.get("/api/user/me")).status_code == 200
    assert sandbox.max_in_rolling_second("key-a") == 6  # the 429 counts as an arrival
    assert sandbox.max_in_rolling_second("key-b") == 1
    assert sandbox.max_in_rolling_second() == 7
    assert sandbox.rate_limited == 1


async def test_max_in_rolling_second_uses_half_open_windows():
    """Arrivals exactly 1 s apart are in different windows."""
    clock = FakeClock()
    sandbox = Sandbox(rate=100, clock=clock)
    async with client(sandbox) as http:
        for at in (0.0, 0.5, 1.0, 1.4, 2.4):
            clock.now = 100.0 + at
            await http.get("/api/user/me")
    assert sandbox.max_in_rolling_second() == 3  # 0.5, 1.0, 1.4


async def test_fixed_latency_delays_the_answer():
    """A fixed latency holds every answer at least that long."""
    sandbox = Sandbox(latency=0.2)
    start = time.monotonic()
    assert (await send(sandbox)).status_code == 200
    assert time.monotonic() - start >= 0.2
    assert sandbox.requests[0].latency == 0.2


async def test_latency_range_is_drawn_from_the_seeded_rng():
    """A (min, max) latency is drawn per request, the same for the same seed."""

    async def latencies(seed: int) -> list[float]:
        sandbox = Sandbox(latency=(0.001, 0.02), seed=seed)
        async with client(sandbox) as http:
            for _ in range(4):
                await http.get("/api/user/me")
        return [r.latency for r in sandbox.requests]

    first, again, other = await latencies(1), await latencies(1), await latencies(2)
    assert first == again != other
    assert all(0.001 <= x <= 0.02 for x in first) and len(set(first)) == 4


# -- faults ----------------------------------------------------------------------------


async def test_error_500_is_accepted_with_an_html_body():
    """error_500: the message is recorded, the client gets a 500 HTML page."""
    sandbox = Sandbox(faults=Faults(error_500_phones={PHONE}))
    response = await send(sandbox)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert [(m.phone, m.fault) for m in sandbox.messages] == [(PHONE, sb.ERROR_500)]


async def test_error_503_is_the_maintenance_answer_and_not_accepted():
    """error_503: Laravel's maintenance JSON, and nothing recorded, nor paid for."""
    sandbox = Sandbox(faults=Faults(error_503_phones={PHONE}), balance=5)
    response = await send(sandbox)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Service Unavailable"}
    assert sandbox.messages == [] and sandbox.balance == 5


async def test_proxy_503_is_accepted_with_an_html_body():
    """proxy_503: the message is recorded and paid for, the client gets a proxy's 503 page."""
    sandbox = Sandbox(faults=Faults(proxy_503_phones={PHONE}), balance=5)
    response = await send(sandbox)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert [(m.phone, m.fault, m.answered) for m in sandbox.messages] == [
        (PHONE, sb.PROXY_503, True)
    ]
    assert sandbox.balance == 4


async def test_drop_in_process_raises_after_acceptance():
    """drop via ASGITransport: the client's call raises ConnectionDropped; it was recorded."""
    sandbox = Sandbox(faults=Faults(drop_phones={PHONE}))
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await send(sandbox)
    assert isinstance(caught.value, sb.ConnectionDropped)
    [message] = sandbox.messages
    assert message.fault == sb.DROP and not message.answered


async def test_slow_answer_comes_late_without_blocking_others():
    """slow: accepted at once, answered after slow_seconds, while others pass meanwhile."""
    sandbox = Sandbox(faults=Faults(slow_phones={PHONE}, slow_seconds=0.3))
    finished: list[str] = []

    async def one(phone: str) -> None:
        response = await send(sandbox, recipient_phone=phone)
        assert response.status_code == 200
        finished.append(phone)

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(one, PHONE)
        tg.start_soon(one, "+14155550101")
    assert finished == ["+14155550101", PHONE]
    assert time.monotonic() - start >= 0.3
    assert sandbox.messages[0].fault == sb.SLOW and sandbox.messages[0].answered


async def test_fault_probabilities_are_seeded():
    """Random faults repeat exactly for the same seed."""

    async def statuses(seed: int) -> list[int]:
        sandbox = Sandbox(rate=1000, seed=seed, faults=Faults(error_503=0.5))
        async with client(sandbox) as http:
            return [
                (
                    await http.post(SEND, json=payload(recipient_phone=f"+141555501{i:02}"))
                ).status_code
                for i in range(20)
            ]

    first = await statuses(3)
    assert first == await statuses(3)
    assert set(first) == {200, 503}


def test_faults_draw_in_order_of_their_probabilities():
    """A draw falls into the first fault whose share of [0, 1) holds it."""
    faults = Faults(error_500=0.1, error_503=0.2, proxy_503=0.1, drop=0.3, slow=0.1)
    picks = [faults.drawn(x) for x in (0.05, 0.15, 0.35, 0.45, 0.75, 0.85)]
    assert picks == [sb.ERROR_500, sb.ERROR_503, sb.PROXY_503, sb.DROP, sb.SLOW, None]


# -- the other endpoints ---------------------------------------------------------------


async def test_senders_default_to_online_and_status_all_lists_every_one():
    """GET senders: online ones by default, every one with status=all, documented fields."""
    async with client(Sandbox()) as http:
        online = (await http.get("/api/user/whatsapp/senders")).json()["data"]
        every = (await http.get("/api/user/whatsapp/senders", params={"status": "all"})).json()
    assert sb.OFFLINE_SENDER_ID not in {s["id"] for s in online}
    assert {s["id"] for s in every["data"]} == set(sb.PLAIN_TEMPLATE_OF)
    demo = next(s for s in online if s["id"] == sb.DEMO_SENDER_ID)
    assert demo == {
        "id": 12,
        "phone_number": "+14155551234",
        "display_name": "Acme Support",
        "status": "online",
        "quality_rating": "GREEN",
        "messaging_limit": 10000,
        "messaging_limit_formatted": "10,000 / 24hr",
    }
    red = next(s for s in online if s["id"] == sb.RED_SENDER_ID)
    assert red["quality_rating"] == "RED" and red["messaging_limit"] is None


async def test_templates_default_to_approved_and_unknown_sender_is_404():
    """GET templates: approved by default, all with status=all; an unknown sender is 404."""
    path = f"/api/user/whatsapp/senders/{sb.DEMO_SENDER_ID}/templates"
    async with client(Sandbox()) as http:
        approved = (await http.get(path)).json()["data"]
        every = (await http.get(path, params={"status": "all"})).json()["data"]
        missing = await http.get(f"/api/user/whatsapp/senders/{sb.UNKNOWN_SENDER_ID}/templates")
    assert {t["id"] for t in approved} == {41, 42, 45, 46, 49}  # 41, 42: "welcome" en, es
    assert {t["id"]: t["status"] for t in every}[sb.PENDING_TEMPLATE_ID] == "pending"
    assert {t["id"]: t["status"] for t in every}[sb.REJECTED_TEMPLATE_ID] == "rejected"
    demo = next(t for t in approved if t["id"] == sb.DEMO_TEMPLATE_ID)
    assert "{{1}}" in demo["body_text"] and "{{2}}" in demo["body_text"]
    assert demo["variables"] == ["customer_name", "date"] and demo["has_variables"] is True
    assert set(demo) >= {"name", "language", "category", "status"}
    assert next(t for t in approved if t["id"] == 46)["has_variables"] is False
    assert missing.status_code == 404 and missing.json()["error_code"] == "SENDER_NOT_FOUND"


async def test_me_shows_the_balance_in_dollars():
    """GET /user/me: name, email and the balance at PRICE_PER_MESSAGE a message."""
    async with client(Sandbox(balance=250)) as http:
        me = (await http.get("/api/user/me")).json()
    assert set(me) == {"name", "email", "total_balance"}
    assert me["total_balance"] == pytest.approx(250 * sb.PRICE_PER_MESSAGE)


async def test_fixtures_can_be_replaced():
    """Senders and templates given to the constructor replace the built-in ones."""
    sender = Sender(7, "+14155550007", "Mine", messaging_limit=None)
    template = Template(70, 7, "hello", "Hello {{1}}", ("first_name",))
    sandbox = Sandbox(senders=[sender], templates=[template])
    async with client(sandbox) as http:
        senders = (await http.get("/api/user/whatsapp/senders")).json()["data"]
    assert [s["id"] for s in senders] == [7]
    ok = await send(sandbox, sender_id=7, template_id=70, variables={"first_name": "Ada"})
    assert ok.status_code == 200
    assert (await send(sandbox)).json()["error_code"] == "SENDER_NOT_FOUND"


async def test_inspection_endpoints_need_no_key_and_are_not_rate_limited():
    """/sandbox/messages, /stats and /top-up work without a key and outside the limit."""
    sandbox = Sandbox(balance=0, rate=1)
    async with client(sandbox, key=None) as http:
        assert (await http.post("/sandbox/top-up", json={"messages": 3})).json() == {"balance": 3}
        assert (await send(sandbox)).status_code == 200
        messages = (await http.get("/sandbox/messages")).json()["data"]
        stats = (await http.get("/sandbox/stats")).json()
        bad = await http.post("/sandbox/top-up", json={"messages": "lots"})
    assert [m["phone"] for m in messages] == [PHONE]
    assert messages[0]["answered"] is True
    assert stats == {
        "requests": 1,
        "rate_limited": 0,
        "max_in_rolling_second": 1,
        "accepted": 1,
        "most_messages_to_one_phone": 1,
        "balance": 2,
    }
    assert bad.status_code == 422


# -- on loopback -----------------------------------------------------------------------


def test_running_serves_on_loopback():
    """running() yields a 127.0.0.1 URL that answers, and shuts down when left."""
    sandbox = Sandbox()
    with sb.running(sandbox) as url, httpx.Client(base_url=url, headers=AUTH) as http:
        assert url.startswith("http://127.0.0.1:")
        assert http.post(SEND, json=payload()).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/sandbox/stats", timeout=2)
    assert len(sandbox.messages) == 1


def test_running_reports_a_port_it_cannot_bind():
    """running() on a port already taken raises RuntimeError instead of hanging."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError), sb.running(Sandbox(), port=taken.getsockname()[1]):
            pass


def test_drop_over_loopback_is_a_transport_error_after_acceptance():
    """drop over uvicorn: httpx sees the connection break, and the message was accepted."""
    sandbox = Sandbox(faults=Faults(drop_phones={PHONE}))
    with sb.running(sandbox) as url, httpx.Client(base_url=url, headers=AUTH) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.post(SEND, json=payload())
        assert http.post(SEND, json=payload(recipient_phone="+14155550101")).status_code == 200
    dropped = sandbox.messages[0]
    assert (dropped.phone, dropped.fault, dropped.answered) == (PHONE, sb.DROP, False)
    assert len(sandbox.messages) == 2


def test_slow_over_loopback_times_out_the_client_after_acceptance():
    """slow over uvicorn: a short client timeout raises ReadTimeout; the message was accepted."""
    sandbox = Sandbox(faults=Faults(slow_phones={PHONE}))  # 30 s by default
    with sb.running(sandbox) as url:
        with httpx.Client(base_url=url, headers=AUTH) as http, pytest.raises(httpx.ReadTimeout):
            http.post(SEND, json=payload(), timeout=0.3)
        left = time.monotonic()
    # Well under the 2 s shutdown grace: the server stopped waiting once the client left.
    assert time.monotonic() - left < 1.5
    [message] = sandbox.messages
    assert message.fault == sb.SLOW and not message.answered
