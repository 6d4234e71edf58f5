"""campaign.loader: CSV/XLSX files into Recipients, SkippedRows and Problems."""

from __future__ import annotations

import gc
from pathlib import Path

import phonenumbers
import pytest

from campaign.loader import LoadResult, csv_file, load_recipients, mapping, xlsx_file
from campaign.model import Problem, Recipient, Severity, SkippedRow

FILES = Path(__file__).parent / "files"
BROKEN = FILES / "broken"


def load(name: str, **kwargs) -> LoadResult:
    return load_recipients(FILES / name, **kwargs)


def codes(result: LoadResult) -> list[tuple[int | None, str]]:
    return [(p.row, p.code) for p in result.problems]


def file_errors(result: LoadResult) -> list[Problem]:
    return [p for p in result.problems if p.row is None and p.severity is Severity.ERROR]


ACCENTED = [
    Recipient(2, "+447911123456", "Zoë Brontë", {"city": "Zürich"}),
    Recipient(3, "+33612345678", "José Núñez", {"city": "Málaga"}),
]


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["utf8.csv", "utf8_bom.csv"])
def test_utf8_with_and_without_bom(name):
    """UTF-8 is read with or without a byte-order mark; the BOM is not part of the header."""
    result = load(name)
    assert result.ok, result.problems
    assert result.recipients == ACCENTED
    assert result.variable_keys == ["city"]
    assert result.notices == []


def test_utf16_excel_unicode_text():
    """Excel's "Unicode text" (UTF-16 with BOM, tab-separated, CRLF) is read."""
    result = load("utf16_excel_unicode_text.txt")
    assert result.ok, result.problems
    assert result.recipients == ACCENTED


def test_cp1252_only_when_utf8_fails_with_a_notice():
    """cp1252 from Excel is read when UTF-8 fails, and a notice says so."""
    result = load("cp1252_excel.csv")
    assert result.ok, result.problems
    assert result.recipients == ACCENTED
    assert "read as cp1252 because it is not valid UTF-8" in result.notices


def test_encoding_argument_overrides_detection():
    """encoding= decides how the bytes are read, even when they are valid UTF-8."""
    assert load("latin1_declared.csv").recipients[0].name == "إ"
    assert load("latin1_declared.csv", encoding="latin-1").recipients[0].name == "Ø¥"


def test_encoding_argument_that_does_not_fit_is_a_file_problem():
    """A wrong or unknown encoding= is one file-level error, not an exception."""
    wrong = load("cp1252_excel.csv", encoding="utf-8")
    assert [(p.row, p.code) for p in wrong.problems] == [(None, "bad_encoding")]
    assert "not valid utf-8" in wrong.problems[0].message
    unknown = load("utf8.csv", encoding="klingon")
    assert codes(unknown) == [(None, "bad_encoding")]
    assert codes(load("utf8.csv", encoding="base64")) == [(None, "bad_encoding")]


def test_utf16_without_bom_is_recognised(tmp_path):
    """UTF-16 without its BOM is read, with a notice, instead of being called binary."""
    path = tmp_path / "u16.csv"
    path.write_bytes("phone,name\n+447911123456,Ann\n".encode("utf-16-le"))
    result = load_recipients(path)
    assert result.ok, result.problems
    assert result.recipients[0].name == "Ann"
    assert any("UTF-16" in n for n in result.notices)


# --- separators and quoting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("sep_comma.csv", "a;b|c"),
        ("sep_semicolon.csv", "a,b|c"),
        ("sep_tab.tsv", "a,b;c"),
        ("sep_pipe.csv", "a,b;c"),
    ],
)
def test_separator_is_detected(name, note):
    """, ; tab | are detected from the header; the others stay inside values."""
    result = load(name)
    assert result.ok, result.problems
    assert result.recipients == [Recipient(2, "+447911123456", "Ann", {"note": note})]


