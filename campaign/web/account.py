"""The account's senders and templates, by name, for the new-campaign form.

`account_lists` reads them through campaign/catalog.py, as `campaign senders` and
`campaign templates` do (the same pace, shared through the store). The form's pickers
name them as the CLI accepts them (a sender by its phone number, a template by
name:language) and `AccountCache.resolve` turns the chosen names into ids with catalog's
own rules: a campaign started here is the same as one started with `--sender-id +1…`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from campaign import catalog
from campaign.catalog import Sender, Template
from campaign.runner import RunSettings

CACHE_SECONDS = 60.0  # each read takes turns of the account's 5/s: not on every page view


@dataclass(frozen=True)
class TemplateChoice:
    template: Template
    value: str  # what the form posts: name:language (the id if that is not unique)

    @property
    def id(self) -> int:
        return self.template.id

    @property
    def name(self) -> str:
        """As a person reads it: appointment_reminder:en."""
        name = self.template.name or f"template {self.template.id}"
        return f"{name}:{self.template.language}" if self.template.language else name

    @property
    def status(self) -> str:
        return self.template.status or "unknown"

    @property
    def usable(self) -> bool:
        return self.template.status == "approved"


@dataclass(frozen=True)
class SenderChoice:
    sender: Sender
    templates: list[TemplateChoice] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.sender.id

    @property
    def value(self) -> str:
        """What the form posts: the phone number (the id for a sender without one)."""
        return self.sender.phone_number or str(self.sender.id)

    @property
    def name(self) -> str:
        """As a person reads it: Acme Support (+14155551234)."""
        shown = self.sender.display_name or f"sender {self.sender.id}"
        return f"{shown} ({self.sender.phone_number})" if self.sender.phone_number else shown

    @property
    def status(self) -> str:
        return self.sender.status or "unknown"

    @property
    def usable(self) -> bool:
        return self.sender.status == "online"


async def account_lists(settings: RunSettings) -> list[SenderChoice]:
    """Every sender of the account with all its templates (one read per online sender).

    A PreflightError (one line) when the account cannot be read.
    """
    senders = await catalog.senders(settings)
    return [
        SenderChoice(
            s,
            _choices(await catalog.templates(settings, s.id, include_all=True))
            if s.status == "online"
            else [],
        )
        for s in senders
    ]


def _choices(templates: list[Template]) -> list[TemplateChoice]:
    """Each template with the value the form posts for it: its name:language, unless
    another of the sender's templates has the same (then its id, which is unique)."""
    labels = [f"{t.name}:{t.language}" if t.name and t.language else None for t in templates]
    return [
        TemplateChoice(t, label if label and labels.count(label) == 1 else str(t.id))
        for t, label in zip(templates, labels, strict=True)
    ]


class AccountCache:
    """The lists, kept a minute: a form reloaded twice costs the account's rate once."""

    def __init__(self) -> None:
        self._lists: list[SenderChoice] | None = None
        self._read_at = 0.0

    async def get(self, settings: RunSettings) -> list[SenderChoice]:
        if self._lists is None or time.monotonic() - self._read_at > CACHE_SECONDS:
            self._lists = await account_lists(settings)
            self._read_at = time.monotonic()
        return self._lists

    async def resolve(self, settings: RunSettings, sender: str, template: str) -> tuple[int, int]:
        """The ids of the sender and template the form named, by catalog's rules.

        UsageError (shown on the form) when a name names nothing or several things.
        """
        lists = await self.get(settings)
        found = catalog.find_sender([s.sender for s in lists], sender)
        templates = next(s.templates for s in lists if s.id == found.id)
        chosen = catalog.find_template([t.template for t in templates], template, found.id)
        return found.id, chosen.id

    def find(self, sender_id: int, template_id: int) -> tuple[str, str]:
        """The names of a sender and a template, as the form showed them."""
        for sender in self._lists or []:
            if sender.id == sender_id:
                for template in sender.templates:
                    if template.id == template_id:
                        return sender.name, template.name
                return sender.name, f"template {template_id}"
        return f"sender {sender_id}", f"template {template_id}"
