"""Before the first send: the sender is online, the template approved, the tier big enough.

Each failure is one sentence a person can act on; nothing is sent until all pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from campaign.client import ApiError, AutocallsClient
from campaign.errors import PreflightError


@dataclass(frozen=True)
class Preflight:
    """What the account told us about the sender and template of a campaign."""

    sender: dict[str, Any]
    template: dict[str, Any]
    balance: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        """The template's variable names in the order of {{1}}, {{2}}…"""
        names = self.template.get("variables") or []
        return [str(n) for n in names] if isinstance(names, list) else []

    @property
    def body_text(self) -> str | None:
        body = self.template.get("body_text")
        return body if isinstance(body, str) else None

    @property
    def messaging_limit(self) -> int | None:
        limit = self.sender.get("messaging_limit")
        return limit if isinstance(limit, int) else None


async def check_account(
    client: AutocallsClient, sender_id: int, template_id: int, *, block_red: bool = False
) -> Preflight:
    """Ask the API about the sender, its template and the balance; raise PreflightError."""
    try:
        sender = _find(await client.senders(), sender_id, "sender")
        _check_sender(sender, sender_id)
        template = _find(await client.templates(sender_id), template_id, "template")
        _check_template(template, template_id, sender_id)
        account = await client.account()
    except ApiError as exc:
        raise PreflightError(api_problem(exc)) from None
    warnings = []
    if str(sender.get("quality_rating", "")).upper() == "RED":
        message = f"sender {sender_id} has a RED quality rating: WhatsApp may restrict its sending"
        if block_red:
            raise PreflightError(message + " (refused by --block-red)")
        warnings.append(message)
    balance = account.get("total_balance")
    return Preflight(
        sender, template, balance if isinstance(balance, int | float) else None, warnings
    )


def check_tier(preflight: Preflight, unique_recipients: int, *, allow_partial: bool) -> str | None:
    """Refuse a campaign bigger than the sender's 24-hour tier, unless part of it will do."""
    limit = preflight.messaging_limit
    if limit is None or unique_recipients <= limit:
        return None
    message = (
        f"the campaign has {unique_recipients} unique recipients but the sender's tier allows "
        f"{limit} per 24 hours"
    )
    if not allow_partial:
        raise PreflightError(
            message + "; pass --allow-partial to send what the tier allows now and the rest "
            "on a later run (they stay pending)"
        )
    return message + "; the rest will stay pending for a later run"


def _find(items: list[dict[str, Any]], wanted: int, kind: str) -> dict[str, Any]:
    for item in items:
        if item.get("id") == wanted:
            return item
    known = ", ".join(f"{i.get('id')} ({i.get('display_name') or i.get('name')})" for i in items)
    raise PreflightError(f"{kind} {wanted} is not on this account; found: {known or 'none'}")


def _check_sender(sender: dict[str, Any], sender_id: int) -> None:
    if sender.get("status") != "online":
        raise PreflightError(
            f"sender {sender_id} ({sender.get('phone_number')}) is {sender.get('status')}; "
            "only an online sender can send"
        )


def _check_template(template: dict[str, Any], template_id: int, sender_id: int) -> None:
    if template.get("status") != "approved":
        raise PreflightError(
            f"template {template_id} ({template.get('name')}) of sender {sender_id} is "
            f"{template.get('status')}; only approved templates can be sent"
        )


def api_problem(exc: ApiError) -> str:
    if exc.status == 401:
        return "the API refused the key (401): check AUTOCALLS_API_KEY or --api-key-file"
    if exc.status is None:
        return f"cannot reach the API: {exc}"
    code = f" {exc.code}" if exc.code else ""
    return f"the API answered {exc.status}{code}: {exc}"
