"""Every rule that keeps the console safe, in one file.

- It binds loopback unless a password is set (`check_bind`).
- With a password, every page but the login (and the signed webhook, which has its own
  proof) needs a signed session cookie: HttpOnly, SameSite=lax, Secure over https.
- Every form that changes something carries the session's CSRF token (`form_of`).
- Request bodies are size-limited (`BodyLimit`); uploads are written with mode 600.
- Every page has a Content-Security-Policy: no inline script, nothing from elsewhere.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import TYPE_CHECKING

from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaign.client import is_loopback
from campaign.errors import UsageError

if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

PASSWORD_ENV = "CAMPAIGN_CONSOLE_PASSWORD"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Paths served without a login: the login itself, the static files, and the webhook
# (it proves itself with its signature).
OPEN_PATHS = ("/login", "/static/", "/webhooks/")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$", re.IGNORECASE)


def check_bind(host: str, password: str | None) -> None:
    """Refuse to serve a non-loopback address without a password."""
    if not is_loopback(host) and not password:
        raise UsageError(
            f"refusing to serve on {host} without a password: give --password-file or "
            f"{PASSWORD_ENV}, or bind 127.0.0.1"
        )


def parse_size(text: str) -> int:
    """Bytes from a size such as 50MB, 512K or 1000000."""
    found = SIZE.match(text)
    if not found:
        raise UsageError(f"--max-upload must be a size such as 50MB, not {text!r}")
    number, unit = float(found[1]), found[2].upper()
    return int(number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# --- CSRF: one token per session, checked in one place ----------------------------------


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form carries it."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


class CsrfRefused(Exception):
    """A form that changes something came without the session's token."""


async def form_of(request: Request, max_part_size: int = 1 << 20) -> FormData:
    """The posted form, once its CSRF token is checked: every changing route reads it here."""
    form = await request.form(max_files=1, max_fields=50, max_part_size=max_part_size)
    given = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not (isinstance(given, str) and expected and hmac.compare_digest(given, expected)):
        raise CsrfRefused
    return form


# --- middleware --------------------------------------------------------------------------


class SecurityHeaders:
    """A Content-Security-Policy (unless the page set its own) and friends on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                headers.append((b"x-frame-options", b"DENY"))
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 before reading any of it.

    A body must declare its length (every browser's form post does): the server holds
    the client to it, so the declared length is the body's size. One without (chunked)
    gets 411, except on the `chunked_ok` paths: the webhook, whose senders may stream
    their bodies, and which stops reading its own past its cap (webhook.MAX_BODY).
    """

    def __init__(self, app: ASGIApp, limit: int, chunked_ok: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.chunked_ok = chunked_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if not length and scope.get("path") in self.chunked_ok:
            await self.app(scope, receive, send)
            return
        if not length.isdigit():
            answer = PlainTextResponse("A request body must declare its length.", 411)
        elif int(length) > self.limit:
            mb = self.limit / (1 << 20)
            answer = PlainTextResponse(
                f"The upload is larger than this console accepts ({mb:g} MB, --max-upload).",
                status_code=413,
            )
        else:
            await self.app(scope, receive, send)
            return
        await answer(scope, receive, send)


class LoginGate:
    """With a password set, every path but OPEN_PATHS needs a logged-in session."""

    def __init__(self, app: ASGIApp, required: bool) -> None:
        self.app = app
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.required
            or path.startswith(OPEN_PATHS)
            or scope["session"].get("user")
        ):
            await self.app(scope, receive, send)
            return
        if path.startswith("/api/"):
            answer = PlainTextResponse("log in first", status_code=401)
        else:
            answer = RedirectResponse("/login", status_code=303)
        await answer(scope, receive, send)


class Sessions:
    """Starlette's signed session cookie (HttpOnly, SameSite=lax), Secure over https.

    Behind a TLS proxy on this host, uvicorn takes the scheme from X-Forwarded-Proto.
    """

    def __init__(self, app: ASGIApp, secret_key: str) -> None:
        options = dict(session_cookie="campaign_console", same_site="lax", max_age=12 * 3600)
        self.plain = SessionMiddleware(app, secret_key, **options)  # type: ignore[arg-type]
        self.secure = SessionMiddleware(app, secret_key, https_only=True, **options)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await chosen(scope, receive, send)
