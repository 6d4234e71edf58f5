"""A fake of the autocalls API, for `campaign sandbox`, `campaign demo`, tests and benchmarks.

The product path never imports this module. `Sandbox(...).app` is a plain Starlette ASGI
app: use it in-process with `httpx.ASGITransport(app=sandbox.app)`, or on loopback with
`serve(sandbox)` (blocking) or `with running(sandbox) as base_url:` (background thread).
Its state (`messages`, `requests`, `balance`) lives on the server's event loop; another
thread may read it.

API (base `/api`, every call needs `Authorization: Bearer <key>`, default key `sandbox-key`):
    POST /api/user/whatsapp/send                          send one template message
    GET  /api/user/whatsapp/senders?status=online|offline|all
    GET  /api/user/whatsapp/senders/{id}/templates?status=approved|pending|rejected|all
    GET  /api/user/me                                     name, email, total_balance (USD)
Inspection (no auth, not rate limited): GET /sandbox/messages, GET /sandbox/requests,
GET /sandbox/stats,
POST /sandbox/top-up {"messages": n}.

Built-in fixtures (replace them with `Sandbox(senders=..., templates=...)`):
    sender 12  online  GREEN   limit 10,000  templates 45 (approved, {{1}} {{2}} named
                                             customer_name, date), 46 (approved, no
                                             variables), 47 (pending), 48 (rejected),
                                             49 (approved, every send TEMPLATE_NOT_SYNCED),
                                             41 and 42 (both named "welcome", in en and
                                             es, approved, {{1}} {{2}} as 45's)
    sender 13  offline GREEN   limit 1,000   template 130: SENDER_OFFLINE
    sender 14  online  RED     unlimited     template 140: sends work (RED only warns)
    sender 15  online  YELLOW  limit 3       template 150: the 4th new recipient in 24 h
                                             gets MESSAGING_LIMIT_UNAVAILABLE
    sender 16  online  GREEN   limit 1,000   template 160: NO_ASSISTANT_CONFIGURED
    sender 17  online  GREEN   limit 1,000   template 170: VOICE_CALL_LIMIT_NOT_MET
Templates 130-170 have no variables. Any other sender id (e.g. 999) is SENDER_NOT_FOUND;
a template of another sender is TEMPLATE_NOT_FOUND.

Magic phones (valid numbers, per phonenumbers): +15005550009 -> 422 TWILIO_ERROR_21610,
+15005550002 -> 422 UNKNOWN_ERROR. Phones that phonenumbers calls invalid, or that are
not written in E.164 (e.g. "+1234567890", the documentation's own example, or
"+1 415 555 0100") -> 422 INVALID_PHONE.

Checks of a send, in order: Laravel-style validation (422 `{"message", "errors"}`),
sender (404), template of that sender (404), balance (402), sender offline / magic
sender (422), template status / magic template (422), variables against the
placeholders (422 TEMPLATE_MISMATCH), phone (422 INVALID_PHONE), magic phones (422),
messaging limit (422), then the faults. Every error but validation has the shape
`{"success": false, "error": "...", "error_code": "..."}`; the documentation names no
code for 402, so we answer `INSUFFICIENT_BALANCE` (a client must also cope without one).

Variables: keys are positions "1", "2"... or the template's variable names; each
placeholder exactly once, no unknown keys, values strings. WhatsApp's own rules for
values (not empty, no newline or tab, at most four consecutive spaces, at most 1,600
characters, filled body at most 1,024) also give TEMPLATE_MISMATCH: our reading.

Delivery status webhook (optional): `Sandbox(webhook=WebhookEmitter(url, secret))` POSTs
signed `message_status` events for every accepted message, the way the autocalls
dashboard's webhook does: `sent`, then `delivered`, then (for some) `read`; a share of
messages get `sent` then `failed` instead. Events are signed with `sign(body, secret)`
(X-Signature-256: sha256=<hex HMAC-SHA256 of the body>), and come also for messages whose
answer was lost (a drop or a slow fault): that is how an `unknown` row gets resolved.

Faults (see `Faults`), decided after every check passed: `error_503` is Laravel's
maintenance answer (503 `{"message": "Service Unavailable"}`), refused before anything
happens; `error_500`, `proxy_503` (a load balancer's HTML 503 page), `drop` and `slow`
happen AFTER the message was accepted.
A drop sends the response head with a Content-Length and then raises `ConnectionDropped`
(a subclass of httpx.RemoteProtocolError): in-process the client's call raises it; over
uvicorn the server closes the socket mid-answer, which httpx reports as
RemoteProtocolError.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import hmac
import json
import logging
import random
import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import phonenumbers
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

DEFAULT_KEY = "sandbox-key"
PRICE_PER_MESSAGE = 0.05  # USD, what /user/me counts a message as
UNLIMITED_BALANCE_USD = 1_000_000.0  # /user/me when the balance is unlimited
DAY = 24 * 3600.0  # the messaging limit counts unique recipients per rolling 24 h

# Fixture ids.
DEMO_SENDER_ID = 12
DEMO_TEMPLATE_ID = 45  # approved, {{1}} customer_name and {{2}} date
NO_VARIABLES_TEMPLATE_ID = 46
PENDING_TEMPLATE_ID = 47
REJECTED_TEMPLATE_ID = 48
UNSYNCED_TEMPLATE_ID = 49  # approved, but every send gets TEMPLATE_NOT_SYNCED
# One name in two languages, as WhatsApp allows: "welcome" alone is ambiguous.
WELCOME_EN_TEMPLATE_ID = 41
WELCOME_ES_TEMPLATE_ID = 42
OFFLINE_SENDER_ID = 13
RED_SENDER_ID = 14
SMALL_LIMIT_SENDER_ID = 15
SMALL_MESSAGING_LIMIT = 3
NO_ASSISTANT_SENDER_ID = 16
VOICE_LIMIT_SENDER_ID = 17
UNKNOWN_SENDER_ID = 999  # no such sender
# The one approved template without variables of each fixture sender.
PLAIN_TEMPLATE_OF = {
    DEMO_SENDER_ID: NO_VARIABLES_TEMPLATE_ID,
    OFFLINE_SENDER_ID: 130,
    RED_SENDER_ID: 140,
    SMALL_LIMIT_SENDER_ID: 150,
    NO_ASSISTANT_SENDER_ID: 160,
    VOICE_LIMIT_SENDER_ID: 170,
}

# Magic phones, Twilio-style test numbers that phonenumbers accepts as valid.
TWILIO_ERROR_PHONE = "+15005550009"
TWILIO_ERROR_CODE = "TWILIO_ERROR_21610"  # the recipient unsubscribed (replied STOP)
UNKNOWN_ERROR_PHONE = "+15005550002"
INVALID_PHONE_EXAMPLE = "+1234567890"  # too short: INVALID_PHONE
MAGIC_PHONES = {
    TWILIO_ERROR_PHONE: (TWILIO_ERROR_CODE, "Attempt to send to unsubscribed recipient"),
    UNKNOWN_ERROR_PHONE: ("UNKNOWN_ERROR", "An unknown error occurred while sending"),
}

# Fault names, as recorded in `Message.fault`.
ERROR_500, ERROR_503, PROXY_503 = "error_500", "error_503", "proxy_503"
DROP, SLOW = "drop", "slow"

SERVER_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Server Error</title></head>"
    "<body><h1>500 | Server Error</h1></body></html>"
)
# What Laravel answers a JSON request in maintenance mode (`php artisan down`).
MAINTENANCE_BODY = {"message": "Service Unavailable"}
# A proxy's or load balancer's own 503, e.g. when the application's answer came too late.
PROXY_503_PAGE = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")
E164 = re.compile(r"\+[1-9]\d{1,14}")


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the app for the `drop` fault, after the message was accepted."""