def test_delimiter_argument_overrides_detection():
    """delimiter= is used as given (here wrongly: the phone column is then not found)."""
    result = load("sep_semicolon.csv", delimiter=",")
    assert codes(result) == [(None, "missing_column")]
    assert load("sep_tab.tsv", delimiter="\\t").ok
    assert load("sep_tab.tsv", delimiter="tab").ok


def test_bad_delimiter_argument_is_a_file_problem():
    """A separator that cannot work is reported, not raised."""
    assert codes(load("sep_comma.csv", delimiter=",,")) == [(None, "bad_delimiter")]
    assert codes(load("sep_comma.csv", delimiter='"')) == [(None, "bad_delimiter")]


def test_excel_sep_directive_line():
    """Excel's "sep=;" first line names the separator and is not counted as a row."""
    result = load("sep_directive.csv")
    assert result.ok, result.problems
    assert result.recipients == [Recipient(2, "+447911123456", "Ann", {"note": "a,b"})]


def test_quoted_values_hold_separators_quotes_and_line_breaks():
    """Quoted values keep separators, doubled quotes and line breaks; one row each."""
    result = load("quoted.csv")
    assert result.ok, result.problems
    assert result.recipients == [
        Recipient(2, "+447911123456", "Smith, Ann", {"note": 'He said "hi", then left'}),
        Recipient(3, "+447911123457", "Bob\nJr", {"note": "x"}),
        Recipient(4, "+447911123458", "Cy", {"note": "a;b"}),
    ]


# --- row numbers --------------------------------------------------------------------------------


def test_row_numbers_count_blank_lines_and_multiline_values():
    """Rows are numbered as a spreadsheet shows them: blank lines count, a multi-line value
    is one row, and blank rows are neither recipients nor problems."""
    result = load("row_numbers.csv")
    assert result.ok, result.problems
    assert [r.row for r in result.recipients] == [4, 7, 9]
    assert result.problems == []


def test_row_numbers_are_the_same_whatever_the_block_size(monkeypatch):
    """Rows are numbered the same however the file is cut into blocks (here, every line
    ends a block wherever it can)."""
    names = ["row_numbers.csv", "quoted.csv", "rules.csv", "sep_directive.csv"]
    fast = [load(name) for name in names]
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 1)
    slow = [load(name) for name in names]
    assert [r.recipients for r in slow] == [r.recipients for r in fast]
    assert [r.problems for r in slow] == [r.problems for r in fast]
    assert [r.invalid for r in slow] == [r.invalid for r in fast]


def test_rows_with_more_cells_use_the_same_numbers(tmp_path):
    """A row with too many cells is an error at its own row; the rows after keep theirs."""
    path = tmp_path / "ragged.csv"
    path.write_text('phone,name\n\n+447911123456,"A\nB",x\n+447911123457,Bob\n')
    result = load_recipients(path)
    assert codes(result) == [(3, "too_many_cells")]
    assert result.recipients == [Recipient(4, "+447911123457", "Bob", {})]


def test_trailing_empty_cells_are_not_too_many():
    """Trailing separators (empty cells past the header) are not an error."""
    result = load("rules.csv", variables=["a", "b"])
    kim = [r for r in result.recipients if r.name == "Kim"]
    assert kim == [Recipient(12, "+447911123466", "Kim", {"1": "a", "2": "b"})]


# --- xlsx ---------------------------------------------------------------------------------------


def test_xlsx_first_sheet_cells_as_text():
    """The first sheet is read; numbers keep every digit; booleans and floats read as text."""
    result = load("recipients.xlsx", default_region="GB")
    assert result.recipients == [
        Recipient(2, "+447911123456", "Ann", {"Amount": "12.5", "When": "Monday"}),
        Recipient(4, "+447911123458", "Cy", {"Amount": "TRUE", "When": "x"}),
        Recipient(6, "+447911123459", "Dee", {"Amount": "1", "When": "y"}),
    ]
    assert codes(result) == [(3, "empty_variable")]
    assert result.invalid[0].phone == "+447911123457"  # 4.47911123457e11 stored as a float
    assert 'read sheet "Recipients", the first of 2 sheets' in result.notices


