"""Phone numbers: E.164 normalisation and recognition of the damage Excel does to them.

`PhoneNormalizer.normalize(raw)` turns one spreadsheet cell into a `PhoneResult`: the E.164
form, or a problem code and a one-sentence message (an ERROR, or a WARNING when the value was
repaired). A `PhoneNormalizer` caches results per raw value, so each distinct value is parsed
once: one `phonenumbers.parse` for every number that turns out valid, except a number written
without `+` that is invalid as a national number of `default_region` and valid as an
international one (two); an invalid value may take a second parse to say why.
`read_phones` reads a batch of distinct values at once: the unit of work the loader gives its
worker processes (campaign.phone_worker). Only phonenumbers' public API is used; validity is
its own rule, `phonenumbers.is_valid_number`.

How a value is read:

* Spaces (any Unicode space), dashes, dots, brackets and slashes are formatting and dropped;
  any other character (letters included: vanity numbers are refused) makes the value invalid.
* A leading `+` means international. A leading `00` is the international prefix and reads as
  `+`, whatever `default_region` is.
* Without `+`/`00` and with `default_region`: the number is first read as a national number
  of that region (`07911 123456` with GB), which also accepts the region's own country code
  written without `+` (`447911123456` with GB). If that is not a valid number, it is read as
  international (`33612345678` → +33 6 12 34 56 78): Excel drops the `+` of numbers it stores
  as numbers, so this is the common case.
* Without `+`/`00` and without `default_region`: the digits are read as international,
  i.e. they must start with the country code (`447911123456` → +447911123456). A number with a
  leading single `0` has no country code and is refused with a message saying so.
* Excel damage: `4.47911E+11` (scientific notation) has lost its digits and is an error;
  `447911123456.0` (a number shown as a float) is repaired, with a WARNING.
* The number must be valid for its country (`phonenumbers.is_valid_number`); extensions are
  refused because WhatsApp cannot dial them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneNumber

from campaign.model import Severity

__all__ = [
    "PhoneBatch",
    "PhoneNormalizer",
    "PhoneResult",
    "e164_if_valid",
    "excel_damage",
    "is_valid_number",
    "normalize_phone",
    "normalize_region",
    "read_phones",
]

# Characters that only format a number: removed before parsing.
_FORMATTING = dict.fromkeys(
    map(
        ord,
        " \t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
        "\u200b\u202f\u205f\u3000\ufeff-.()/[]\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d",
    )
)
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_EXCEL_FLOAT = re.compile(r"(\+?\d+)(?:\.0+|,0{1,2})")  # not ",000": a thousands separator
_EXTENSION = re.compile(r"\d[\s.\-()]*(?:ext\.?|extension|x|#)\s*\d+\s*$", re.IGNORECASE)


def excel_damage(value: str) -> str | None:
    """Name the Excel damage of a phone cell: "scientific", "float", or None."""
    value = value.strip()
    if _SCIENTIFIC.fullmatch(value):
        return "scientific"
    if _EXCEL_FLOAT.fullmatch(value):
        return "float"
    return None


class PhoneResult(NamedTuple):
    """One phone cell, read: the E.164 number, and the problem found if any."""

    e164: str | None  # None: the number cannot be used
    code: str | None = None  # problem code (None: clean)
    message: str | None = None
    severity: Severity | None = None  # ERROR (e164 is None) or WARNING (repaired)


def normalize_region(region: str | None) -> str | None:
    """Return the upper-case region code if phonenumbers knows it, else None."""
    if not isinstance(region, str):
        return None
    region = region.strip().upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


# --- validity --------------------------------------------------------------------------------


def is_valid_number(numobj: PhoneNumber) -> bool:
    """phonenumbers' own rule: the number is valid for the region it belongs to."""
    return phonenumbers.is_valid_number(numobj)


def e164_if_valid(numobj: PhoneNumber) -> str | None:
    """The E.164 form of a valid number, else None."""
    if not phonenumbers.is_valid_number(numobj):
        return None
    return phonenumbers.format_number(numobj, phonenumbers.PhoneNumberFormat.E164)


# --- normalisation ---------------------------------------------------------------------------


def _describe_country(country_code: int) -> str:
    region = phonenumbers.region_code_for_country_code(country_code)
    if region in ("ZZ", "001"):
        return f"+{country_code}"
    return f"+{country_code}, {region}"


def _to_ascii_digits(text: str) -> str | None:
    """ASCII digits for a string of decimal digits in any script, or None if it is not one."""
    if text.isascii():
        return text if text.isdigit() or not text else None
    out = []
    for ch in text:
        digit = unicodedata.decimal(ch, None)
        if digit is None:
            return None
        out.append(str(digit))
    return "".join(out)


def _error(code: str, message: str) -> PhoneResult:
    return PhoneResult(None, code, message, Severity.ERROR)


