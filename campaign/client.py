"""The autocalls API over httpx: requests in, `SendOutcome` out.

Every request takes a turn of the account's limiter first, so none can bypass the rate.
A send never raises: whatever happens on the wire becomes a `SendOutcome` whose fate
`outcomes.fate_of` decides. The API key lives only in the client's headers, and every
text the server wrote passes the client's `Redactor` as it is read (`read_answer`,
`_describe`), so a server that echoes the key cannot put it in an outcome, an
`ApiError`, a JSON answer or httpx's log lines.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from campaign import outcomes
from campaign.errors import AccountPaused, StoreUnavailable, UsageError
from campaign.limiter import AccountLimiter, Interrupted
from campaign.model import Recipient, SendOutcome
from campaign.redact import Redactor

DEFAULT_BASE_URL = "https://app.autocalls.ai"
RAW_BODY_LIMIT = 2000  # characters of an unexpected body kept for the record
GET_ATTEMPTS = 5  # tries of a read that met a 429 or 503
# What Laravel answers a JSON request while the application is down for maintenance
# (`php artisan down`): PreventRequestsDuringMaintenance throws HttpException(503,
# "Service Unavailable") before any route runs, and the exception handler renders an
# HTTP exception as {"message": <its message>}. Only this exact answer proves that the
# API refused a send unprocessed; a proxy's 503 (an HTML page, an empty body, other JSON)
# may come after the application sent the message.
MAINTENANCE_STATUS = 503
MAINTENANCE_BODY = {"message": "Service Unavailable"}

# Transport errors, most specific first: which of ours each one is.
TRANSPORT_CODES: list[tuple[type[Exception], str]] = [
    (httpx.ConnectTimeout, outcomes.CONNECT_TIMEOUT),
    (httpx.ConnectError, outcomes.CONNECT_ERROR),
    (httpx.PoolTimeout, outcomes.POOL_TIMEOUT),
    (httpx.ReadTimeout, outcomes.READ_TIMEOUT),
    (httpx.WriteTimeout, outcomes.WRITE_TIMEOUT),
    (httpx.RemoteProtocolError, outcomes.CONNECTION_DROPPED),
    (httpx.ReadError, outcomes.CONNECTION_DROPPED),
]


class ApiError(Exception):
    """A non-send call (senders, templates, account) got an error answer."""

    def __init__(self, status: int | None, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def check_base_url(url: str) -> str:
    """Return the API root for `url`; refuse plain http unless the host is loopback."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"base URL {url!r} is not an http(s) URL")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise UsageError(
            f"base URL {url!r} uses plain http to a non-loopback host; the API key would "
            "travel unencrypted. Use https."
        )
    root = str(parsed).rstrip("/")
    return root.removesuffix("/api")


def account_id(base_url: str, api_key: str) -> str:
    """A hash naming the account: the API root, normalised, and the key; never the key itself.

    `https://HOST`, `https://host/`, `https://host:443/api` are one account, so every
    run, whatever spelling its --base-url has, shares one pace and one history.
    """
    url = httpx.URL(check_base_url(base_url))
    root = f"{url.scheme}://{url.host}:{url.port or ''}{url.path.rstrip('/')}"
    return hashlib.sha256(f"{root}|{api_key}".encode()).hexdigest()[:32]


