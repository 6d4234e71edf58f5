"""Columns as CRMs export them: first and last names, columns chosen by flag or config,
and XLSX dates sent as the spreadsheet shows them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import openpyxl
import pytest
from helpers import SENDER, TEMPLATE, phone
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.loader import ColumnChoice, DateChoice, load_recipients
from campaign.loader.excel_dates import date_format

runner = CliRunner()
MOMENT = datetime.datetime(2026, 1, 15, 9, 30, 5)


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list[object]], formats: dict) -> Path:
    """A workbook; `formats` maps a column's index to the number format of its cells."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
        for k, number_format in formats.items():
            sheet.cell(row=sheet.max_row, column=k + 1).number_format = number_format
    workbook.save(path)
    return path


def hubspot_export(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "hubspot.csv",
        ["First Name", "Last Name", "Phone Number", "Email", "Company", "Date"],
        ["Ann", "Lee", phone(1), "ann@example.com", "Acme", "1 December"],
        ["Bob", "", phone(2), "bob@example.com", "Acme", "2 December"],
        [" Cy ", "de Vries", phone(3), "cy@example.com", "Initech", "3 December"],
    )


def send(*args: str) -> list[str]:
    return [
        "run",
        *args,
        "--sender-id",
        str(SENDER),
        "--template-id",
        str(TEMPLATE),
        "--name",
        "crm",
    ]


# --- first and last names ---------------------------------------------------------------


def test_hubspot_export_validates_and_sends_full_names(api, tmp_path, db_path):
    """First Name + Last Name: validate accepts it with a notice; run sends the full names."""
    path = hubspot_export(tmp_path)
    checked = runner.invoke(
        app,
        ["validate", str(path), "--variables", "customer_name,date", "--var", "1=First Name"],
    )
    assert checked.exit_code == 0, checked.output
    assert '"First Name" and "Last Name" joined' in " ".join(checked.stderr.split())
    result = runner.invoke(
        app, send(str(path), "--db", db_path, "--var", "customer_name=First Name")
    )
    assert result.exit_code == 0, result.output
    sent = {m.phone: (m.name, m.variables) for m in api.messages}
    assert sent == {
        phone(1): ("Ann Lee", {"1": "Ann", "2": "1 December"}),
        phone(2): ("Bob", {"1": "Bob", "2": "2 December"}),  # an empty half is skipped
        phone(3): ("Cy de Vries", {"1": "Cy", "2": "3 December"}),
    }


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("first_name", "last_name"),
        ("FirstName", "LastName"),
        ("Given Name", "Family Name"),
        ("Vorname", "Nachname"),
        ("Prénom", "Nom"),
    ],
)
def test_first_and_last_name_columns_are_joined(tmp_path, first, last):
    """Each CRM spelling of a split name is joined with one space, with a notice."""
    path = write_csv(tmp_path / "x.csv", ["phone", last, first], [phone(1), "Lee", "Ann"])
    loaded = load_recipients(path)
    assert loaded.ok, loaded.problems
    assert [r.name for r in loaded.recipients] == ["Ann Lee"]
    assert loaded.recipients[0].variables == {}  # the halves are the name, not variables
    assert any(f'"{first}" and "{last}" joined' in n for n in loaded.notices)


def test_a_name_column_wins_over_first_and_last(tmp_path):
    """A file with a name column keeps using it: nothing is joined."""
    path = write_csv(
        tmp_path / "x.csv",
        ["phone", "name", "First Name", "Last Name"],
        [phone(1), "Ann L.", "Ann", "Lee"],
    )
    loaded = load_recipients(path, variables=[])
    assert [r.name for r in loaded.recipients] == ["Ann L."]
    assert not any("joined" in n for n in loaded.notices)