def _parse_e164(text: str, region: str | None) -> str | None:
    """One phonenumbers.parse; the E.164 form if the number is valid, else None."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension:
        return None
    return e164_if_valid(number)


def normalize_phone(raw: object, default_region: str | None = None) -> PhoneResult:
    """Read one phone cell (see the module docstring for the rules)."""
    return _as_result(_read(raw, normalize_region(default_region)))


def _as_result(read: str | PhoneResult) -> PhoneResult:
    return PhoneResult(read) if isinstance(read, str) else read


def _read(raw: object, region: str | None) -> str | PhoneResult:
    """normalize_phone with a region already checked by normalize_region; a clean number comes
    back as its E.164 string alone (the common case needs nothing more)."""
    value = raw.strip() if isinstance(raw, str) else ("" if raw is None else str(raw).strip())
    if not value:
        return _error("missing_phone", "phone is empty")

    repaired = False
    if "e" in value or "E" in value:
        if _SCIENTIFIC.fullmatch(value):
            return _error(
                "excel_scientific",
                f'phone "{value}" was turned into scientific notation by Excel; the digits are '
                "lost — re-export the column as text",
            )
    elif "." in value or "," in value:
        float_match = _EXCEL_FLOAT.fullmatch(value)
        if float_match is not None:
            repaired = True
            cleaned = float_match.group(1)
    if not repaired:
        cleaned = value.translate(_FORMATTING)

    plus = cleaned.startswith("+")
    digits = _to_ascii_digits(cleaned[1:] if plus else cleaned)
    if not digits:
        if digits is None and _EXTENSION.search(value):
            return _error(
                "invalid_phone", f'phone "{value}" has an extension, which WhatsApp cannot dial'
            )
        if digits == "":
            return _error("invalid_phone", f'phone "{value}" has no digits')
        return _error(
            "invalid_phone",
            f'phone "{value}" is not a phone number: it holds characters other than digits, '
            "spaces, dashes, dots, brackets and a leading +",
        )
    if not plus and digits.startswith("00"):
        plus, digits = True, digits[2:]
        if not digits:
            return _error("invalid_phone", f'phone "{value}" has no digits after 00')

    if plus:
        e164 = _parse_e164("+" + digits, None)
        if e164 is None:
            return _invalid_international(value, digits)
    elif region is not None:
        e164 = _parse_e164(digits, region)
        if e164 is None and not digits.startswith("0"):
            e164 = _parse_e164("+" + digits, None)
        if e164 is None:
            return _error(
                "invalid_phone",
                f'phone "{value}" is not a valid phone number, neither as a {region} number '
                "nor as an international one",
            )
    else:
        if digits.startswith("0"):
            return _error(
                "invalid_phone",
                f'phone "{value}" has no country code; write it as +<country code><number> '
                "or set a default region for national numbers",
            )
        e164 = _parse_e164("+" + digits, None)
        if e164 is None:
            return _error(
                "invalid_phone",
                f'phone "{value}" is not a valid phone number: without a + it was read as '
                f"+{digits}, which is not valid; add the + and country code, or set a default "
                "region for national numbers",
            )

    if repaired:
        return PhoneResult(
            e164,
            "excel_float_repaired",
            f'phone "{value}" was stored as a number by Excel and shown with ".0"; it was '
            f"read as {e164}",
            Severity.WARNING,
        )
    return e164


def _invalid_international(value: str, digits: str) -> PhoneResult:
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return _error("invalid_phone", f'phone "{value}" has an unknown country code')
        if exc.error_type == phonenumbers.NumberParseException.TOO_LONG:
            return _error("invalid_phone", f'phone "{value}" is too long to be a phone number')
        return _error("invalid_phone", f'phone "{value}" is too short to be a phone number')
    country = _describe_country(number.country_code)
    return _error(
        "invalid_phone",
        f'phone "{value}" is not a valid phone number for country code {country}',
    )


class PhoneNormalizer:
    """`normalize_phone` with a fixed default region and a cache per raw value: a value seen
    before is not parsed again."""

    def __init__(self, default_region: str | None = None) -> None:
        self.default_region = normalize_region(default_region)
        self._cache: dict[object, str | PhoneResult] = {}

    def lookup(self, raw: object) -> str | PhoneResult:
        """The E.164 string of a clean number, else its PhoneResult (an error, or a warning
        with the repaired number)."""
        cache = self._cache
        try:
            result = cache.get(raw)
        except TypeError:  # unhashable: not a cell value, but never raise
            return _read(raw, self.default_region)
        if result is None:
            result = cache[raw] = _read(raw, self.default_region)
        return result

    def normalize(self, raw: object) -> PhoneResult:
        """The PhoneResult of one cell."""
        return _as_result(self.lookup(raw))

    __call__ = normalize


class PhoneBatch(NamedTuple):
    """Many distinct phone cells, read: `e164[i]` for `values[i]` (None: unusable), and the
    problem of each value that has one, by its index."""

    e164: list[str | None]
    problems: dict[int, PhoneResult]


def read_phones(values: list[str], default_region: str | None) -> PhoneBatch:
    """Read distinct phone cells in one go (a task for a worker process): each one is parsed
    once, as `normalize_phone` would."""
    region = normalize_region(default_region)
    e164: list[str | None] = []
    problems: dict[int, PhoneResult] = {}
    for index, raw in enumerate(values):
        read = _read(raw, region)
        if isinstance(read, str):
            e164.append(read)
        else:
            e164.append(read.e164)
            problems[index] = read
    return PhoneBatch(e164, problems)