@dataclass(frozen=True)
class Sender:
    """A WhatsApp sender; `error_code` makes every send from it fail with that 422 code."""

    id: int
    phone_number: str
    display_name: str
    status: str = "online"  # online | offline
    quality_rating: str = "GREEN"  # GREEN | YELLOW | RED
    messaging_limit: int | None = 1000  # unique recipients per 24 h; None: unlimited
    error_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        limit = self.messaging_limit
        return {
            "id": self.id,
            "phone_number": self.phone_number,
            "display_name": self.display_name,
            "status": self.status,
            "quality_rating": self.quality_rating,
            "messaging_limit": limit,
            "messaging_limit_formatted": "Unlimited" if limit is None else f"{limit:,} / 24hr",
        }


@dataclass(frozen=True)
class Template:
    """A message template of one sender; placeholders are the `{{n}}` of `body_text`."""

    id: int
    sender_id: int
    name: str
    body_text: str
    variables: tuple[str, ...] = ()  # names of {{1}}, {{2}}... in order
    status: str = "approved"  # approved | pending | rejected
    language: str = "en"
    category: str = "marketing"
    error_code: str | None = None  # every send with it fails with this 422 code

    @property
    def placeholders(self) -> list[int]:
        return sorted({int(n) for n in PLACEHOLDER.findall(self.body_text)})

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "status": self.status,
            "body_text": self.body_text,
            "variables": list(self.variables),
            "has_variables": bool(self.placeholders),
        }