def test_both_halves_empty_is_a_missing_name(tmp_path):
    """A row whose first and last names are both empty has no name: invalid, as before."""
    path = write_csv(tmp_path / "x.csv", ["phone", "First Name", "Last Name"], [phone(1), "", " "])
    loaded = load_recipients(path)
    assert [p.code for p in loaded.problems] == ["missing_name"]
    assert loaded.problems[0].column == "First Name + Last Name"


# --- columns chosen by flag or config ---------------------------------------------------


def test_phone_name_and_var_flags_map_any_headers(api, tmp_path, db_path):
    """--phone-column, --name-column and --var name columns the guesses do not know."""
    path = write_csv(
        tmp_path / "br.csv",
        ["Telefone", "Nombre", "Cliente", "Vencimento"],
        [phone(1), "Ana Souza", "Ana", "15/01/2026"],
    )
    flags = ["--phone-column", "telefone", "--name-column", "NOMBRE"]  # any case
    flags += ["--var", "customer_name=Cliente", "--var", "date=Vencimento"]
    result = runner.invoke(app, send(str(path), "--db", db_path, *flags))
    assert result.exit_code == 0, result.output
    [message] = api.messages
    assert (message.phone, message.name) == (phone(1), "Ana Souza")
    assert message.variables == {"1": "Ana", "2": "15/01/2026"}


def test_a_name_pattern(tmp_path):
    """--name-column "{Last Name}, {First Name}" writes each name that way."""
    path = write_csv(
        tmp_path / "x.csv",
        ["phone", "First Name", "Last Name", "Title"],
        [phone(1), "Ann", "Lee", "Dr"],
        [phone(2), "Bob", "", ""],
        [phone(3), "", "", ""],
    )
    loaded = load_recipients(
        path, variables=[], columns=ColumnChoice(name="{title} {Last Name}, {first name}")
    )
    assert [r.name for r in loaded.recipients] == ["Dr Lee, Ann", ", Bob"]
    [problem] = loaded.problems  # every part empty: no name, not ","
    assert (problem.row, problem.code) == (4, "missing_name")


def test_var_keys_a_column_when_the_template_is_unknown(tmp_path):
    """Offline, without --variables: --var gives the column the variable's name as its key."""
    path = write_csv(tmp_path / "x.csv", ["phone", "name", "Fecha"], [phone(1), "Ann", "1 May"])
    loaded = load_recipients(path, columns=ColumnChoice(variables=(("date", "fecha"),)))
    assert loaded.recipients[0].variables == {"date": "1 May"}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--phone-column", "Cell"], '--phone-column "Cell"'),
        (["--name-column", "Full Name"], '--name-column "Full Name"'),
        (["--name-column", "{First Name} {Surname}"], '--name-column "Surname"'),
        (["--var", "date=Renewal"], '--var date="Renewal"'),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_missing_mapped_column_is_one_line_listing_the_headers(
    api, tmp_path, db_path, flags, named, command
):
    """A flag naming a column the file lacks: exit 2, one line with the headers found."""
    path = hubspot_export(tmp_path)
    if command == "run":
        args = send(str(path), "--db", db_path, *flags)
    else:
        args = ["validate", str(path), "--variables", "customer_name,date", *flags]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    # One line says it (a run's log lines, such as the balance, may come before it).
    [line] = [line for line in result.stderr.splitlines() if "error" in line]
    assert "Traceback" not in result.output
    assert line.startswith(f"error: {named}: the file has no such column")
    assert '"First Name", "Last Name", "Phone Number", "Email", "Company", "Date"' in line
    assert api.messages == []


def test_var_naming_no_template_variable_lists_them(tmp_path):
    """--var for a variable the template lacks: exit 2, the template's variables listed."""
    path = hubspot_export(tmp_path)
    result = runner.invoke(app, ["validate", str(path), "--variables", "a,b", "--var", "c=Email"])
    assert result.exit_code == 2
    assert 'no variable "c"; its variables are: {{1}} "a", {{2}} "b"' in result.stderr


