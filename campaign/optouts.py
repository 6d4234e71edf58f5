"""The account's suppression list: the numbers it never messages (`campaign suppress`).

The account is named by client.account_id (the API's address and key, hashed), as a
campaign's rows are: the key itself is never stored. Numbers are kept in E.164, read by
the same rules as a recipients file. The list is applied when a row is claimed
(eligibility.py), so a number added during a run is not messaged after that moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from campaign.client import account_id
from campaign.errors import InputError, UsageError
from campaign.model import Problem, Severity
from campaign.phones import normalize_phone
from campaign.store import Store, SuppressedNumber

E164 = re.compile(r"\+[1-9]\d{1,14}")
NO_NAME = "-"  # the loader wants a name for every row; a suppression list needs none


@dataclass(frozen=True)
class Account:
    """Where the list lives: the store, and the account as the API's address and key."""

    db: str | None
    base_url: str
    api_key: str = field(repr=False)  # never printed

    @property
    def id(self) -> str:
        return account_id(self.base_url, self.api_key)


@dataclass(frozen=True)
class Added:
    """What adding numbers came to."""

    added: int  # new on the list
    already: int  # were on it already
    bad_rows: list[Problem] = field(default_factory=list)  # of a file: rows not added


def add(account: Account, phones: list[str], reason: str | None, region: str | None) -> Added:
    """Put numbers on the account's list; every number must be a phone number."""
    numbers = _e164(phones, region)
    with Store.open(account.db) as store:
        added = store.add_suppressions(account.id, numbers, reason)
    return Added(added, len(set(numbers)) - added)


def remove(account: Account, phones: list[str], region: str | None) -> tuple[int, int]:
    """Take numbers off the account's list: (removed, not on it)."""
    numbers = _e164(phones, region, stored_as_is=True)
    with Store.open(account.db) as store:
        removed = store.remove_suppressions(account.id, numbers)
    return removed, len(set(numbers)) - removed


def listing(account: Account) -> list[SuppressedNumber]:
    """The account's list, oldest first."""
    with Store.open(account.db) as store:
        return store.suppressions(account.id)


def import_file(
    account: Account,
    path: Path,
    reason: str | None,
    *,
    default_region: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
) -> Added:
    """Add every number of a CSV/XLSX's phone column, read as `run` reads recipients.

    A problem of the whole file (no phone column, unreadable) adds nothing. Rows whose
    number cannot be read are not added and come back in `bad_rows`; the others are
    added: a suppression only ever stops messages.
    """
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    from campaign.loader import load_recipients  # pandas: loaded only when a file is read

    loaded = load_recipients(
        path,
        variables=[],  # no template: the phone column alone matters
        name_fallback=NO_NAME,
        default_region=default_region,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
    )
    whole_file = [p for p in loaded.problems if p.row is None and p.severity is Severity.ERROR]
    if whole_file:
        what = f"{path} cannot be read as a list of numbers; nothing was added."
        raise InputError(what, whole_file)
    # A row refused for another cell (a name too long, say) is still a number to suppress.
    read = [s for s in loaded.invalid if normalize_phone(s.phone).e164 == s.phone]
    numbers = [r.phone for r in loaded.recipients] + [s.phone for s in read]
    read_rows = {s.row for s in read}
    bad = [
        p
        for p in loaded.problems
        if p.severity is Severity.ERROR and p.row is not None and p.row not in read_rows
    ]
    with Store.open(account.db) as store:
        added = store.add_suppressions(account.id, numbers, reason)
    return Added(added, len(set(numbers)) - added, bad)


def _e164(phones: list[str], region: str | None, *, stored_as_is: bool = False) -> list[str]:
    """Each number in E.164, or one error naming those that are not phone numbers.

    `stored_as_is`: an E.164-looking value is taken as written when it no longer reads as
    valid (a list kept from an older phonenumbers), so that it can still be removed.
    """
    numbers, bad = [], []
    for raw in phones:
        e164 = normalize_phone(raw, region).e164
        if e164 is None and stored_as_is and E164.fullmatch(raw.strip()):
            e164 = raw.strip()
        if e164 is None:
            bad.append(raw)
        else:
            numbers.append(e164)
    if bad:
        hint = "" if region else " (a national number needs --default-region)"
        raise UsageError(f"not phone numbers: {', '.join(map(repr, bad))}{hint}; nothing changed")
    return numbers
