"""campaign.phones: E.164 normalisation and Excel-damage recognition."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from campaign.model import Severity
from campaign.phones import (
    PhoneNormalizer,
    PhoneResult,
    e164_if_valid,
    excel_damage,
    is_valid_number,
    normalize_phone,
    normalize_region,
)


@pytest.mark.parametrize(
    "raw",
    [
        "+447911123456",
        "+44 7911 123456",
        "+44-7911-123-456",
        "+44.7911.123.456",
        "+44 (0) 7911 123456",
        "(+44) 7911 123456",
        "0044 7911 123456",
        "00447911123456",
        "  +44 7911 123456  ",
        "+44\u00a07911\u00a0123456",
        "+44 7911/123456",
        "+٤٤٧٩١١١٢٣٤٥٦",
    ],
)
def test_international_formats_normalise_to_e164(raw):
    """Spaces, dashes, dots, brackets, slashes, NBSP, 00 and other digit scripts all read."""
    assert normalize_phone(raw) == PhoneResult("+447911123456")


def test_national_number_uses_default_region():
    """A national number is read in the default region."""
    assert normalize_phone("07911 123456", "GB").e164 == "+447911123456"
    assert normalize_phone("(201) 555-0123", "us").e164 == "+12015550123"


def test_region_country_code_without_plus_with_default_region():
    """With GB as region, 447911123456 (Excel dropped the +) is still +447911123456."""
    assert normalize_phone("447911123456", "GB").e164 == "+447911123456"


def test_foreign_number_without_plus_falls_back_to_international():
    """Invalid as a national number of the region, the digits are read as international."""
    assert normalize_phone("33612345678", "GB").e164 == "+33612345678"


def test_digits_without_plus_and_no_region_read_as_international():
    """Without + and without a region, the digits must start with the country code."""
    assert normalize_phone("447911123456").e164 == "+447911123456"
    assert normalize_phone("12015550123").e164 == "+12015550123"


def test_national_number_without_region_is_a_clear_error():
    """A leading 0 and no region: the message says the country code is missing."""
    result = normalize_phone("07911 123456")
    assert result.e164 is None
    assert result.code == "invalid_phone"
    assert "no country code" in result.message
    assert "default region" in result.message


def test_digits_without_plus_that_are_not_international_say_how_they_were_read():
    """The message says the digits were read as +digits."""
    result = normalize_phone("2025550123")
    assert result.code == "invalid_phone"
    assert "+2025550123" in result.message


def test_scientific_notation_is_unrecoverable():
    """Excel's 4.47911E+11 is an error that names the damage."""
    result = normalize_phone("4.47911E+11")
    assert result == PhoneResult(
        None,
        "excel_scientific",
        'phone "4.47911E+11" was turned into scientific notation by Excel; the digits are '
        "lost — re-export the column as text",
        Severity.ERROR,
    )
    assert normalize_phone("4,47911E+11").code == "excel_scientific"
    assert normalize_phone("4.47911e11").code == "excel_scientific"


def test_trailing_dot_zero_is_repaired_with_a_warning():
    """447911123456.0 is read as +447911123456, with a WARNING."""
    result = normalize_phone("447911123456.0")
    assert result.e164 == "+447911123456"
    assert result.code == "excel_float_repaired"
    assert result.severity is Severity.WARNING
    assert "447911123456.0" in result.message
    assert normalize_phone("+447911123456.00").e164 == "+447911123456"
    assert normalize_phone("447911123456,0").e164 == "+447911123456"  # a European Excel


def test_thousands_separator_is_not_taken_for_a_float():
    """447911123,000 is not "repaired" to 447911123: it is refused."""
    result = normalize_phone("447911123,000")
    assert result.e164 is None
    assert result.code == "invalid_phone"


