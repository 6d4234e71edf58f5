"""A new campaign's options, as the form gives them, and the runner settings they make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaign.daytime import SendWindow
from campaign.eligibility import parse_cap
from campaign.errors import UsageError
from campaign.runner import LoadSettings, RunSettings, SendSettings

if TYPE_CHECKING:
    from campaign.web.console import ConsoleConfig


@dataclass(frozen=True)
class CampaignOptions:
    """What the person chose on the new-campaign form (the CLI's flags of the same name)."""

    skip_invalid: bool = False
    default_region: str | None = None  # e.g. GB, for numbers without +country code
    send_window: str | None = None  # --send-window, e.g. 09:00-20:00
    max_per_recipient: str | None = None  # --max-per-recipient, the frequency cap (off: none)
    send_window_off: bool = False  # --send-window off: remove the campaign's window

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
        sending=SendSettings(**sending, **_window_and_cap(options)),  # type: ignore[arg-type]
        handle_signals=False,
    )


def _window_and_cap(options: CampaignOptions) -> dict[str, object]:
    """The send window and the frequency cap as SendSettings fields, parsed as the CLI's
    flags are (a bad value is the same one line)."""
    chosen: dict[str, object] = {}
    if options.send_window is not None:
        chosen["send_window"] = SendWindow.parse(options.send_window)
    if options.max_per_recipient is not None:
        if options.max_per_recipient.lower() in ("off", "none"):  # as the CLI's flag
            chosen["max_per_recipient_off"] = True
        else:
            chosen["max_per_recipient"] = parse_cap(options.max_per_recipient)
    if options.send_window_off:
        chosen["send_window_off"] = True
    return chosen