def test_xlsx_phone_stored_as_number_keeps_every_digit():
    """447911123456 stored as a number is "447911123456", not 4.47911e11 or "….0"."""
    table = xlsx_file.read_xlsx(FILES / "recipients.xlsx", None, [])
    assert next(table.blocks).columns[0][:2] == ["447911123456", "447911123457"]


def test_xlsx_sheet_argument():
    """sheet= picks a sheet by name (case-insensitive); a missing one lists the sheets."""
    result = load("recipients.xlsx", sheet="other")
    assert result.recipients == [Recipient(2, "+33612345678", "Zed", {})]
    missing = load("recipients.xlsx", sheet="Nope")
    assert codes(missing) == [(None, "missing_sheet")]
    assert '"Recipients", "Other"' in missing.problems[0].message


def test_xlsx_cell_text_conversions():
    """Cell values become the text a user expects."""
    from datetime import date, datetime, time

    assert xlsx_file.cell_text(None) == ""
    assert xlsx_file.cell_text(447911123456.0) == "447911123456"
    assert xlsx_file.cell_text(0.1) == "0.1"
    assert xlsx_file.cell_text(float("inf")) == "inf"
    assert xlsx_file.cell_text(False) == "FALSE"
    assert xlsx_file.cell_text(datetime(2025, 3, 1)) == "2025-03-01"
    assert xlsx_file.cell_text(datetime(2025, 3, 1, 9, 30)) == "2025-03-01 09:30:00"
    assert xlsx_file.cell_text(date(2025, 3, 1)) == "2025-03-01"
    assert xlsx_file.cell_text(time(9, 30)) == "09:30:00"


# --- headers ------------------------------------------------------------------------------------


def test_headers_match_ignoring_case_spaces_underscores():
    """Recipient Phone / FULL_NAME / Order_ID / " delivery date " all match."""
    result = load("headers_aliases.csv", variables=["order_id", "delivery_date"])
    assert result.ok, result.problems
    assert result.recipients == [Recipient(2, "+447911123456", "Ann", {"1": "A1", "2": "Monday"})]
    assert result.variable_keys == ["1", "2"]


def test_phone_aliases():
    """mobile, whatsapp, msisdn, phone number… name the phone column."""
    assert load("headers_mobile.csv").ok
    for alias in mapping.PHONE_ALIASES:
        assert mapping.norm_header(alias) == alias


def test_missing_phone_column_lists_headers():
    """No phone column: one file-level error listing the headers found."""
    result = load("no_phone_column.csv")
    assert codes(result) == [(None, "missing_column")]
    assert '"telefono", "nombre"' in result.problems[0].message
    assert result.recipients == []


def test_two_phone_columns_are_ambiguous():
    """Two columns that could be the phone: an error naming both."""
    result = load("two_phone_columns.csv")
    assert codes(result) == [(None, "ambiguous_column")]
    assert result.recipients == []


def test_template_variables_by_name_or_position_and_ignored_columns():
    """Columns named after the template's variables fill "1", "2"…; others are listed once."""
    result = load("template_names.csv", variables=["customer_name", "date"])
    assert result.ok, result.problems
    assert result.recipients[0] == Recipient(
        2, "+447911123456", "Ann", {"1": "Ann S", "2": "Monday"}
    )
    assert result.notices == ["ignored columns: unused, column F (no header)"]


def test_missing_template_variable_is_a_file_error():
    """A template variable no column provides: file-level error, no recipients."""
    result = load("template_names.csv", variables=["customer_name", "date", "coupon"])
    assert codes(result) == [(None, "missing_column")]
    assert '{{3}} ("coupon")' in result.problems[0].message
    assert result.recipients == []