def test_excel_damage_names_the_kind():
    """excel_damage tells scientific notation from a float and from a clean number."""
    assert excel_damage("4.47911E+11") == "scientific"
    assert excel_damage(" 447911123456.0 ") == "float"
    assert excel_damage("+44 7911 123456") is None
    assert excel_damage("7911.123.456") is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("+44 12", "not a valid phone number for country code +44"),
        ("+999 1234 5678", "unknown country code"),
        ("+1" + "2" * 40, "too long"),
        ("+4", "too short"),
        ("call me", "characters other than digits"),
        ("+44 7911 ABCDEF", "characters other than digits"),
        ("+44 7911 123456 ext 12", "extension"),
        ("+44 7911 123456 x12", "extension"),
        ("+", "no digits"),
        ("00", "no digits"),
        ("+44 7911 123456 +1", "characters other than digits"),
    ],
)
def test_invalid_values_are_errors_with_a_message(raw, words):
    """Each unusable value gives one ERROR whose message says why."""
    result = normalize_phone(raw)
    assert result.e164 is None
    assert result.severity is Severity.ERROR
    assert result.code in ("invalid_phone", "missing_phone")
    assert words in result.message


def test_empty_phone_is_missing_phone():
    """An empty cell is missing_phone, not invalid_phone."""
    assert normalize_phone("  ").code == "missing_phone"


def test_normalize_region():
    """Region codes are checked and upper-cased; unknown ones give None."""
    assert normalize_region("gb") == "GB"
    assert normalize_region(" us ") == "US"
    assert normalize_region("XX") is None
    assert normalize_region(None) is None
    assert normalize_region(44) is None


def test_unknown_default_region_is_ignored_by_normalize_phone():
    """A bad region reads numbers as if no region was given (the loader reports it)."""
    assert normalize_phone("447911123456", "XX").e164 == "+447911123456"


def test_normalizer_parses_each_distinct_value_once(monkeypatch):
    """PhoneNormalizer calls phonenumbers.parse once per distinct well-formed value."""
    calls = []
    real = phonenumbers.parse

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting)
    normalizer = PhoneNormalizer("GB")
    values = ["+44 7911 123456", "07911 123457", "+44 7911 123456", "447911123458"] * 5
    results = [normalizer.normalize(v) for v in values]
    assert len(calls) == 3
    assert results[0] == results[2] == PhoneResult("+447911123456")
    assert normalizer.lookup("07911 123457") == "+447911123457"


def test_normalizer_never_raises_on_odd_input():
    """Non-string and unhashable input gives a result, not an exception."""
    normalizer = PhoneNormalizer()
    assert normalizer.normalize(None).code == "missing_phone"
    assert normalizer.normalize(447911123456).e164 == "+447911123456"
    assert normalizer.normalize(["x"]).code == "invalid_phone"


def _example_numbers():
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(example)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(example)
    return numbers


def test_fast_validity_matches_phonenumbers_on_every_example_number():
    """is_valid_number and e164_if_valid agree with phonenumbers on all example numbers."""
    for number in _example_numbers():
        expected = phonenumbers.is_valid_number(number)
        assert is_valid_number(number) == expected, number
        if expected:
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            assert e164_if_valid(number) == e164


@settings(max_examples=200, deadline=None, database=None)
@given(
    country_code=st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE)),
    digits=st.text(alphabet="0123456789", min_size=3, max_size=14),
)
def test_fast_validity_matches_phonenumbers_on_random_numbers(country_code, digits):
    """On random digits after any country code, the fast check agrees with phonenumbers."""
    try:
        number = phonenumbers.parse(f"+{country_code}{digits}", None)
    except phonenumbers.NumberParseException:
        return
    assert is_valid_number(number) == phonenumbers.is_valid_number(number)
    if phonenumbers.is_valid_number(number):
        assert e164_if_valid(number) == phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.E164
        )


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=40), st.sampled_from([None, "GB", "US", "DE", "IN", "XX"]))
def test_normalize_phone_never_raises(raw, region):
    """Any text gives a PhoneResult: E.164 starting with +, or an ERROR with a message."""
    result = normalize_phone(raw, region)
    if result.e164 is not None:
        assert result.e164.startswith("+")
        assert result.e164[1:].isdigit()
        assert result.e164 == phonenumbers.format_number(
            phonenumbers.parse(result.e164, None), phonenumbers.PhoneNumberFormat.E164
        )
    else:
        assert result.severity is Severity.ERROR
        assert result.message
