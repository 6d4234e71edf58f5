"""The account's senders and templates, by name, for the new-campaign form.

`account_lists` is the console's only read of the account's lists: when issue 10's
campaign/catalog.py lands, it is the one function to point at `catalog.senders` and
`catalog.templates`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from campaign.client import ApiError, AutocallsClient, account_id
from campaign.errors import PreflightError
from campaign.limiter import AccountLimiter
from campaign.runner import RunSettings
from campaign.store import Store

CACHE_SECONDS = 60.0  # each read takes turns of the account's 5/s: not on every page view


@dataclass(frozen=True)
class TemplateChoice:
    id: int
    name: str
    language: str
    status: str

    @property
    def usable(self) -> bool:
        return self.status == "approved"


@dataclass(frozen=True)
class SenderChoice:
    id: int
    name: str  # the display name, with its phone number
    status: str
    templates: list[TemplateChoice] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status == "online"


async def account_lists(settings: RunSettings, store: Store) -> list[SenderChoice]:
    """Every sender of the account with its templates (one request per sender)."""
    limiter = AccountLimiter(
        store, account_id(settings.base_url, settings.api_key), settings.sending.rate
    )
    client = AutocallsClient(
        settings.api_key, settings.base_url, timeout=settings.sending.timeout, limiter=limiter
    )
    try:
        async with client:
            senders = await client.senders()
            return [
                _sender(s, await client.templates(s["id"]) if s.get("status") == "online" else [])
                for s in senders
                if isinstance(s.get("id"), int)
            ]
    except ApiError as exc:
        raise PreflightError(f"cannot read the account's senders and templates: {exc}") from None


def _sender(raw: dict[str, Any], templates: list[dict[str, Any]]) -> SenderChoice:
    name = str(raw.get("display_name") or f"sender {raw['id']}")
    if raw.get("phone_number"):
        name += f" ({raw['phone_number']})"
    return SenderChoice(
        id=raw["id"],
        name=name,
        status=str(raw.get("status") or "unknown"),
        templates=[
            TemplateChoice(
                id=t["id"],
                name=str(t.get("name") or f"template {t['id']}"),
                language=str(t.get("language") or ""),
                status=str(t.get("status") or "unknown"),
            )
            for t in templates
            if isinstance(t.get("id"), int)
        ],
    )


class AccountCache:
    """The lists, kept a minute: a form reloaded twice costs the account's rate once."""

    def __init__(self) -> None:
        self._lists: list[SenderChoice] | None = None
        self._read_at = 0.0

    async def get(self, settings: RunSettings, store: Store) -> list[SenderChoice]:
        if self._lists is None or time.monotonic() - self._read_at > CACHE_SECONDS:
            self._lists = await account_lists(settings, store)
            self._read_at = time.monotonic()
        return self._lists

    def find(self, sender_id: int, template_id: int) -> tuple[str, str]:
        """The names of a sender and a template, as the form showed them."""
        for sender in self._lists or []:
            if sender.id == sender_id:
                for template in sender.templates:
                    if template.id == template_id:
                        return sender.name, template.name
                return sender.name, f"template {template_id}"
        return f"sender {sender_id}", f"template {template_id}"