def test_template_unknown_every_other_column_is_a_variable():
    """variables=None: columns other than phone and name are variables, keyed as written."""
    result = load("rules.csv", name_fallback="Friend")
    assert result.variable_keys == ["1", "2"]
    assert result.recipients[0].variables == {"1": "hello", "2": "world"}
    names = load("template_names.csv")
    assert names.variable_keys == ["customer_name", "Date", "unused"]


def test_position_and_name_columns_for_one_variable_are_ambiguous(tmp_path):
    """Columns "1" and "first" both giving {{1}} is an error."""
    path = tmp_path / "two.csv"
    path.write_text("phone,name,1,First\n+447911123456,Ann,a,b\n")
    result = load_recipients(path, variables=["first"])
    assert codes(result) == [(None, "ambiguous_column")]


def test_placeholder_headers(tmp_path):
    """A header written {{1}} fills variable 1."""
    path = tmp_path / "p.csv"
    path.write_text("phone,name,{{1}}\n+447911123456,Ann,x\n")
    result = load_recipients(path, variables=["first"])
    assert result.recipients[0].variables == {"1": "x"}


# --- values stay text ---------------------------------------------------------------------------


def test_values_stay_text():
    """Leading + and 0 survive; NA, null, None, NaN are literal text."""
    result = load("text_values.csv")
    assert result.ok, result.problems
    assert result.recipients == [
        Recipient(2, "+447911123456", "NA", {"code": "007", "maybe": "null"}),
        Recipient(3, "+447911123457", "None", {"code": "+1", "maybe": "NaN"}),
    ]


# --- broken files -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(BROKEN.iterdir()), ids=lambda p: p.name)
def test_broken_file_gives_one_file_problem(path):
    """Every file of the broken corpus gives exactly one file-level error and nothing else."""
    result = load_recipients(path)
    assert not result.ok
    assert len(file_errors(result)) == 1, result.problems
    assert result.problems == file_errors(result)
    assert result.problems[0].code != "internal_error"
    assert result.problems[0].message
    assert result.recipients == result.skipped == result.invalid == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("empty.csv", "empty_file"),
        ("only_blank_lines.csv", "empty_file"),
        ("binary_junk.csv", "binary_file"),
        ("document.pdf", "unsupported_format"),
        ("old_excel.xls", "unsupported_format"),
        ("archive.zip", "unsupported_format"),
        ("truncated.xlsx", "unreadable_file"),
        ("header_only.csv", "no_rows"),
        ("header_only.xlsx", "no_rows"),
        ("unclosed_quote.csv", "unclosed_quote"),
        ("unclosed_quote_ragged.csv", "unclosed_quote"),
        ("no_phone_column.csv", "missing_column"),
    ],
)
def test_broken_file_codes(name, code):
    """The file-level problem names what is wrong."""
    assert codes(load_recipients(BROKEN / name)) == [(None, code)]


def test_unreadable_paths(tmp_path):
    """A missing file, a folder, or a non-path is a Problem, not an exception."""
    missing = load_recipients(tmp_path / "nope.csv")
    assert codes(missing) == [(None, "unreadable_file")]
    assert "does not exist" in missing.problems[0].message
    assert codes(load_recipients(tmp_path)) == [(None, "unreadable_file")]
    assert codes(load_recipients(None)) == [(None, "unreadable_file")]  # type: ignore[arg-type]


def test_sheet_argument_for_a_csv_is_ignored_with_a_notice():
    """sheet= on a CSV file changes nothing but says so."""
    result = load("utf8.csv", sheet="Sheet1")
    assert result.ok
    assert any("ignored" in n for n in result.notices)


def test_text_named_xlsx_is_read_as_csv(tmp_path):
    """The content decides the format; a notice says the name was misleading."""
    path = tmp_path / "list.xlsx"
    path.write_text("phone,name\n+447911123456,Ann\n")
    result = load_recipients(path)
    assert result.ok
    assert any("not an Excel workbook" in n for n in result.notices)