@pytest.mark.parametrize(
    "flags", [["--var", "date"], ["--date-format", "dd/mm/yyyy"], ["--time-format", "HH:MM"]]
)
def test_malformed_flags_are_usage_errors(tmp_path, flags):
    """--var without "=" and a date pattern without any % directive: exit 2, one line."""
    result = runner.invoke(app, ["validate", str(hubspot_export(tmp_path)), *flags])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_config_keys_map_columns(tmp_path, monkeypatch):
    """phone_column, name_column and a [vars] table in --config do what the flags do."""
    path = write_csv(
        tmp_path / "x.csv", ["Cell", "Given", "Family", "When"], [phone(1), "Ann", "Lee", "May 1"]
    )
    config = tmp_path / "campaign.toml"
    config.write_text(
        f'recipients = "{path.name}"\nsender_id = {SENDER}\ntemplate_id = {TEMPLATE}\n'
        f'db = "c.db"\nphone_column = "Cell"\nname_column = "{{Given}} {{Family}}"\n'
        '[vars]\ncustomer_name = "Given"\ndate = "When"\n'
    )
    sandbox = fake.Sandbox()
    with fake.running(sandbox) as base_url:
        monkeypatch.setenv("AUTOCALLS_API_KEY", fake.DEFAULT_KEY)
        result = runner.invoke(app, ["run", "--config", str(config), "--base-url", base_url])
    assert result.exit_code == 0, result.output
    [message] = sandbox.messages
    assert (message.name, message.variables) == ("Ann Lee", {"1": "Ann", "2": "May 1"})


# --- XLSX dates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number_format", "shown"),
    [
        ("mmmm d, yyyy", "January 15, 2026"),
        ("[$-409]dddd, mmmm d, yyyy;@", "Thursday, January 15, 2026"),
        ("dd/mm/yyyy", "15/01/2026"),
        ("dd.mm.yy", "15.01.26"),
        ("d-mmm-yy", "15-Jan-26"),  # built-in 15
        ("mmm-yy", "Jan-26"),  # built-in 17
        ("h:mm AM/PM", "9:30 AM"),  # built-in 18
        ("h:mm:ss", "9:30:05"),  # built-in 21
        ("yyyy-mm-dd hh:mm", "2026-01-15 09:30"),
        ('"due "d mmm', "due 15 Jan"),
        ("ddd d mmm yyyy h:mm am/pm", "Thu 15 Jan 2026 9:30 AM"),
    ],
)
def test_xlsx_dates_go_out_as_the_spreadsheet_shows_them(tmp_path, number_format, shown):
    """A date cell's text is its number format applied, not the ISO date."""
    path = write_xlsx(
        tmp_path / "d.xlsx",
        ["phone", "name", "When"],
        [[phone(1), "Ann", MOMENT]],
        {2: number_format},
    )
    loaded = load_recipients(path)
    assert loaded.problems == []
    assert loaded.recipients[0].variables == {"When": shown}


def test_a_time_cell_and_a_date_cell(tmp_path):
    """A time of day and a date-only cell, each as shown; a date is not rounded up."""
    late = datetime.datetime(2026, 12, 31, 23, 59, 59, 700000)
    path = write_xlsx(
        tmp_path / "d.xlsx",
        ["phone", "name", "At", "On"],
        [[phone(1), "Ann", datetime.time(14, 5), late]],
        {2: "hh:mm A/P", 3: "d mmmm yyyy"},
    )
    loaded = load_recipients(path)
    assert loaded.recipients[0].variables == {"At": "02:05 P", "On": "31 December 2026"}


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("m/d h:mm", "1/15 9:30"),  # m after h is minutes; before it, the month
        ("mm:ss", "30:05"),
        ("mmss.0", "3005.0"),  # built-in 47
        ("h:mm:ss.00", "9:30:05.00"),
        ("mmmmm", "J"),
        ("[Red]yy\\-mm", "26-01"),
    ],
)
def test_format_codes(code, shown):
    """The converter's codes: minutes or months, fractions, first letters, escapes."""
    rendered = date_format(code)
    assert rendered.faithful, rendered.why
    assert rendered.render(MOMENT) == shown


