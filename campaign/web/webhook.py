"""`POST /webhooks/autocalls`: the autocalls delivery status webhook, for `campaign serve`.

The route needs no login: its proof is the signature. `X-Signature-256` must be the hex
HMAC-SHA256 of the raw body with the shared secret, with or without a `sha256=` prefix,
compared in constant time; a bad or missing one gets 401 and nothing is stored.

A signed delivery is kept whatever it holds (deliveries.record_event), and the answer
is 200 only once it is durably recorded: a store that cannot take it now gets 503, and
the sender delivers it again later. A body that is not JSON, or not a message_status
event, is kept too and gets 200: it came from the sender, and sending it again would not
make it readable (a person can look at it in delivery_events). A body over MAX_BODY
bytes gets 413 unread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from campaign import deliveries
from campaign.config import read_secret
from campaign.errors import StoreUnavailable
from campaign.store import Store

PATH = "/webhooks/autocalls"
SIGNATURE_HEADER = "X-Signature-256"
SECRET_ENV = "AUTOCALLS_WEBHOOK_SECRET"
MAX_BODY = 1024 * 1024  # bytes; a status event is a few hundred
RETRY_AFTER = "30"  # seconds, with a 503

log = logging.getLogger("campaign.webhook")


def webhook_routes(store: Store, secret: bytes) -> list[Route]:
    """The webhook's one route, over this store, checking signatures with `secret`."""
    if not secret:
        raise ValueError("the webhook needs a secret")

    async def receive(request: Request) -> JSONResponse:
        body = await _body(request)
        if body is None:
            return JSONResponse({"error": "the body is too large"}, 413)
        if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("webhook: refused a delivery with a bad or missing signature")
            return JSONResponse({"error": "bad or missing signature"}, 401)
        try:
            # In a worker thread: the console's campaigns send from this event loop.
            received = await anyio.to_thread.run_sync(deliveries.record_event, store, body)
        except StoreUnavailable as exc:
            log.warning("webhook: the store cannot record an event now (%s)", exc.reason)
            return JSONResponse(
                {"error": "the store is unavailable; deliver it again later"},
                503,
                headers={"Retry-After": RETRY_AFTER},
            )
        log.info(
            "webhook: event %s %s (row %s)%s",
            received.event_id,
            received.outcome,
            received.row_id,
            ", a replay" if received.replay else "",
        )
        return JSONResponse({"recorded": True, "outcome": received.outcome})

    return [Route(PATH, receive, methods=["POST"])]


def signature_ok(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is the hex HMAC-SHA256 of `body` (a `sha256=` prefix allowed)."""
    if not signature:
        return False
    given = signature.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode("ascii", "replace"))


def read_webhook_secret(path: Path | None = None) -> bytes | None:
    """The webhook's secret: the file's text (stripped) if a path is given, else
    AUTOCALLS_WEBHOOK_SECRET; None when neither is set (the webhook stays off)."""
    secret = read_secret(path, SECRET_ENV, "webhook secret")
    return secret.encode() if secret else None


async def _body(request: Request) -> bytes | None:
    """The raw body, or None past MAX_BODY bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