def test_huge_values_are_problems(tmp_path):
    """Huge values are reported, also past the csv module's field limit, never raised."""
    path = tmp_path / "huge.csv"
    path.write_text("phone,name\n+447911123456,Ann,x\n+447911123457," + "y" * 140_000 + "\n")
    result = load_recipients(path)
    assert codes(result) == [(2, "too_many_cells"), (3, "name_too_long")]
    path.write_text('phone,name\n+447911123456,"' + "y" * 140_000 + "\n")
    unclosed = load_recipients(path)
    assert codes(unclosed) == [(None, "unreadable_file")]
    assert "row 2" in unclosed.problems[0].message


# --- rules --------------------------------------------------------------------------------------


def test_phone_rules_and_duplicates():
    """Phones are normalised; Excel damage is named; later duplicates are skipped."""
    result = load("phones_mixed.csv")
    assert [r.phone for r in result.recipients] == [
        "+447911123456",
        "+447911123457",
        "+447911123458",
        "+447911123459",
    ]
    assert codes(result) == [
        (5, "excel_scientific"),
        (6, "excel_float_repaired"),
        (7, "invalid_phone"),
        (8, "invalid_phone"),
        (9, "invalid_phone"),
        (10, "duplicate"),
    ]
    assert result.skipped == [SkippedRow(10, "+447911123456", "dup", "duplicate of row 2")]
    assert result.problems[5].severity is Severity.SKIP
    assert result.problems[1].severity is Severity.WARNING
    assert [s.row for s in result.invalid] == [5, 7, 8, 9]
    assert result.invalid[0].phone == "4.47911E+11"  # the raw value when it cannot be read
    assert result.invalid[0].reason == result.problems[0].message


def test_default_region_reads_national_numbers():
    """With default_region, 07911 123460 is +447911123460."""
    result = load("phones_mixed.csv", default_region="GB")
    assert "+447911123460" in [r.phone for r in result.recipients]
    assert (7, "invalid_phone") not in codes(result)


def test_unknown_default_region_is_a_file_problem():
    """default_region="XX" is a file-level error."""
    result = load("utf8.csv", default_region="XX")
    assert codes(result) == [(None, "unknown_region")]
    assert result.recipients == []


def test_name_and_variable_rules():
    """Missing/too-long name, empty variable, bad whitespace, too long, extra cells."""
    result = load("rules.csv", variables=["a", "b"])
    assert codes(result) == [
        (3, "missing_name"),
        (4, "name_too_long"),
        (5, "empty_variable"),
        (6, "bad_whitespace"),
        (7, "bad_whitespace"),
        (8, "bad_whitespace"),
        (9, "value_too_long"),
        (11, "too_many_cells"),
        (13, "duplicate"),
    ]
    assert [r.row for r in result.recipients] == [2, 10, 12]
    assert result.recipients[1].variables == {"1": "padded", "2": "b"}  # values are trimmed
    messages = {p.row: p.message for p in result.problems}
    assert "line break" in messages[6]
    assert "a tab" in messages[7]
    assert "more than four spaces" in messages[8]
    assert "1,601" in messages[9]


def test_name_fallback_fills_empty_names():
    """name_fallback fills an empty name; with it, no missing_name."""
    result = load("rules.csv", variables=["a", "b"], name_fallback="  Friend ")
    assert (3, "missing_name") not in codes(result)
    assert Recipient(3, "+447911123457", "Friend", {"1": "hi", "2": "there"}) in (result.recipients)


def test_no_name_column_needs_a_fallback(tmp_path):
    """Without a name column: file error unless name_fallback is given."""
    path = tmp_path / "phones.csv"
    path.write_text("phone\n+447911123456\n")
    assert codes(load_recipients(path)) == [(None, "missing_column")]
    result = load_recipients(path, name_fallback="Customer")
    assert result.recipients == [Recipient(2, "+447911123456", "Customer", {})]
    assert codes(load_recipients(path, name_fallback="   ")) == [(None, "missing_column")]
    too_long = load_recipients(path, name_fallback="x" * 256)
    assert codes(too_long) == [(None, "name_too_long")]