@pytest.mark.parametrize(
    "code",
    [
        "[$-407]mmmm d, yyyy",
        "[$-F800]dddd, mmmm dd, yyyy",
        "[h]:mm:ss",
        "[>=1]d/m/yy",
        "bbbb-mm-dd",
    ],
)
def test_formats_that_cannot_be_rendered_faithfully(code):
    """Other languages, the system's long date, elapsed times, conditions, Buddhist years."""
    assert not date_format(code).faithful


def test_an_unrenderable_format_warns_once_per_column_and_date_format_decides(tmp_path):
    """A German-locale column and a short-date (built-in 14) column: one warning each, ISO
    text; with --date-format every date cell takes the pattern and nothing is warned."""
    rows = [[phone(i), "Ann", MOMENT, MOMENT, MOMENT] for i in range(1, 4)]
    path = write_xlsx(
        tmp_path / "d.xlsx",
        ["phone", "name", "Termin", "Short", "Nice"],
        rows,
        {2: "[$-407]dddd, d. mmmm yyyy", 3: "mm-dd-yy", 4: "mmmm d, yyyy"},
    )
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    warned = json.loads(result.stdout)["problems"]
    assert [(p["code"], p["column"]) for p in warned] == [
        ("unrendered_date_format", "Termin"),
        ("unrendered_date_format", "Short"),
    ]
    loaded = load_recipients(path)
    assert loaded.recipients[0].variables == {
        "Termin": "2026-01-15 09:30:05",
        "Short": "2026-01-15 09:30:05",
        "Nice": "January 15, 2026",
    }
    decided = load_recipients(path, dates=DateChoice(date_format="%d/%m/%Y"))
    assert decided.problems == []
    assert set(decided.recipients[0].variables.values()) == {"15/01/2026"}
    flagged = runner.invoke(app, ["validate", str(path), "--json", "--date-format", "%d/%m/%Y"])
    assert json.loads(flagged.stdout)["problems"] == []


def test_time_format_decides_for_times_of_day(tmp_path):
    """--time-format applies to cells showing only a time; dates keep their format."""
    path = write_xlsx(
        tmp_path / "d.xlsx",
        ["phone", "name", "At", "On"],
        [[phone(1), "Ann", MOMENT, MOMENT]],
        {2: "h:mm", 3: "mmmm d, yyyy"},
    )
    loaded = load_recipients(path, dates=DateChoice(time_format="%H.%M"))
    assert loaded.recipients[0].variables == {"At": "09.30", "On": "January 15, 2026"}


def test_run_says_which_dates_go_out_as_iso(api, tmp_path, db_path):
    """`run` warns, as `validate` does, of a date column it sends as ISO text."""
    path = write_xlsx(
        tmp_path / "d.xlsx",
        ["phone", "name", "customer_name", "date"],
        [[phone(1), "Ann", "Ann", MOMENT]],
        {3: "mm-dd-yy"},
    )
    result = runner.invoke(app, send(str(path), "--db", db_path))
    assert result.exit_code == 0, result.output
    assert "warning: column 'date'" in result.stderr
    assert api.messages[0].variables["2"] == "2026-01-15 09:30:05"


def test_validate_takes_the_config_file_too(tmp_path):
    """`validate --config` reads the same mapping keys as `run` (and its file)."""
    path = write_csv(tmp_path / "x.csv", ["Cell", "Given", "Family"], [phone(1), "Ann", "Lee"])
    config = tmp_path / "campaign.toml"
    config.write_text(
        f'recipients = "{path.name}"\nphone_column = "Cell"\nname_column = "{{Given}} {{Family}}"\n'
    )
    result = runner.invoke(app, ["validate", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid_rows"] == 1
