"""The account's senders and templates, and what a person may call them.

A sender is named by its id or its phone number, a template by its id, its `name` or
`name:language`. `resolve` turns those into the ids the runner and the store use, once,
before anything else: a campaign started with names is the same as one started with ids.
An all-digit value is an id and costs no request. Every read takes a turn of the
account's pace, shared through the store with any run in progress (runner.account_session).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from campaign.client import ApiError
from campaign.errors import PreflightError, UsageError
from campaign.model import whole_number
from campaign.phones import normalize_phone
from campaign.preflight import api_problem
from campaign.preview import Body
from campaign.runner import RunSettings, account_session

MAX_CANDIDATES = 20  # listed in an error line; more are counted


@dataclass(frozen=True)
class Sender:
    """A WhatsApp sender of the account, as the API describes it (any field may be missing)."""

    id: int
    phone_number: str | None = None
    display_name: str | None = None
    status: str | None = None  # online | offline
    quality_rating: str | None = None  # GREEN | YELLOW | RED
    messaging_limit: int | None = None  # unique recipients per 24 h; None: unlimited or unknown
    messaging_tier: str | None = None  # the API's own words, e.g. "10,000 / 24hr"

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Sender | None:
        """None for an entry without an integer id: it could not be sent from anyway."""
        sender_id = whole_number(item.get("id"))
        if sender_id is None:
            return None
        return cls(
            id=sender_id,
            phone_number=_text(item.get("phone_number")),
            display_name=_text(item.get("display_name")),
            status=_text(item.get("status")),
            quality_rating=_text(item.get("quality_rating")),
            messaging_limit=whole_number(item.get("messaging_limit")),
            messaging_tier=_text(item.get("messaging_limit_formatted")),
        )

    @property
    def label(self) -> str:
        """How an error line names it: `12 (+14155551234, Acme Support)`."""
        about = ", ".join(t for t in (self.phone_number, self.display_name) if t)
        return f"{self.id} ({about})" if about else str(self.id)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Template:
    """A message template of one sender, as the API describes it (any field may be missing)."""

    id: int
    name: str | None = None
    language: str | None = None
    category: str | None = None
    status: str | None = None  # approved | pending | rejected
    body_text: str | None = None
    variables: tuple[str, ...] = ()  # the names of {{1}}, {{2}}… in order

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Template | None:
        """None for an entry without an integer id: it could not be sent anyway."""
        template_id = whole_number(item.get("id"))
        if template_id is None:
            return None
        names = item.get("variables")
        return cls(
            id=template_id,
            name=_text(item.get("name")),
            language=_text(item.get("language")),
            category=_text(item.get("category")),
            status=_text(item.get("status")),
            body_text=_text(item.get("body_text")),
            variables=tuple(map(str, names)) if isinstance(names, list) else (),
        )

    @property
    def label(self) -> str:
        """How an error line names it: `appointment_reminder:en (45)`."""
        name = self.name or "?"
        return f"{name}:{self.language} ({self.id})" if self.language else f"{name} ({self.id})"

    def fill(self, values: dict[str, str]) -> str:
        """The body with these values in its placeholders (keyed "1", "2"… or by name)."""
        return Body(self.body_text or "", self.variables).fill(values)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "variables": list(self.variables)}


# --- the account's lists ---------------------------------------------------------------------


async def senders(
    settings: RunSettings,
    include_offline: bool = True,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Sender]:
    """The account's senders (online only unless `include_offline`)."""
    async with account_session(settings, transport) as (_, client):
        found = await _read(client.senders())
    listed = _built(Sender, found)
    return listed if include_offline else [s for s in listed if s.status == "online"]


async def templates(
    settings: RunSettings,
    sender_id: int,
    include_all: bool = False,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Template]:
    """One sender's templates: the approved ones, or all of them with `include_all`."""
    async with account_session(settings, transport) as (_, client):
        found = await _read(client.templates(sender_id))
    listed = _built(Template, found)
    return listed if include_all else [t for t in listed if t.status == "approved"]