def default_senders() -> list[Sender]:
    """The built-in senders listed in the module docstring."""
    return [
        Sender(12, "+14155551234", "Acme Support", messaging_limit=10_000),
        Sender(13, "+14155551313", "Acme Night Desk", status="offline"),
        Sender(14, "+14155551414", "Acme Promotions", quality_rating="RED", messaging_limit=None),
        Sender(15, "+14155551515", "Acme New Number", "online", "YELLOW", SMALL_MESSAGING_LIMIT),
        Sender(16, "+14155551616", "Acme Bot", error_code="NO_ASSISTANT_CONFIGURED"),
        Sender(17, "+14155551717", "Acme Calls", error_code="VOICE_CALL_LIMIT_NOT_MET"),
    ]


def default_templates() -> list[Template]:
    """The built-in templates listed in the module docstring."""
    reminder = "Hi {{1}}, this is a reminder of your appointment on {{2}}. Reply STOP to opt out."
    thanks = "Thank you for choosing Acme!"
    welcome_en = "Hi {{1}}, welcome to Acme! Your first order ships on {{2}}."
    welcome_es = "Hola {{1}}, ¡bienvenido a Acme! Tu primer pedido sale el {{2}}."
    templates = [
        Template(45, 12, "appointment_reminder", reminder, ("customer_name", "date")),
        Template(47, 12, "spring_sale", "Hi {{1}}, our sale starts now!", ("name",), "pending"),
        Template(48, 12, "win_big", "Hi {{1}}, you won!", ("name",), status="rejected"),
        Template(49, 12, "new_hours", thanks, error_code="TEMPLATE_NOT_SYNCED"),
        Template(41, 12, "welcome", welcome_en, ("customer_name", "date")),
        Template(42, 12, "welcome", welcome_es, ("customer_name", "date"), language="es"),
    ]
    plain = [Template(t, s, "thank_you", thanks) for s, t in PLAIN_TEMPLATE_OF.items()]
    return templates + plain


@dataclass(frozen=True)
class Faults:
    """Injected failures of sends that passed every check.

    Probabilities are drawn per request from the sandbox's seeded RNG (500, then 503,
    proxy 503, drop, slow; their sum should stay <= 1). A phone in one of the `*_phones` sets gets
    that fault on every send, whatever the probabilities. Replace `sandbox.faults` to
    change them mid-test.
    """

    error_500: float = 0.0  # accepted, then a 500 with an HTML body
    error_503: float = 0.0  # not accepted: the API's maintenance 503
    proxy_503: float = 0.0  # accepted, then a proxy's 503 with an HTML body
    drop: float = 0.0  # accepted, then the connection drops mid-answer
    slow: float = 0.0  # accepted, then the answer waits `slow_seconds`
    slow_seconds: float = 30.0
    error_500_phones: Collection[str] = frozenset()
    error_503_phones: Collection[str] = frozenset()
    proxy_503_phones: Collection[str] = frozenset()
    drop_phones: Collection[str] = frozenset()
    slow_phones: Collection[str] = frozenset()

    def forced(self, phone: str) -> str | None:
        forced = {
            ERROR_500: self.error_500_phones,
            ERROR_503: self.error_503_phones,
            PROXY_503: self.proxy_503_phones,
            DROP: self.drop_phones,
            SLOW: self.slow_phones,
        }
        return next((name for name, phones in forced.items() if phone in phones), None)

    def drawn(self, draw: float) -> str | None:
        odds = [(ERROR_500, self.error_500), (ERROR_503, self.error_503)]
        odds += [(PROXY_503, self.proxy_503), (DROP, self.drop), (SLOW, self.slow)]
        for name, probability in odds:
            if draw < probability:
                return name
            draw -= probability
        return None


@dataclass
class Message:
    """One accepted message. `time` is the sandbox clock (time.monotonic by default)."""

    phone: str
    name: str
    sender_id: int
    template_id: int
    variables: dict[str, str]
    time: float
    conversation_id: int
    message_id: int
    whatsapp_message_id: int
    message_sid: str
    fault: str | None = None  # error_500, proxy_503, drop or slow: what happened after acceptance
    answered: bool = False  # the sandbox sent its whole answer (the 200, or the error page)


@dataclass(frozen=True)
class ApiRequest:
    """One authenticated /api request, as it arrived (before any latency)."""

    key: str
    method: str
    path: str
    time: float
    latency: float  # seconds waited before answering (0 for a 429)
    rate_limited: bool


