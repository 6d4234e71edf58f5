"""A new campaign's options, as the form gives them, and the runner settings they make."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaign.daytime import SendWindow
from campaign.errors import UsageError
from campaign.runner import LoadSettings, RunSettings, SendSettings

if TYPE_CHECKING:
    from campaign.web.console import ConsoleConfig

# Issue 10's frequency cap parser, the CLI flag's own (branch optout). Until it is merged
# a cap is refused; once merged, drop the try block.
try:
    from campaign.eligibility import parse_cap  # type: ignore[import-not-found]
except ImportError:
    parse_cap = None


@dataclass(frozen=True)
class CampaignOptions:
    """What the person chose on the new-campaign form (the CLI's flags of the same name)."""

    skip_invalid: bool = False
    default_region: str | None = None  # e.g. GB, for numbers without +country code
    send_window: str | None = None  # --send-window, e.g. 09:00-20:00
    max_per_recipient: str | None = None  # --max-per-recipient, the frequency cap

    @classmethod
    def from_form(cls, form: dict[str, str]) -> CampaignOptions:
        region = (form.get("default_region") or "").strip().upper() or None
        if region and not (len(region) == 2 and region.isalpha()):
            raise UsageError(f"the default region must be two letters such as GB, not {region!r}")
        return cls(
            skip_invalid=form.get("skip_invalid") == "on",
            default_region=region,
            send_window=(form.get("send_window") or "").strip() or None,
            max_per_recipient=(form.get("max_per_recipient") or "").strip() or None,
        )


def run_settings(
    config: ConsoleConfig, options: CampaignOptions | None = None, **sending: object
) -> RunSettings:
    """The ONE place the console turns its settings and a form's options into a run's.

    `sending` overrides SendSettings fields (a retry of ALREADY_SENT rows turns the check
    off, as the CLI does). The server handles its own signals: the run does not.
    """
    options = options or CampaignOptions()
    return RunSettings(
        api_key=config.api_key,
        db=config.db,
        base_url=config.base_url,
        loading=LoadSettings(
            default_region=options.default_region, skip_invalid=options.skip_invalid
        ),
        sending=SendSettings(**sending, **_issue_10_sending(options)),  # type: ignore[arg-type]
        handle_signals=False,
    )


def _issue_10_sending(options: CampaignOptions) -> dict[str, object]:
    """The send window and frequency cap as SendSettings fields, parsed as the CLI does.

    A chosen value this build cannot apply is refused, never ignored: a campaign must not
    go out at night because an option was silently dropped.
    """
    known = {f.name for f in dataclasses.fields(SendSettings)}
    parsers = {
        "send_window": ("send window", SendWindow.parse),
        "max_per_recipient": ("frequency cap", parse_cap),
    }
    chosen = {}
    for name, (label, parse) in parsers.items():
        value = getattr(options, name)
        if value is None:
            continue
        if parse is None or name not in known:
            raise UsageError(f"this version cannot apply a {label} yet; leave it empty")
        chosen[name] = parse(value)
    return chosen