def is_loopback(host: str) -> bool:
    """A host name or address of this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AutocallsClient:
    """An async client of the autocalls API; use it as `async with`."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_connections: int = 32,
        limiter: AccountLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        root = check_base_url(base_url)
        self.limiter = limiter
        self._redact = Redactor.for_api_key(api_key)
        # httpx logs each answer's reason phrase, which the server chose.
        self._log_filter = _RedactingFilter(self._redact)
        logging.getLogger("httpx").addFilter(self._log_filter)
        # httpx's own transport reports when it is about to write and when it has written.
        self._traced = transport is None or isinstance(transport, httpx.AsyncHTTPTransport)
        self._http = httpx.AsyncClient(
            base_url=f"{root}/api",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
            follow_redirects=False,  # a redirect could carry the key elsewhere
        )

    async def __aenter__(self) -> AutocallsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        logging.getLogger("httpx").removeFilter(self._log_filter)
        await self._http.aclose()

    async def send_template(
        self,
        sender_id: int,
        template_id: int,
        recipient: Recipient,
        before_send: Callable[[], bool] = lambda: True,
        on_written: Callable[[], object] = lambda: None,
    ) -> SendOutcome | None:
        """Send one template message; every failure becomes an outcome, never an exception.

        `before_send` runs once the limiter has given this request its turn, right before
        it leaves; if it returns False nothing is sent and the result is None, as when
        the limiter was interrupted, or the store failed while the turn was being booked.
        `on_written` runs once the request has left (or could not). AccountPaused (the
        account must wait too long for a turn): nothing was sent.
        """
        payload = {
            "sender_id": sender_id,
            "template_id": template_id,
            "recipient_phone": recipient.phone,
            "recipient_name": recipient.name,
            "variables": recipient.variables,
        }
        left: list[float] = []  # when the request was written out, if it was
        try:
            response = await self._request(
                "POST", "/user/whatsapp/send", before_send, on_written, left.append, json=payload
            )
        except AccountPaused:
            raise  # no request left: the caller halts
        except StoreUnavailable:  # booking or confirming the turn, before any byte was written
            on_written()
            return None
        except Exception as exc:  # the outcome table decides: never a crash
            return replace(_transport_outcome(exc, self._redact), left_at=_first(left))
        if response is None:
            return None
        return replace(outcome_of(read_answer(response, self._redact)), left_at=_first(left))

    async def senders(self) -> list[dict[str, Any]]:
        """Every sender of the account, online or not."""
        return await self._get_data("/user/whatsapp/senders", status="all")

    async def templates(self, sender_id: int) -> list[dict[str, Any]]:
        """Every template of one sender, whatever its status."""
        return await self._get_data(f"/user/whatsapp/senders/{sender_id}/templates", status="all")

    async def account(self) -> dict[str, Any]:
        """The account: name, email, total_balance."""
        body = await self._get("/user/me")
        if not isinstance(body, dict):
            raise ApiError(200, None, "the account answer is not a JSON object")
        return body

    async def _get_data(self, path: str, **params: str) -> list[dict[str, Any]]:
        body = await self._get(path, **params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ApiError(200, None, f"the answer of {path} has no data list")
        return [item for item in data if isinstance(item, dict)]

    async def _request(
        self,
        method: str,
        path: str,
        before_send: Callable[[], bool] = lambda: True,
        on_written: Callable[[], object] = lambda: None,
        on_left: Callable[[float], object] = lambda at: None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Every request, of any kind, takes a turn from the limiter first.

        None: nothing was sent (`before_send` said no, or the limiter was interrupted).
        `on_written` is called once the request has been written out (or failed to be);
        `on_left` only if it was written out, with the time (our clock).
        """
        written = _Once(on_written)
        try:
            return await self._paced(method, path, before_send, written, on_left, **kwargs)
        except Interrupted:
            return None  # the run is ending: this request never started to leave
        finally:
            written()  # e.g. it failed before leaving: the loop must go on all the same

    async def _paced(
        self,
        method: str,
        path: str,
        before_send: Callable[[], bool],
        written: Callable[[], None],
        on_left: Callable[[float], object],
        **kwargs: Any,
    ) -> httpx.Response | None:
        limiter = self.limiter
        turn = await limiter.wait_turn() if limiter else None
        if not before_send():
            if limiter and turn:
                limiter.release(turn)
            return None

        def left() -> None:
            now = time.time()
            if limiter and turn:
                limiter.left(turn, now)  # pace on what left, not on what was planned
            on_left(now)
            written()

        async def trace(event: str, info: object) -> None:  # httpx's documented trace
            nonlocal turn
            if event.endswith(".send_request_headers.started") and limiter and turn:
                # Opening the connection may have taken long: nothing is written yet, so
                # a missed turn is given back and another awaited (Interrupted aborts it).
                turn = await limiter.confirm(turn)
            elif event.endswith(".send_request_body.complete"):
                left()

        if not self._traced:
            left()  # a custom transport may never report: count the hand-over instead
        return await self._http.request(method, path, extensions={"trace": trace}, **kwargs)

    async def _get(self, path: str, **params: str) -> Any:
        """A read; safe to repeat, so a 429 or 503 is waited out and tried again."""
        for _ in range(GET_ATTEMPTS):
            try:
                response = await self._request("GET", path, params=params)
            except httpx.HTTPError as exc:
                raise ApiError(None, None, f"{path}: {_describe(exc, self._redact)}") from None
            if response is None:  # the limiter was interrupted: the run is ending
                raise ApiError(None, None, f"{path}: not sent, the run is stopping")
            if response.status_code not in (429, 503):
                break
            if self.limiter is not None:
                rate_limited = response.status_code == 429
                await self.limiter.pause(_retry_after(response) or 1.0, rate_limited=rate_limited)
        answer = read_answer(response, self._redact)
        if answer.status != 200:
            code, message, _, _ = parse_error_body(answer)
            raise ApiError(answer.status, code, f"{path}: {message}")
        if answer.body is None:
            raise ApiError(200, None, f"{path}: the answer is not JSON")
        return answer.body


def _first(times: list[float]) -> float | None:
    return times[0] if times else None


class _Once:
    """Calls a function the first time it is called, never again."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._call: Callable[[], object] | None = call

    def __call__(self) -> None:
        if self._call is not None:
            call, self._call = self._call, None
            call()


class _RedactingFilter(logging.Filter):
    """Redacts a log record's text before any handler sees it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        return True


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as we read it: every text the server wrote is already redacted."""

    status: int
    reason: str  # the status line's reason phrase
    text: str  # the whole body
    body: Any  # the body parsed as JSON, or None
    content_type: str
    retry_after: float | None  # seconds, from the Retry-After header


def read_answer(response: httpx.Response, redact: Redactor) -> Answer:
    """Where server text enters: redacted whole, before anything is cut or parsed."""
    text = redact(response.text)
    return Answer(
        status=response.status_code,
        reason=redact(response.reason_phrase),
        text=text,
        body=_json_or_none(text),
        content_type=response.headers.get("Content-Type", ""),
        retry_after=_retry_after(response),
    )


def outcome_of(answer: Answer) -> SendOutcome:
    """Read a send's answer, whatever shape it has."""
    if 200 <= answer.status < 300:
        return _success_outcome(answer)
    api_code, message, fields, raw = parse_error_body(answer)
    code = _error_code(answer, api_code)
    if api_code and api_code != code:  # a 5xx's own code: kept in the message for a human
        message = f"{api_code}: {message}"
    return SendOutcome(
        http_status=answer.status,
        error_code=code,
        error_message=message,
        retry_after=answer.retry_after if answer.status == 429 else None,
        raw_body=raw,
        invalid_fields=fields,
    )


def _error_code(answer: Answer, api_code: str | None) -> str:
    """The code of an error answer: the API's for a 4xx; ours for anything else.

    A 5xx (or a 3xx) is decided by its status, so the body cannot pass for one of our
    codes; only the exact maintenance answer earns MAINTENANCE.
    """
    if answer.status // 100 == 4:
        return api_code or (outcomes.RATE_LIMITED if answer.status == 429 else _http(answer))
    if is_maintenance(answer):
        return outcomes.MAINTENANCE
    return _http(answer)


def is_maintenance(answer: Answer) -> bool:
    """True for Laravel's own maintenance answer (see MAINTENANCE_BODY), nothing else."""
    return (
        answer.status == MAINTENANCE_STATUS
        and "json" in answer.content_type.lower()
        and answer.body == MAINTENANCE_BODY
    )


def _http(answer: Answer) -> str:
    return f"HTTP_{answer.status}"


def _success_outcome(answer: Answer) -> SendOutcome:
    body = answer.body
    if not isinstance(body, dict):
        return SendOutcome(
            http_status=answer.status,
            error_code=outcomes.UNREADABLE_BODY,
            error_message="the answer to a send was not the documented JSON",
            raw_body=answer.text[:RAW_BODY_LIMIT],
        )
    if body.get("success") is False:
        return SendOutcome(
            http_status=answer.status,
            error_code=str(body.get("error_code") or "UNKNOWN_ERROR"),
            error_message=str(body.get("error") or body.get("message") or "success: false"),
        )
    return SendOutcome(
        http_status=answer.status,
        conversation_id=_int_or_none(body.get("conversation_id")),
        message_id=_int_or_none(body.get("message_id")),
        whatsapp_message_id=_int_or_none(body.get("whatsapp_message_id")),
        message_sid=_str_or_none(body.get("message_sid")),
        api_status=_str_or_none(body.get("status")),
    )


def parse_error_body(answer: Answer) -> tuple[str | None, str, tuple[str, ...], str | None]:
    """(code, message, invalid fields, raw text) from either known error shape, or any text."""
    body = answer.body
    if isinstance(body, dict):
        errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
        code = _str_or_none(body.get("error_code"))
        if code is None and errors:
            code = outcomes.VALIDATION_ERROR
        message = _str_or_none(body.get("error")) or _str_or_none(body.get("message"))
        details = "; ".join(_first_message(v) for v in errors.values())
        message = ": ".join(part for part in (message, details) if part)
        return code, message or f"HTTP {answer.status}", tuple(map(str, errors)), None
    raw = answer.text[:RAW_BODY_LIMIT]
    return None, f"HTTP {answer.status} {answer.reason}".strip(), (), raw


def _first_message(value: object) -> str:
    if isinstance(value, list) and value:
        return str(value[0])
    return str(value)


def _transport_outcome(exc: Exception, redact: Redactor) -> SendOutcome:
    code = next(
        (code for kind, code in TRANSPORT_CODES if isinstance(exc, kind)),
        outcomes.TRANSPORT_ERROR,
    )
    return SendOutcome(http_status=None, error_code=code, error_message=_describe(exc, redact))


def _describe(exc: BaseException, redact: Redactor) -> str:
    """The exception's text, redacted: e.g. a protocol error may quote what the server sent."""
    text = redact(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)  # the other form: an HTTP date
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