def test_body_length_with_values_filled_in():
    """The body with a row's values over 1,024 characters is an error on that row."""
    result = load("body_length.csv", variables=["x"], body_text="Hello {{1}}, " + "y" * 20)
    assert codes(result) == [(3, "body_too_long")]
    assert "1,028" in result.problems[0].message
    fine = load("body_length.csv", variables=["x"], body_text="{{1}}")
    assert fine.ok


def test_body_placeholders_counted_each_time(tmp_path):
    """A placeholder used twice counts its value twice."""
    path = tmp_path / "b.csv"
    path.write_text("phone,name,1\n+447911123456,Ann," + "z" * 600 + "\n")
    assert codes(load_recipients(path, variables=["v"], body_text="{{1}}")) == []
    twice = load_recipients(path, variables=["v"], body_text="{{1}} {{ 1 }}")
    assert codes(twice) == [(2, "body_too_long")]


def test_invalid_reason_joins_the_row_errors(tmp_path):
    """A row with several errors is invalid once, its reason the messages joined by "; "."""
    path = tmp_path / "multi.csv"
    path.write_text("phone,name,1\n+44 12,,\n")
    result = load_recipients(path, variables=["v"])
    assert len(result.invalid) == 1
    assert result.invalid[0].reason == "; ".join(p.message for p in result.problems)
    assert [p.code for p in result.problems] == ["invalid_phone", "missing_name", "empty_variable"]


def test_duplicate_of_an_invalid_row_is_still_a_duplicate(tmp_path):
    """The first row with a number keeps it, even when that row is invalid."""
    path = tmp_path / "dup.csv"
    path.write_text("phone,name\n+447911123456,\n447911123456.0,Bob\n")
    result = load_recipients(path)
    assert codes(result) == [(2, "missing_name"), (3, "duplicate")]
    assert result.skipped == [SkippedRow(3, "+447911123456", "Bob", "duplicate of row 2")]


def test_problems_are_in_row_order_with_file_problems_first():
    """File-level problems first, then rows in order."""
    result = load("rules.csv", variables=["a", "b", "c"])
    rows = [p.row for p in result.problems]
    assert rows[0] is None
    assert rows[1:] == sorted(rows[1:])


def test_ok_property():
    """ok is False exactly when an ERROR problem exists; warnings and skips are ok."""
    result = LoadResult()
    assert result.ok
    result.problems.append(Problem(2, "phone", "x", "duplicate", "dup", Severity.SKIP))
    result.problems.append(Problem(3, "phone", "x", "excel_float_repaired", "w", Severity.WARNING))
    assert result.ok
    result.problems.append(Problem(4, "phone", "x", "invalid_phone", "bad"))
    assert not result.ok


# --- behaviour ----------------------------------------------------------------------------------


def test_one_parse_per_distinct_phone(monkeypatch, tmp_path):
    """phonenumbers.parse runs once per distinct phone value, however often it repeats."""
    path = tmp_path / "repeat.csv"
    path.write_text("phone,name\n" + "+447911123456,A\n+447911123457,B\n" * 50)
    calls = []
    real = phonenumbers.parse
    monkeypatch.setattr(phonenumbers, "parse", lambda *a, **k: calls.append(a) or real(*a, **k))
    result = load_recipients(path)
    assert len(calls) == 2
    assert len(result.recipients) == 2
    assert len(result.skipped) == 98


def test_loader_prints_nothing_and_restores_gc(capsys):
    """No terminal output; the garbage collector is back on afterwards."""
    assert gc.isenabled()
    load("rules.csv", variables=["a", "b"])
    load_recipients(BROKEN / "binary_junk.csv")
    assert gc.isenabled()
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
