"""Settings for unattended runs from a TOML file; flags given on the command line win.

    recipients = "exports/customers.csv"   # relative paths are relative to this file
    sender_id = 12                         # or the sender's phone, "+14155551234"
    template_id = 45                       # or a name, "appointment_reminder:en"
    name = "nightly-{date}"                # {date} becomes today's date, 2026-11-27
    default_region = "GB"
    rate = 5
    db = "campaigns.db"                    # a path or a SQLAlchemy URL
    dedupe_window = "7d"                   # or 12h, 30m, a number of days; 0: off
    send_window = "09:00-20:00"            # in each recipient's local time
    api_key_file = "/etc/campaign/api-key"
    phone_column = "Cell"                  # columns, when the headers are not the usual ones
    name_column = "{First Name} {Last Name}"
    vars = { order = "Order ID" }          # template variable = column (or a [vars] table,
                                           # last in the file: TOML puts later keys in it)
    date_format = "%d/%m/%Y"               # XLSX dates, instead of as their cells show them

See samples/campaign.toml for every key.
"""

from __future__ import annotations

import datetime
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from campaign.errors import UsageError

# Each key a config file may hold, with the type it must have.
KEYS: dict[str, type | tuple[type, ...]] = {
    "recipients": str,
    "sender_id": (int, str),  # an id, or the sender's phone number
    "template_id": (int, str),  # an id, name or name:language
    "name": str,
    "default_region": str,
    "name_fallback": str,
    "rate": (int, float),
    "timeout": (int, float),
    "max_attempts": int,
    "db": str,
    "base_url": str,
    "api_key_file": str,
    "skip_invalid": bool,
    "block_red": bool,
    "allow_partial": bool,
    "dedupe_window": (str, int, float),
    "store_patience": (int, float),
    "send_window": str,
    "default_timezone": str,
    "max_per_recipient": str,
    "phone_column": str,
    "name_column": str,
    "vars": dict,
    "date_format": str,
    "time_format": str,
}
PATH_KEYS = ("recipients", "api_key_file", "db")

DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([dhm]?)", re.IGNORECASE)
UNIT_SECONDS = {"": 86400, "d": 86400, "h": 3600, "m": 60}  # a plain number is days


def read_config(path: Path, today: datetime.date | None = None) -> dict[str, Any]:
    """The settings of a config file, checked, with paths resolved and {date} filled in."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise UsageError(
            f"the config file {path} has unknown keys: {', '.join(unknown)} "
            f"(known: {', '.join(KEYS)})"
        )
    for key, value in raw.items():
        wanted = KEYS[key]
        # TOML's true is a Python bool, which is also an int: only bool keys take it.
        if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool):
            raise UsageError(f"in {path}, {key} = {value!r} has the wrong type")
        if key == "sender_id" and isinstance(value, str) and not any(map(str.isdigit, value)):
            raise UsageError(
                f"in {path}, sender_id = {value!r} has the wrong type: give the sender's id "
                "or its phone number"
            )
    for key in PATH_KEYS:
        if key in raw and "://" not in raw[key]:
            raw[key] = str((path.parent / Path(raw[key]).expanduser()).resolve())
    if "name" in raw:
        raw["name"] = raw["name"].replace("{date}", (today or datetime.date.today()).isoformat())
    if "vars" in raw:
        raw["column_vars"] = _column_vars(path, raw.pop("vars"))
    return raw


def _column_vars(path: Path, table: dict[str, Any]) -> list[str]:
    """The [vars] table as --var takes it: VARIABLE=COLUMN."""
    for variable, column in table.items():
        if not isinstance(column, str):
            raise UsageError(f"in {path}, vars.{variable} = {column!r} must be a column's name")
    return [f"{variable}={column}" for variable, column in table.items()]


def parse_duration(value: str | float, option: str = "--dedupe-window") -> float:
    """Seconds from a number of days (7, 0.5) or a duration like 7d, 12h or 30m."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value) * UNIT_SECONDS["d"]
    match = DURATION.fullmatch(str(value).strip())
    if not match:
        raise UsageError(
            f"{option} must be a number of days or a duration like 7d, 12h or 30m "
            f"(0 turns it off), not {value!r}"
        )
    number, unit = match.groups()
    return float(number) * UNIT_SECONDS[unit.lower()]


def duration_text(seconds: float) -> str:
    """7 days, 12 hours, 30 minutes: a duration as parse_duration's user would say it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def duration_flag(seconds: float) -> str:
    """7d, 12h, 30m: a duration as --dedupe-window takes it."""
    for unit in ("d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds / UNIT_SECONDS['d']:g}"


def read_secret(path: Path | None, env: str, what: str) -> str | None:
    """A secret from a file (stripped) or the environment; None when neither has one.

    The secret itself never appears in an error.
    """
    if path is None:
        return os.environ.get(env, "").strip() or None
    try:
        value = path.read_text(encoding="utf-8-sig").strip()  # Notepad writes a BOM
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file {path} is not UTF-8 text") from None
    if not value:
        raise UsageError(f"the {what} file {path} is empty")
    return value
