"""Small exception classes; the CLI turns each into one clear line and an exit code."""

from __future__ import annotations


class CampaignError(Exception):
    """Base of every error the CLI shows as one line."""

    exit_code = 1


class UsageError(CampaignError):
    """Bad input or usage: nothing was sent."""

    exit_code = 2


class InputError(UsageError):
    """The recipients file has problems; `problems` lists them by row."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class PreflightError(UsageError):
    """The account, sender or template cannot run this campaign: nothing was sent."""


class CampaignBusy(CampaignError):
    """Another run holds this campaign's lease."""

    exit_code = 4


class NotFound(UsageError):
    """No campaign by that name in the store."""


class StoreError(CampaignError):
    """The store cannot be opened or upgraded."""

    exit_code = 2


class StoreUnavailable(StoreError):
    """The store failed in a way that may pass: try again later.

    The store raises it for a locked or full database, a lost connection, a restarted
    server. A run waits for the store (see patience.py); if it stays down the run ends
    with this error, and `unrecorded` lists the outcomes it could not write (JSON-ready
    dicts: the CLI prints them so that nothing the API accepted is lost).
    """

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        unrecorded: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason or message  # the database's own words, e.g. "database is locked"
        self.unrecorded = unrecorded or []


class AccountPaused(CampaignError):
    """The API asked the account to wait longer than a run waits unattended: halted."""

    exit_code = 3