async def resolve(
    settings: RunSettings,
    sender: str,
    template: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[int, int]:
    """The ids of a sender (id or phone) and a template (id, name or name:language).

    Asks the API only for what is not an id already. UsageError (exit 2) when a value
    names nothing or several things; its line lists the candidates.
    """
    sender, template = str(sender).strip(), str(template).strip()
    if sender.isdigit() and template.isdigit():
        return int(sender), int(template)
    async with account_session(settings, transport) as (_, client):
        if sender.isdigit():
            sender_id = int(sender)
        else:
            sender_id = find_sender(_built(Sender, await _read(client.senders())), sender).id
        if template.isdigit():
            return sender_id, int(template)
        listed = _built(Template, await _read(client.templates(sender_id)))
    return sender_id, find_template(listed, template, sender_id).id


async def resolve_sender(
    settings: RunSettings, value: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """The id of a sender given as its id or its phone number."""
    value = str(value).strip()
    if value.isdigit():
        return int(value)
    return find_sender(await senders(settings, transport=transport), value).id


# --- finding one by what a person calls it ----------------------------------------------------


def find_sender(listed: list[Sender], wanted: str) -> Sender:
    """The sender whose id or phone number (compared in E.164) is `wanted`."""
    wanted = wanted.strip()
    if wanted.isdigit():
        found = [s for s in listed if s.id == int(wanted)]
    else:
        phone = normalize_phone(wanted).e164
        if phone is None:
            raise UsageError(
                f"sender {wanted!r} is neither an id nor a phone number in international "
                f"form (+country code); senders: {_candidates(s.label for s in listed)}"
            )
        found = [s for s in listed if normalize_phone(s.phone_number or "").e164 == phone]
    if len(found) == 1:
        return found[0]
    what = "no sender" if not found else "several senders"
    candidates = _candidates(s.label for s in found or listed)
    raise UsageError(f"{what} match {wanted!r}; senders: {candidates}")


def find_template(listed: list[Template], wanted: str, sender_id: int) -> Template:
    """The template whose id is `wanted`, or whose `name` or `name:language` it is.

    Names and languages are compared without regard to case (and `en-US` is `en_US`).
    Several matches of which one alone is approved: that one, the only one that can send.
    """
    wanted = wanted.strip()
    if wanted.isdigit():
        found = [t for t in listed if t.id == int(wanted)]
    else:
        name, _, language = wanted.rpartition(":") if ":" in wanted else (wanted, "", "")
        found = [
            t
            for t in listed
            if _same(t.name, name) and (not language or _same_language(t.language, language))
        ]
        approved = [t for t in found if t.status == "approved"]
        if len(found) > 1 and len(approved) == 1:
            found = approved
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(
            f"template {wanted!r} of sender {sender_id} is ambiguous: "
            f"{_candidates(t.label for t in found)}; give name:language or the id"
        )
    raise UsageError(
        f"sender {sender_id} has no template {wanted!r}; its templates: "
        f"{_candidates(t.label for t in listed)}"
    )


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.strip().casefold() == b.strip().casefold()


def _same_language(a: str | None, b: str) -> bool:
    return a is not None and _same(a.replace("-", "_"), b.replace("-", "_"))


def _candidates(labels: Iterable[str]) -> str:
    listed = list(labels)
    if not listed:
        return "none"
    shown = ", ".join(listed[:MAX_CANDIDATES])
    more = len(listed) - MAX_CANDIDATES
    return shown + (f" and {more} more" if more > 0 else "")


# --- reading the API's answers ------------------------------------------------------------------


async def _read(request: Any) -> list[dict[str, Any]]:
    """The answer of a list request; an API error is one line (PreflightError, exit 2)."""
    try:
        return await request
    except ApiError as exc:
        raise PreflightError(api_problem(exc)) from None


def _built(kind: Any, items: list[dict[str, Any]]) -> list[Any]:
    built = (kind.from_api(item) for item in items)
    return [item for item in built if item is not None]


def _text(value: object) -> str | None:
    return None if value is None else str(value)
