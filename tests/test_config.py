"""Config files for unattended runs: keys, {date}, paths, and flags that win."""

from __future__ import annotations

import datetime
from importlib import resources
from pathlib import Path

import pytest
import typer
from helpers import SENDER, TEMPLATE
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app
from campaign.config import read_config
from campaign.errors import UsageError
from campaign.store import Store


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(text)
    return path


def test_date_placeholder_and_relative_paths(tmp_path):
    """{date} becomes the day's date; relative paths are the config file's neighbours."""
    config = read_config(
        write(tmp_path, 'name = "nightly-{date}"\nrecipients = "list.csv"\nsender_id = 12\n'),
        today=datetime.date(2026, 11, 27),
    )
    assert config["name"] == "nightly-2026-11-27"
    assert config["recipients"] == str(tmp_path / "list.csv")


def test_a_database_url_is_not_a_path(tmp_path):
    """A SQLAlchemy URL in db is kept as it is."""
    url = "postgresql+psycopg://u@127.0.0.1/c"
    assert read_config(write(tmp_path, f'db = "{url}"\n'))["db"] == url


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sender = 12\n", "unknown keys: sender"),
        ('sender_id = "twelve"\n', "wrong type"),
        ("rate = true\n", "wrong type"),
        ("sender_id = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, text, message):
    """Unknown keys, wrong types and broken TOML are refused with a clear sentence."""
    with pytest.raises(UsageError, match=message):
        read_config(write(tmp_path, text))


def run_options(*argv: str) -> dict:
    """The values `campaign run ARGV` would run with, from flags, config and defaults."""
    command = typer.main.get_command(app).commands["run"]
    with command.make_context("run", list(argv)) as ctx:
        return ctx.params


def test_flags_win_over_the_file_which_wins_over_defaults(tmp_path):
    """A flag given beats the config file; the file beats the defaults."""
    config = str(write(tmp_path, 'rate = 4\nname = "x"\n'))
    given = run_options("--rate", "2", "--config", config)
    assert (given["rate"], given["name"], given["timeout"]) == (2.0, "x", 30.0)
    assert run_options("--config", config)["rate"] == 4
    assert run_options()["rate"] == 5


def test_the_sample_config_is_valid():
    """samples/campaign.toml reads without error."""
    sample = Path(str(resources.files("campaign.samples") / "campaign.toml"))
    config = read_config(sample)
    assert (config["sender_id"], config["template_id"]) == (12, 45)


def test_run_from_a_config_file(tmp_path, recipients, monkeypatch):
    """`campaign run --config` sends with the file's settings; a flag overrides one."""
    sandbox = fake.Sandbox()
    path = recipients(2)
    db = tmp_path / "c.db"
    config = write(
        tmp_path,
        f'recipients = "{path.name}"\nsender_id = {SENDER}\ntemplate_id = {TEMPLATE}\n'
        f'name = "nightly-{{date}}"\ndb = "{db.name}"\nrate = 3\n',
    )
    with fake.running(sandbox) as base_url:
        monkeypatch.setenv("AUTOCALLS_API_KEY", fake.DEFAULT_KEY)
        result = CliRunner().invoke(
            app, ["run", "--config", str(config), "--base-url", base_url, "--name", "manual"]
        )
    assert result.exit_code == 0, result.output
    assert Store.open(str(db)).find_campaign("manual") is not None
    assert len(sandbox.messages) == 2


def test_run_without_a_file_anywhere(tmp_path, monkeypatch):
    """No RECIPIENTS and no config: a clear usage error."""
    monkeypatch.setenv("AUTOCALLS_API_KEY", "k")
    result = CliRunner().invoke(app, ["run", "--sender-id", "1", "--template-id", "2"])
    assert result.exit_code == 2 and "RECIPIENTS" in result.output


def test_store_patience_comes_from_the_file_or_the_flag(tmp_path, monkeypatch):
    """store_patience in the file sets the run's patience; --store-patience 0 beats it."""
    monkeypatch.setenv("AUTOCALLS_API_KEY", "k")
    config = str(write(tmp_path, "store_patience = 30\n"))
    assert run_options("--config", config)["store_patience"] == 30
    assert run_options("--config", config, "--store-patience", "0")["store_patience"] == 0
    assert run_options()["store_patience"] == 120
    for command in ("run", "resume", "retry"):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--store-patience" in shown.output, command


def test_a_bad_config_file_is_one_line_from_the_cli(tmp_path):
    """--config is read before the other options, and its errors are still one clear line."""
    result = CliRunner().invoke(app, ["run", "--config", str(write(tmp_path, "sender = 1\n"))])
    assert result.exit_code == 2
    assert "error: the config file" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["run", "resume", "retry", "validate"])
def test_help_shows_each_default_in_80_columns(command):
    """--help fits an 80-column terminal and shows every sending option's one default."""
    shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"}).output
    assert max(len(line) for line in shown.splitlines()) <= 80
    words = " ".join(shown.split())  # a default may be wrapped onto the next line
    assert "--dedupe-window DURATION" in words and "[default: 7d]" in words
    if command != "validate":
        for default in ("5.0", "30.0", "120.0"):
            assert f"[default: {default}" in words, default