class Sandbox:
    """The fake API. `.app` is its Starlette app; the rest is its state and settings."""

    def __init__(
        self,
        *,
        keys: Iterable[str] = (DEFAULT_KEY,),
        rate: float = 5,
        latency: float | tuple[float, float] | Callable[[], float] = 0.0,
        faults: Faults | None = None,
        balance: int | None = None,
        seed: int = 0,
        senders: Iterable[Sender] | None = None,
        templates: Iterable[Template] | None = None,
        clock: Callable[[], float] = time.monotonic,
        webhook: WebhookEmitter | None = None,
    ) -> None:
        self.keys = frozenset(keys)
        self.rate = rate  # requests per rolling second per key, across endpoints
        # Seconds, a (min, max) range drawn uniformly, or a function giving each answer's.
        self.latency = latency
        self.webhook = webhook  # posts delivery status events of accepted messages
        self.faults = faults or Faults()
        self.balance = balance  # messages the account can still pay for; None: unlimited
        self.senders = {s.id: s for s in (default_senders() if senders is None else senders)}
        chosen = default_templates() if templates is None else templates
        self.templates = {t.id: t for t in chosen}
        self.messages: list[Message] = []
        self.requests: list[ApiRequest] = []
        self._clock = clock
        # Separate streams, so that e.g. adding latency does not change which sends fault.
        self._latency_rng = random.Random(f"{seed}/latency")
        self._fault_rng = random.Random(f"{seed}/faults")
        self._sid_rng = random.Random(f"{seed}/sids")
        self._admitted: dict[str, deque[float]] = defaultdict(deque)
        self._recipients: dict[int, dict[str, float]] = defaultdict(dict)  # first contact
        self._conversations: dict[tuple[int, str], int] = {}
        self._next_ids = {"message": 500, "whatsapp": 800, "conversation": 1000}
        self.app = Starlette(routes=self._routes())
        _load_phone_metadata()

    # -- what tests ask -------------------------------------------------------------

    def messages_to(self, phone: str) -> int:
        """How many messages were accepted for `phone`."""
        return sum(1 for m in self.messages if m.phone == phone)

    def counts_by_phone(self) -> Counter[str]:
        """Accepted messages per phone; `max(...values())` <= 1 means no one got two."""
        return Counter(m.phone for m in self.messages)

    def duplicates(self) -> dict[str, int]:
        """Phones that were accepted more than once, with their counts."""
        return {phone: n for phone, n in self.counts_by_phone().items() if n > 1}

    @property
    def rate_limited(self) -> int:
        """How many requests got a 429."""
        return sum(1 for r in self.requests if r.rate_limited)

    def max_in_rolling_second(self, key: str | None = None) -> int:
        """Most arrivals (429s included) in any half-open 1 s window; key None: all keys."""
        times = sorted(r.time for r in self.requests if key is None or r.key == key)
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def top_up(self, messages: int) -> None:
        """Let the account pay for `messages` more (no effect when unlimited)."""
        if self.balance is not None:
            self.balance += messages

    def stats(self) -> dict[str, Any]:
        """The numbers GET /sandbox/stats shows."""
        counts = self.counts_by_phone()
        return {
            "requests": len(self.requests),
            "rate_limited": self.rate_limited,
            "max_in_rolling_second": self.max_in_rolling_second(),
            "accepted": len(self.messages),
            "most_messages_to_one_phone": max(counts.values(), default=0),
            "balance": self.balance,
        }

    # -- routing and the guard every /api call passes ---------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/api/user/whatsapp/send", self._api(self._send), methods=["POST"]),
            Route("/api/user/whatsapp/senders", self._api(self._list_senders)),
            Route(
                "/api/user/whatsapp/senders/{sender_id:int}/templates",
                self._api(self._list_templates),
            ),
            Route("/api/user/me", self._api(self._me)),
            Route("/sandbox/messages", self._inspect_messages),
            Route("/sandbox/stats", self._inspect_stats),
            Route("/sandbox/requests", self._inspect_requests),
            Route("/sandbox/top-up", self._inspect_top_up, methods=["POST"]),
        ]

    def _api(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Wrap an endpoint in authentication, the rate limit and the latency."""

        async def endpoint(request: Request) -> Response:
            arrived = self._clock()  # before anything else: this is what the limit sees
            key = _bearer_key(request)
            if key not in self.keys:
                return JSONResponse({"message": "Unauthenticated."}, 401)
            admitted = self._admit(key, arrived)
            delay = self._draw_latency() if admitted else 0.0
            record = ApiRequest(key, request.method, request.url.path, arrived, delay, not admitted)
            self.requests.append(record)
            if not admitted:
                return _too_many(self.rate)
            await anyio.sleep(delay)
            return await handler(request)

        return endpoint

    def _admit(self, key: str, arrived: float) -> bool:
        """True if fewer than `rate` requests of `key` were admitted in the last second."""
        window = self._admitted[key]
        while window and arrived - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.rate:
            return False
        window.append(arrived)
        return True

    def _draw_latency(self) -> float:
        if callable(self.latency):
            return self.latency()
        if isinstance(self.latency, tuple):
            return self._latency_rng.uniform(*self.latency)
        return float(self.latency)

    # -- the send ---------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        body = await _json_or_none(request)
        errors = _validation_errors(body)
        if errors:
            return _validation_failed(errors)
        refusal = self._refusal(body)
        if refusal:
            return _error(*refusal)
        fault = self.faults.forced(body["recipient_phone"])
        if fault is None:
            fault = self.faults.drawn(self._fault_rng.random())
        if fault == ERROR_503:  # maintenance: refused before anything happened
            return JSONResponse(MAINTENANCE_BODY, 503)
        return await self._answer(request, self._accept(body, fault))

    def _refusal(self, body: dict[str, Any]) -> tuple[int, str, str] | None:
        """(status, code, message) of the first check the send fails, or None."""
        sender = self.senders.get(int(body["sender_id"]))
        if sender is None:
            return 404, "SENDER_NOT_FOUND", "Sender not found or does not belong to you"
        template = self.templates.get(int(body["template_id"]))
        if template is None or template.sender_id != sender.id:
            return 404, "TEMPLATE_NOT_FOUND", "Template not found or does not belong to this sender"
        if self.balance is not None and self.balance <= 0:
            message = "Insufficient balance. Please top up your account."
            return 402, "INSUFFICIENT_BALANCE", message
        return (
            _sender_refusal(sender)
            or _template_refusal(template, body.get("variables") or {})
            or _phone_refusal(body["recipient_phone"])
            or self._limit_refusal(sender, body["recipient_phone"])
        )

    def _limit_refusal(self, sender: Sender, phone: str) -> tuple[int, str, str] | None:
        """MESSAGING_LIMIT_UNAVAILABLE when `phone` would be one new recipient too many."""
        if sender.messaging_limit is None:
            return None
        contacted = self._recipients[sender.id]
        now = self._clock()
        while contacted and now - next(iter(contacted.values())) >= DAY:
            del contacted[next(iter(contacted))]  # oldest first contact first: dicts keep order
        if phone in contacted or len(contacted) < sender.messaging_limit:
            return None
        limit = f"{sender.messaging_limit:,} unique recipients / 24hr"
        return 422, "MESSAGING_LIMIT_UNAVAILABLE", f"Messaging limit reached ({limit})"

    def _accept(self, body: dict[str, Any], fault: str | None) -> Message:
        """Record the message as sent: from here on it counts, whatever the client hears."""
        sender_id, phone = int(body["sender_id"]), body["recipient_phone"]
        if self.balance is not None:
            self.balance -= 1
        self._recipients[sender_id].setdefault(phone, self._clock())
        message = Message(
            phone=phone,
            name=body["recipient_name"],
            sender_id=sender_id,
            template_id=int(body["template_id"]),
            variables=dict(body.get("variables") or {}),
            time=self._clock(),
            conversation_id=self._conversation_id(sender_id, phone),
            message_id=self._next("message"),
            whatsapp_message_id=self._next("whatsapp"),
            message_sid=f"SM{self._sid_rng.getrandbits(128):032x}",
            fault=fault,
        )
        self.messages.append(message)
        if self.webhook is not None:
            self.webhook.accepted(message, self.senders[sender_id].phone_number)
        return message

    def _conversation_id(self, sender_id: int, phone: str) -> int:
        key = (sender_id, phone)
        if key not in self._conversations:
            self._conversations[key] = self._next("conversation")
        return self._conversations[key]

    def _next(self, counter: str) -> int:
        self._next_ids[counter] += 1
        return self._next_ids[counter]

    async def _answer(self, request: Request, message: Message) -> Response:
        """The answer to an accepted send, as its fault decides."""
        if message.fault == DROP:
            return _DroppedAnswer()
        if message.fault == SLOW and await _client_left(request, self.faults.slow_seconds):
            return _NoAnswer()  # nobody is listening any more: answer nothing
        message.answered = True
        if message.fault == ERROR_500:
            return HTMLResponse(SERVER_ERROR_PAGE, 500)
        if message.fault == PROXY_503:
            return HTMLResponse(PROXY_503_PAGE, 503)
        return JSONResponse(
            {
                "success": True,
                "conversation_id": message.conversation_id,
                "message_id": message.message_id,
                "whatsapp_message_id": message.whatsapp_message_id,
                "message_sid": message.message_sid,
                "status": "queued",
            }
        )

    # -- the other endpoints ----------------------------------------------------------

    async def _list_senders(self, request: Request) -> Response:
        wanted = request.query_params.get("status", "online")
        if wanted not in ("online", "offline", "all"):
            return _validation_failed({"status": ["The selected status is invalid."]})
        chosen = [s for s in self.senders.values() if wanted in ("all", s.status)]
        return JSONResponse({"data": [s.as_json() for s in chosen]})

    async def _list_templates(self, request: Request) -> Response:
        sender = self.senders.get(request.path_params["sender_id"])
        if sender is None:
            return _error(404, "SENDER_NOT_FOUND", "Sender not found or does not belong to you")
        wanted = request.query_params.get("status", "approved")
        if wanted not in ("approved", "pending", "rejected", "all"):
            return _validation_failed({"status": ["The selected status is invalid."]})
        chosen = [
            t
            for t in self.templates.values()
            if t.sender_id == sender.id and wanted in ("all", t.status)
        ]
        return JSONResponse({"data": [t.as_json() for t in chosen]})

    async def _me(self, request: Request) -> Response:
        usd = UNLIMITED_BALANCE_USD if self.balance is None else self.balance * PRICE_PER_MESSAGE
        return JSONResponse(
            {"name": "Sandbox User", "email": "sandbox@example.com", "total_balance": round(usd, 2)}
        )

    async def _inspect_messages(self, request: Request) -> Response:
        return JSONResponse({"data": [asdict(m) for m in self.messages]})

    async def _inspect_requests(self, request: Request) -> Response:
        return JSONResponse({"data": [asdict(r) for r in self.requests]})

    async def _inspect_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _inspect_top_up(self, request: Request) -> Response:
        body = await _json_or_none(request)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, int) or isinstance(messages, bool) or messages < 0:
            return _validation_failed({"messages": ["The messages field must be an integer >= 0."]})
        self.top_up(messages)
        return JSONResponse({"balance": self.balance})


# -- checks that need no state ---------------------------------------------------------


def _sender_refusal(sender: Sender) -> tuple[int, str, str] | None:
    if sender.status != "online":
        return 422, "SENDER_OFFLINE", "Sender is offline and cannot send messages"
    if sender.error_code:
        return 422, sender.error_code, f"Sender cannot send: {sender.error_code}"
    return None


def _template_refusal(template: Template, variables: dict[str, str]) -> tuple[int, str, str] | None:
    if template.status != "approved":
        return 422, "TEMPLATE_NOT_APPROVED", f"Template is not approved ({template.status})"
    if template.error_code:
        return 422, template.error_code, f"Template cannot be used: {template.error_code}"
    problem = _variables_problem(template, variables)
    if problem:
        return 422, "TEMPLATE_MISMATCH", f"Template variables do not match: {problem}"
    return None


def _phone_refusal(phone: str) -> tuple[int, str, str] | None:
    if not E164.fullmatch(phone) or not _valid_number(phone):
        return 422, "INVALID_PHONE", f"Invalid phone number: {phone}"
    if phone in MAGIC_PHONES:
        return 422, *MAGIC_PHONES[phone]
    return None


def _load_phone_metadata() -> None:
    """phonenumbers reads a region's metadata on first use, taking up to ~100 ms: do it now,
    not while a send is being answered (it would stall every request in flight)."""
    for example in ("+14155550100", "+447911123456", "+33612345678", "+4915123456789"):
        phonenumbers.is_valid_number(phonenumbers.parse(example))


def _valid_number(phone: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return False


def _variables_problem(template: Template, variables: dict[str, str]) -> str | None:
    """Why `variables` do not fill the template's placeholders, or None if they do."""
    positions = template.placeholders
    filled: dict[int, str] = {}
    for key, value in variables.items():
        position = _position_of(key, template)
        if position not in positions:
            return f"unknown variable {key!r}"
        if position in filled:
            return f"{{{{{position}}}}} is given twice"
        filled[position] = value
    missing = [f"{{{{{p}}}}}" for p in positions if p not in filled]
    if missing:
        return "missing " + ", ".join(missing)
    for position, value in filled.items():
        problem = _value_problem(value)
        if problem:
            return f"{{{{{position}}}}} {problem}"
    body = PLACEHOLDER.sub(lambda m: filled[int(m.group(1))], template.body_text)
    return "the filled body is longer than 1,024 characters" if len(body) > 1024 else None


def _position_of(key: str, template: Template) -> int | None:
    if key.isdigit():
        return int(key)
    if key in template.variables:
        return template.variables.index(key) + 1
    return None


def _value_problem(value: str) -> str | None:
    """WhatsApp's rules for one parameter value."""
    if not value.strip():
        return "is empty"
    if "\n" in value or "\t" in value:
        return "contains a newline or a tab"
    if "     " in value:
        return "contains more than four consecutive spaces"
    if len(value) > 1600:
        return "is longer than 1,600 characters"
    return None


def _validation_errors(body: object) -> dict[str, list[str]]:
    """Laravel-style field errors of a send's body (an unreadable body counts as empty)."""
    data = body if isinstance(body, dict) else {}
    errors: dict[str, list[str]] = {}
    for name in ("sender_id", "template_id"):
        value = data.get(name)
        if value is None:
            errors[name] = [f"The {_label(name)} field is required."]
        elif not _is_integer(value):
            errors[name] = [f"The {_label(name)} field must be an integer."]
    for name in ("recipient_phone", "recipient_name"):
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[name] = [f"The {_label(name)} field is required."]
        elif not isinstance(value, str):
            errors[name] = [f"The {_label(name)} field must be a string."]
    name = data.get("recipient_name")
    if isinstance(name, str) and len(name) > 255:
        errors["recipient_name"] = [
            "The recipient name field must not be greater than 255 characters."
        ]
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        errors["variables"] = ["The variables field must be an array."]
    for key, value in (variables if isinstance(variables, dict) else {}).items():
        if not isinstance(value, str):
            errors[f"variables.{key}"] = [f"The variables.{key} field must be a string."]
    return errors


def _label(name: str) -> str:
    return name.replace("_", " ")


def _is_integer(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


# -- answers ---------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message, "error_code": code}, status)


def _validation_failed(errors: dict[str, list[str]]) -> JSONResponse:
    """Laravel's 422: the first message, '(and N more errors)', and every field's list."""
    first = next(iter(errors.values()))[0]
    more = len(errors) - 1
    if more:
        first += f" (and {more} more error{'s' if more > 1 else ''})"
    return JSONResponse({"message": first, "errors": errors}, 422)


def _too_many(rate: float) -> JSONResponse:
    headers = {"Retry-After": "1", "X-RateLimit-Limit": f"{rate:g}", "X-RateLimit-Remaining": "0"}
    return JSONResponse({"message": "Too Many Attempts."}, 429, headers=headers)


class _DroppedAnswer(Response):
    """Start an answer whose body never comes, then fail: the connection drops."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"200")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # Over uvicorn this makes the server close the socket mid-answer (its log line is
        # filtered out, see _hide_intended_drops); in-process the client gets it raised.
        raise ConnectionDropped("the sandbox dropped the connection after accepting the message")


class _NoAnswer(Response):
    """Send nothing: the client has already gone."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


async def _client_left(request: Request, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as the client disconnects.

    Waiting on the disconnect instead of sleeping blindly lets uvicorn shut down
    promptly once a timed-out client has hung up. In-process, httpx only reports a
    disconnect after the answer, so this is a plain wait there.
    """
    with anyio.move_on_after(seconds):
        while (await request.receive())["type"] != "http.disconnect":
            pass
        return True
    return False


def _bearer_key(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


async def _json_or_none(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:  # includes JSONDecodeError and bad UTF-8
        return None


# -- the delivery status webhook ------------------------------------------------------


def sign(body: bytes, secret: bytes) -> str:
    """The X-Signature-256 value of a webhook body: `sha256=` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def status_event(
    message: Message, sender_phone: str, status: str, error: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A `message_status` event of one message, as the webhook posts it."""
    return {
        "event": "message_status",
        "whatsapp_message_id": message.whatsapp_message_id,
        "message_sid": message.message_sid,
        "conversation_id": message.conversation_id,
        "to": message.phone,
        "from": sender_phone,
        "direction": "outbound",
        "status": status,
        "error_code": error[0] if error else None,
        "error_message": error[1] if error else None,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


UNDELIVERABLE = ("131026", "Message undeliverable")  # WhatsApp's code for an unreachable phone


class WebhookEmitter:
    """Posts signed status events of accepted messages to `url`, from a thread of its own.

    Each accepted message gets `sent` after `delays[0]` seconds, then `delivered` (or
    `failed`, for a `failed` share drawn from `seed`, or phones in `failed_phones`) after
    `delays[1]`, then `read` for a `read` share after `delays[2]`. A delivery answered
    other than 2xx is tried again (`tries` in all), as webhook senders do.
    `posted` lists (status, HTTP status or None) of every try; `wait_idle` waits until
    everything scheduled was posted. Use it as a context manager, or call `close`.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        delays: tuple[float, float, float] = (0.05, 0.2, 0.5),
        failed: float = 0.1,
        read: float = 0.7,
        failed_phones: Collection[str] = frozenset(),
        seed: int = 0,
        tries: int = 3,
    ) -> None:
        self.url = url
        self.delays = delays
        self.failed = failed
        self.read = read
        self.failed_phones = frozenset(failed_phones)
        self.tries = tries
        self.posted: list[tuple[str, int | None]] = []
        self._secret = secret
        self._rng = random.Random(f"{seed}/webhook")
        self._due: list[tuple[float, int, bytes, str]] = []  # (when, order, body, status)
        self._order = 0
        self._busy = 0  # events taken off the heap and being posted
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._post_loop, name="webhook", daemon=True)
        self._thread.start()

    def __enter__(self) -> WebhookEmitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def accepted(self, message: Message, sender_phone: str) -> None:
        """Schedule the events of a message the sandbox just accepted."""
        fails = message.phone in self.failed_phones or self._rng.random() < self.failed
        reads = self._rng.random() < self.read
        plan = [("sent", None), ("failed", UNDELIVERABLE) if fails else ("delivered", None)]
        if reads and not fails:
            plan.append(("read", None))
        now = time.monotonic()
        with self._changed:
            for delay, (status, error) in zip(self.delays, plan, strict=False):
                body = json.dumps(status_event(message, sender_phone, status, error)).encode()
                self._order += 1
                heapq.heappush(self._due, (now + delay, self._order, body, status))
            self._changed.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled event was posted; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        """Stop posting; events not yet due are dropped."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=5)

    def _post_loop(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while (item := self._next_due()) is not None:
                body, status = item
                try:
                    self._deliver(http, body, status)
                finally:
                    with self._changed:
                        self._busy -= 1
                        self._changed.notify_all()

    def _next_due(self) -> tuple[bytes, str] | None:
        """Wait for the next event's time; None once closed."""
        with self._changed:
            while not self._closed:
                wait = self._due[0][0] - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    _, _, body, status = heapq.heappop(self._due)
                    self._busy += 1
                    return body, status
                self._changed.wait(wait)
        return None

    def _deliver(self, http: httpx.Client, body: bytes, status: str) -> None:
        headers = {"Content-Type": "application/json", "X-Signature-256": sign(body, self._secret)}
        for attempt in range(self.tries):
            try:
                answer = http.post(self.url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                answer = None
            self.posted.append((status, answer))
            if answer is not None and 200 <= answer < 300:
                return
            if attempt + 1 < self.tries:
                time.sleep(0.2 * 2**attempt)


# -- serving on loopback ---------------------------------------------------------------


class _HideIntendedDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for each drop we inject on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_DROP_FILTER = _HideIntendedDrops()


def _hide_intended_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)


def serve(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = True
) -> None:
    """Serve the sandbox with uvicorn until interrupted (Ctrl-C)."""
    config = uvicorn.Config(
        sandbox.app, host=host, port=port, access_log=access_log, lifespan="off"
    )
    _hide_intended_drops()  # after Config: it (re)configures uvicorn's loggers
    uvicorn.Server(config).run()


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that tells another thread when its startup is over."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets)
        finally:  # also when binding failed (uvicorn then exits the thread)
            self.startup_over.set()


def _run_quietly(server: uvicorn.Server) -> None:
    with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind: running() says so
        server.run()


@contextlib.contextmanager
def running(
    sandbox: Sandbox | Starlette,
    port: int = 0,
    *,
    access_log: bool = False,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve the sandbox (or another Starlette app, e.g. a webhook receiver) on 127.0.0.1
    in a background thread; yield its base URL."""
    config = uvicorn.Config(
        sandbox.app if isinstance(sandbox, Sandbox) else sandbox,
        host="127.0.0.1",
        port=port,
        access_log=access_log,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,  # a still-waiting slow answer must not hold us up
    )
    _hide_intended_drops()
    server = _ThreadServer(config)
    thread = threading.Thread(target=_run_quietly, args=(server,), name="sandbox", daemon=True)
    thread.start()
    try:
        if not server.startup_over.wait(startup_timeout) or not server.started:
            raise RuntimeError(f"the sandbox server did not start on 127.0.0.1:{port}")
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
