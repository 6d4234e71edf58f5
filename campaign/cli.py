"""The `campaign` command: parse flags, call one function, render the result."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO, TypeVar

import anyio
import httpx
import typer
from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.markup import escape  # server and file text is printed as written, never as markup

from campaign import (
    catalog,
    daytime,
    deliveries,
    display,
    eligibility,
    optouts,
    report,
    runner,
    trial,
)
from campaign import config as config_module
from campaign.client import DEFAULT_BASE_URL
from campaign.errors import CampaignError, InputError, PreflightError, StoreUnavailable, UsageError
from campaign.model import ALREADY_SENT, RowState, Severity
from campaign.patience import DEFAULT_PATIENCE
from campaign.preview import Preview
from campaign.runner import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RATE,
    DEFAULT_TIMEOUT,
    LoadSettings,
    RunResult,
    RunSettings,
    SendSettings,
)
from campaign.store import DEFAULT_DEDUPE_WINDOW, Store

app = typer.Typer(
    help="Send a WhatsApp template message to every recipient of a spreadsheet, "
    "at most once, within the rate limit, resumably.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: it reads well in an 80-column terminal
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands. Each has one default, shown by --help; `run
# --config FILE` turns the file's settings into the defaults (load_config).
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="CAMPAIGN_DB", metavar="PATH|URL", help="SQLite path or SQLAlchemy URL."
    ),
]
BaseUrlOption = Annotated[
    str,
    typer.Option(
        "--base-url", envvar="AUTOCALLS_BASE_URL", metavar="URL", help="The API's address."
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        metavar="FILE",
        help="File holding the API key (else $AUTOCALLS_API_KEY).",
        dir_okay=False,
    ),
]
RateOption = Annotated[
    float, typer.Option(min=0.1, metavar="N", help="Requests per second, at most.")
]
TimeoutOption = Annotated[
    float, typer.Option(min=1, metavar="SECONDS", help="Seconds to wait for an answer.")
]
MaxAttemptsOption = Annotated[
    int, typer.Option(min=1, metavar="N", help="Tries of a row the API did not process.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")]
VerboseOption = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")]
RegionOption = Annotated[
    str | None, typer.Option(metavar="CC", help="Region of national numbers, e.g. GB.")
]
NameFallbackOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="Name for rows without one.")
]
EncodingOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="The CSV's encoding, when the guess is wrong.")
]
DelimiterOption = Annotated[
    str | None, typer.Option(metavar="CHAR", help="The CSV's separator, when the guess is wrong.")
]
SheetOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="The XLSX sheet (default: the first).")
]
PhoneColumnOption = Annotated[
    str | None, typer.Option(metavar="COLUMN", help="The phone column, when the guess is wrong.")
]
NameColumnOption = Annotated[
    str | None,
    typer.Option(
        metavar="COLUMN", help='The name column, or a pattern: "{First Name} {Last Name}".'
    ),
]
VarOption = Annotated[
    list[str] | None,
    typer.Option(
        "--var", metavar="VARIABLE=COLUMN", help="A template variable's column (repeatable)."
    ),
]
DateFormatOption = Annotated[
    str | None,
    typer.Option(metavar="PATTERN", help="XLSX dates as this strftime pattern, e.g. %d/%m/%Y."),
]
TimeFormatOption = Annotated[
    str | None,
    typer.Option(metavar="PATTERN", help="XLSX times of day as this strftime pattern, e.g. %H:%M."),
]
SkipInvalidOption = Annotated[
    bool, typer.Option(help="Skip invalid rows (recorded as skipped) instead.")
]
BlockRedOption = Annotated[bool, typer.Option(help="Refuse a sender whose quality rating is RED.")]
AllowPartialOption = Annotated[
    bool, typer.Option(help="Start even if the sender's 24-hour tier is too small.")
]
LogFormatOption = Annotated[
    str, typer.Option("--log-format", metavar="FORMAT", help="text, or json for log shippers.")
]
DEDUPE_HELP = (
    "Skip a row whose same message (account, sender, template, phone, variables) was sent "
    "in any campaign of the store within this time: days (7), or 7d, 12h, 30m; 0 turns "
    "the check off."
)
DEDUPE_DEFAULT = config_module.duration_flag(DEFAULT_DEDUPE_WINDOW)
DedupeOption = Annotated[str, typer.Option("--dedupe-window", metavar="DURATION", help=DEDUPE_HELP)]
SendWindowOption = Annotated[
    str | None,
    typer.Option(
        "--send-window",
        metavar="HH:MM-HH:MM",
        help="Send only while the recipient's local time is in this window (09:00-20:00); "
        "the rest waits. The campaign keeps it for its later runs; off removes it.",
    ),
]
DefaultTimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--default-timezone",
        metavar="ZONE",
        help="With a send window: the zone of numbers with none known (else sent anytime).",
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="With a send window: sleep until the next window opens, not exit 6."
    ),
]
CapOption = Annotated[
    str | None,
    typer.Option(
        "--max-per-recipient",
        metavar="N/PERIOD",
        help="Skip a row whose number had N messages from this account within PERIOD, in "
        "any campaign of the store (sent, unknown or being sent): 1/24h, 3/7d. The campaign "
        "keeps it for its later runs; off removes it.",
    ),
]
StorePatienceOption = Annotated[
    float,
    typer.Option(
        "--store-patience",
        min=0,
        metavar="SECONDS",
        help="Seconds to wait for a failing store (locked, full, restarting).",
    ),
]

# --send-window and --max-per-recipient values that remove the campaign's window or cap
WINDOW_OFF = ("none", "off")

SENDER_HELP = "The WhatsApp sender: its id or its phone number (see `campaign senders`)."
TEMPLATE_HELP = "The template: its id, name or name:language (see `campaign templates`)."
SenderOption = Annotated[
    str | None, typer.Option("--sender-id", metavar="ID|PHONE", help=SENDER_HELP)
]
TemplateOption = Annotated[
    str | None, typer.Option("--template-id", metavar="ID|NAME[:LANG]", help=TEMPLATE_HELP)
]


def main() -> None:
    app()


def friendly(command: F) -> F:
    """Turn the library's errors into one clear line and their exit code (see `fail`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CampaignError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def fail(exc: CampaignError) -> NoReturn:
    """Print a library error as one clear line and leave with its exit code.

    The line is never wrapped (soft_wrap): a script or a log reads it whole. Texts that
    come from a server or a file are escaped: `[redacted]` or `[/]` are not rich markup.
    """
    if isinstance(exc, InputError) and exc.problems:
        err.print(display.problems_table(exc.problems))
    if isinstance(exc, StoreUnavailable):
        for line in exc.unrecorded:  # whole lines, never wrapped: a program may read them
            sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
    else:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


def load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """--config: the file's settings become the other options' defaults, so flags win.

    The option is eager: this runs before any other option takes its value.
    """
    if value is not None:
        try:
            settings = config_module.read_config(value)
        except CampaignError as exc:
            fail(exc)
        ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


def read_api_key(key_file: Path | None) -> str:
    """The API key, from a file or the environment; never from the command line."""
    key = config_module.read_secret(key_file, "AUTOCALLS_API_KEY", "API key")
    if key is None:
        raise UsageError("no API key: set AUTOCALLS_API_KEY or pass --api-key-file")
    source = "AUTOCALLS_API_KEY" if key_file is None else f"the API key file {key_file}"
    return _printable_key(key, source)


def _printable_key(key: str, source: str) -> str:
    """An HTTP header takes printable ASCII only; refuse anything else without showing it."""
    if not (key.isascii() and key.isprintable()):
        raise UsageError(f"{source} holds characters an API key cannot have (not shown here)")
    return key


def setup_logging(verbose: int, quiet: bool, log_format: str) -> None:
    """-q warnings only; default progress lines; -v every row; -vv every HTTP request too."""
    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format must be text or json, not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.getLogger("campaign").setLevel(level)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


def send_with_progress(
    call: Callable[..., Any], *args: Any, quiet: bool = False, **kwargs: Any
) -> RunResult:
    """Run a campaign function (run, resume, retry, demo) with the progress view."""
    view = display.ProgressView(err, quiet=quiet)
    try:
        return anyio.run(
            functools.partial(
                call,
                *args,
                on_start=view.start,
                on_row=view.row,
                on_notice=view.notice,
                on_wait=view.wait,
                **kwargs,
            )
        )
    finally:
        view.close()


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="TOML file of settings; flags override it.",
        callback=load_config,
        is_eager=True,
    ),
]


@app.command()
@friendly
def run(
    recipients: Annotated[
        Path | None,
        typer.Argument(metavar="RECIPIENTS", help="CSV or XLSX of recipients (or in --config)."),
    ] = None,
    sender_id: SenderOption = None,
    template_id: TemplateOption = None,
    config: ConfigOption = None,
    name: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Campaign name (default: the file's name and content)."),
    ] = None,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = DEFAULT_RATE,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    max_attempts: MaxAttemptsOption = DEFAULT_MAX_ATTEMPTS,
    default_region: RegionOption = None,
    name_fallback: NameFallbackOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    sheet: SheetOption = None,
    phone_column: PhoneColumnOption = None,
    name_column: NameColumnOption = None,
    column_vars: VarOption = None,
    date_format: DateFormatOption = None,
    time_format: TimeFormatOption = None,
    skip_invalid: SkipInvalidOption = False,
    block_red: BlockRedOption = False,
    allow_partial: AllowPartialOption = False,
    dedupe_window: DedupeOption = DEDUPE_DEFAULT,
    store_patience: StorePatienceOption = DEFAULT_PATIENCE,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    log_format: LogFormatOption = "text",
    send_window: SendWindowOption = None,
    default_timezone: DefaultTimezoneOption = None,
    wait: WaitOption = False,
    max_per_recipient: CapOption = None,
) -> None:
    """Send the template to every recipient of a file; run it again to resume.

    The same file with the same sender and template is the same campaign: rows already
    sent, failed, unknown or skipped are never sent again. Whatever the file, a message
    sent lately to the same phone with the same variables is skipped (ALREADY_SENT; see
    --dedupe-window). Exit codes: 0 all sent or skipped, 1 some failed or unknown,
    2 bad input, 3 halted by an account problem, 4 busy in another run, 5 the store
    stayed unavailable (what it could not record is printed on stderr as JSON lines),
    6 finished for now (the rest waits for the recipients' daytime, see --send-window:
    run again later, or pass --wait), 130 interrupted.

    A number on the account's suppression list is never messaged (SUPPRESSED; see
    `campaign suppress`), and with --max-per-recipient a number that had enough messages
    lately, in any campaign, is skipped (FREQUENCY_CAP). Both are decided as each row is
    claimed, so a number suppressed during the run is not messaged after that moment.

    The campaign keeps the --send-window (and --default-timezone) and the
    --max-per-recipient it was started with: its later runs, resumes and retries send in
    that window, with that cap, unless they pass another (off removes either).
    """
    setup_logging(verbose, quiet, log_format)
    for flag, value in (
        ("RECIPIENTS", recipients),
        ("--sender-id", sender_id),
        ("--template-id", template_id),
    ):
        if value is None:
            raise UsageError(f"missing {flag}: give it, or put it in --config")
    loading = LoadSettings(
        default_region=default_region,
        name_fallback=name_fallback,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        skip_invalid=skip_invalid,
        **column_settings(phone_column, name_column, column_vars, date_format, time_format),
    )
    sending = send_settings(
        rate,
        timeout,
        dedupe_window,
        store_patience,
        max_attempts=max_attempts,
        block_red=block_red,
        allow_partial=allow_partial,
        **daytime_settings(send_window, default_timezone, wait),
        **cap_settings(max_per_recipient),
    )
    settings = run_settings(api_key_file, db, base_url, sending, loading)
    sender, template = resolve_ids(settings, sender_id, template_id)
    result = send_with_progress(
        runner.run_campaign, recipients, sender, template, settings, name=name, quiet=quiet
    )
    finish(result)


def column_settings(
    phone_column: str | None,
    name_column: str | None,
    column_vars: list[str] | None,
    date_format: str | None,
    time_format: str | None,
) -> dict[str, Any]:
    """LoadSettings' column and date fields, from their flags (--var is VARIABLE=COLUMN)."""
    pairs = []
    for given in column_vars or ():
        variable, sep, column = given.partition("=")
        if not (sep and variable.strip() and column.strip()):
            raise UsageError(f"--var takes VARIABLE=COLUMN, e.g. --var date=Renewal, not {given!r}")
        pairs.append((variable.strip(), column.strip()))
    for flag, pattern in (("--date-format", date_format), ("--time-format", time_format)):
        if pattern is not None and "%" not in pattern:
            raise UsageError(f"{flag} takes a strftime pattern such as %d/%m/%Y, not {pattern!r}")
    return {
        "phone_column": phone_column,
        "name_column": name_column,
        "column_vars": tuple(pairs),
        "date_format": date_format,
        "time_format": time_format,
    }


def send_settings(
    rate: float, timeout: float, dedupe_window: str, store_patience: float, **more: Any
) -> SendSettings:
    """How a command sends, from its flags (--dedupe-window is a duration like 7d)."""
    window = config_module.parse_duration(dedupe_window)
    return SendSettings(
        rate=rate, timeout=timeout, dedupe_window=window, store_patience=store_patience, **more
    )


def daytime_settings(
    send_window: str | None, default_timezone: str | None, wait: bool
) -> dict[str, Any]:
    """The send-window fields of SendSettings, from --send-window, --default-timezone, --wait.

    Without --send-window the campaign's own window applies (runner.campaign_window);
    `none` or `off` removes it.
    """
    off = send_window is not None and send_window.strip().lower() in WINDOW_OFF
    return dict(
        send_window=None if send_window is None or off else daytime.SendWindow.parse(send_window),
        send_window_off=off,
        default_timezone=default_timezone and daytime.check_zone(default_timezone),
        wait_for_daytime=wait,
    )


def cap_settings(text: str | None) -> dict[str, Any]:
    """The frequency-cap fields of SendSettings, from --max-per-recipient.

    Without it the campaign's own cap applies (runner.campaign_cap); `none` or `off`
    removes it.
    """
    off = text is not None and text.strip().lower() in WINDOW_OFF
    return dict(max_per_recipient=cap_of(text), max_per_recipient_off=off)


def cap_of(text: str | None) -> eligibility.Cap | None:
    """--max-per-recipient N/PERIOD, if given (off or none: no cap)."""
    if not text or text.strip().lower() in WINDOW_OFF:
        return None
    return eligibility.parse_cap(text)


def run_settings(
    api_key_file: Path | None,
    db: str | None,
    base_url: str,
    sending: SendSettings,
    loading: LoadSettings | None = None,
) -> RunSettings:
    """The settings of a command that sends, with the API key read from where it is."""
    return RunSettings(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        loading=loading or LoadSettings(),
        sending=sending,
        handle_signals=True,
    )


def resolve_ids(settings: RunSettings, sender: str | None, template: str | None) -> tuple[int, int]:
    """The ids a sender (id or phone) and a template (id, name or name:language) stand for."""
    return anyio.run(functools.partial(catalog.resolve, settings, str(sender), str(template)))


@app.command()
@friendly
def resume(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The campaign's name.")],
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = DEFAULT_RATE,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    dedupe_window: DedupeOption = DEDUPE_DEFAULT,
    store_patience: StorePatienceOption = DEFAULT_PATIENCE,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    log_format: LogFormatOption = "text",
    send_window: SendWindowOption = None,
    default_timezone: DefaultTimezoneOption = None,
    wait: WaitOption = False,
    max_per_recipient: CapOption = None,
) -> None:
    """Go on with a stored campaign's pending rows; no file needed (exit codes as `run`).

    The campaign's send window applies (the one it was started with): rows waiting for
    their recipients' daytime keep waiting. --send-window replaces it for this run and the
    later ones; --send-window off removes it and sends them now. The campaign's
    frequency cap applies too: --max-per-recipient replaces it, --max-per-recipient off
    removes it.
    """
    setup_logging(verbose, quiet, log_format)
    daytime_fields = daytime_settings(send_window, default_timezone, wait)
    cap_fields = cap_settings(max_per_recipient)
    sending = send_settings(
        rate, timeout, dedupe_window, store_patience, **daytime_fields, **cap_fields
    )
    settings = run_settings(api_key_file, db, base_url, sending)
    finish(send_with_progress(runner.resume_campaign, name, settings, quiet=quiet))


@app.command()
@friendly
def retry(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The campaign's name.")],
    failed: Annotated[bool, typer.Option("--failed", help="Send the failed rows again.")] = False,
    code: Annotated[
        str | None,
        typer.Option(metavar="CODE", help="With --failed: only rows failed with this code."),
    ] = None,
    unknown: Annotated[
        bool, typer.Option("--unknown", help="Send the unknown rows again (risk: twice).")
    ] = False,
    already_sent: Annotated[
        bool,
        typer.Option(
            "--already-sent",
            help="Send the rows skipped as ALREADY_SENT, with the check off (risk: twice).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask before --unknown or --already-sent.")
    ] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = DEFAULT_RATE,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    dedupe_window: DedupeOption = DEDUPE_DEFAULT,
    store_patience: StorePatienceOption = DEFAULT_PATIENCE,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    log_format: LogFormatOption = "text",
    send_window: SendWindowOption = None,
    default_timezone: DefaultTimezoneOption = None,
    wait: WaitOption = False,
    max_per_recipient: CapOption = None,
) -> None:
    """Put failed (or unknown, or already sent) rows back to pending and send them.

    Unknown rows may already have reached their recipient, and rows skipped as
    ALREADY_SENT did reach theirs from another campaign: sending them again gives those
    people a second message. They are only retried on this explicit request. The
    campaign's send window and frequency cap apply, as for `resume`.
    """
    setup_logging(verbose, quiet, log_format)
    if failed + unknown + already_sent != 1:
        raise UsageError("say which rows to retry: --failed, --unknown or --already-sent")
    if code and not failed:
        raise UsageError("--code goes with --failed")
    if unknown:
        confirm_second_message(yes, "unknown rows may already have been delivered")
    if already_sent:
        confirm_second_message(yes, "rows skipped as ALREADY_SENT were sent by another campaign")
        dedupe_window = "0"  # else the check would skip them again
    daytime_fields = daytime_settings(send_window, default_timezone, wait)
    cap_fields = cap_settings(max_per_recipient)
    sending = send_settings(
        rate, timeout, dedupe_window, store_patience, **daytime_fields, **cap_fields
    )
    settings = run_settings(api_key_file, db, base_url, sending)
    if failed:
        retry_rows = runner.Retry((RowState.FAILED,), code)
    elif unknown:
        retry_rows = runner.Retry((RowState.UNKNOWN,))
    else:
        retry_rows = runner.Retry((RowState.SKIPPED,), ALREADY_SENT)
    finish(
        send_with_progress(runner.resume_campaign, name, settings, retry=retry_rows, quiet=quiet)
    )


@app.command()
@friendly
def validate(
    recipients: Annotated[
        Path, typer.Argument(metavar="RECIPIENTS", help="CSV or XLSX of recipients.")
    ],
    sender_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID|PHONE", help="With --template-id and a key: check the account too."
        ),
    ] = None,
    template_id: TemplateOption = None,
    config: ConfigOption = None,
    variables: Annotated[
        str | None,
        typer.Option(metavar="NAMES", help="Offline: the template's variables, e.g. name,date."),
    ] = None,
    default_region: RegionOption = None,
    name_fallback: NameFallbackOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    sheet: SheetOption = None,
    phone_column: PhoneColumnOption = None,
    name_column: NameColumnOption = None,
    column_vars: VarOption = None,
    date_format: DateFormatOption = None,
    time_format: TimeFormatOption = None,
    problems: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write every problem here as CSV.", dir_okay=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    block_red: BlockRedOption = False,
    allow_partial: AllowPartialOption = False,
    dedupe_window: DedupeOption = DEDUPE_DEFAULT,
    max_per_recipient: CapOption = None,
) -> None:
    """Find every problem of a recipients file before anything is sent.

    Each problem names its spreadsheet row (the header is row 1). With --sender-id,
    --template-id and an API key, also checks the sender, the template, the tier and the
    balance, counts the rows the store (--db) shows were already sent (ALREADY_SENT),
    whose number is suppressed (SUPPRESSED) or, with --max-per-recipient, at the cap
    (FREQUENCY_CAP), and shows the first valid row's message and the longest one
    (against 1,024 characters).
    Exit 0 when no row is invalid (skipped duplicates are fine), 2 otherwise. Those
    requests take turns of the account's rate, shared through the store with any run
    in progress.
    """
    key = optional_api_key(api_key_file)
    settings = RunSettings(
        api_key=key,
        db=db,
        base_url=base_url,
        loading=LoadSettings(
            default_region=default_region,
            name_fallback=name_fallback,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            **column_settings(phone_column, name_column, column_vars, date_format, time_format),
        ),
        sending=SendSettings(
            dedupe_window=config_module.parse_duration(dedupe_window),
            block_red=block_red,
            allow_partial=allow_partial,
            max_per_recipient=cap_of(max_per_recipient),
        ),
    )
    names = [v.strip() for v in variables.split(",")] if variables else None
    notices: list[str] = []
    try:
        sender, template = validate_ids(settings, sender_id, template_id)
        checked = anyio.run(
            functools.partial(
                runner.validate_file,
                recipients,
                settings,
                sender_id=sender,
                template_id=template,
                variables=names,
                on_notice=notices.append,
            )
        )
    except PreflightError as exc:
        if not as_json:
            raise
        print(
            json.dumps(
                {
                    "valid_rows": 0,
                    "invalid_rows": 0,
                    "skipped_rows": 0,
                    "already_sent_rows": None,
                    "suppressed_rows": None,
                    "frequency_capped_rows": None,
                    "problems": [
                        {"row": None, "column": None, "code": "preflight", "message": str(exc)}
                    ],
                }
            )
        )
        raise typer.Exit(exc.exit_code) from None
    load = checked.load
    if problems:
        with problems.open("w", encoding="utf-8", newline="") as f:
            report.write_problems_csv(load.problems, f)
    if as_json:
        summary = report.validation_summary(load, checked.already_sent)
        if checked.preview:
            summary["preview"] = checked.preview.as_json()
        summary |= report.eligibility_summary(checked.suppressed, checked.capped)
        print(json.dumps(summary))
    else:
        render_validation(checked, [*notices, *load.notices], problems)
    raise typer.Exit(0 if load.ok else 2)


def validate_ids(
    settings: RunSettings, sender: str | None, template: str | None
) -> tuple[int | None, int | None]:
    """validate's sender and template as ids; a phone or a name needs the key to look up."""
    given = [v for v in (sender, template) if v is not None]
    if all(v.strip().isdigit() for v in given):
        return (
            int(sender) if sender is not None else None,
            int(template) if template is not None else None,
        )
    if not settings.api_key or len(given) < 2:
        raise UsageError(
            "a sender's phone or a template's name is looked up on the account: give both "
            "--sender-id and --template-id, and an API key"
        )
    return resolve_ids(settings, sender, template)


def optional_api_key(key_file: Path | None) -> str:
    """The API key if one is given; validate works without one."""
    try:
        return read_api_key(key_file)
    except UsageError:
        if key_file is not None:
            raise
        return ""


def render_validation(checked: runner.Validation, notices: list[str], written: Path | None) -> None:
    load = checked.load
    warnings = sum(1 for p in load.problems if p.severity == Severity.WARNING)
    for text in notices:
        err.print(text, highlight=False, markup=False)
    if checked.tier:
        err.print(f"[yellow]warning:[/] {checked.tier}", highlight=False)
    already = checked.already_sent
    if already and already.rows:
        err.print(runner.already_sent_text(already), highlight=False)
    if checked.suppressed:
        err.print(runner.suppressed_text(checked.suppressed), highlight=False)
    if checked.capped and checked.cap:
        err.print(runner.capped_text(checked.capped, checked.cap), highlight=False)
    shown = [p for p in load.problems if p.severity != Severity.SKIP] or load.problems
    if shown:
        err.print(display.problems_table(shown))
    if checked.preview:
        render_preview(checked.preview)
    out.print(
        f"{load.valid_rows} valid, {load.invalid_rows} invalid, "
        f"{load.skipped_rows} skipped, {warnings} warnings"
        + (f", {already.rows} already sent" if already else "")
        + (f", {checked.suppressed} suppressed" if checked.suppressed is not None else "")
        + (f", {checked.capped} at the frequency cap" if checked.capped is not None else ""),
        soft_wrap=True,  # one line, whatever the terminal's width
    )
    if written:
        err.print(f"every problem is in {written}")


def render_preview(preview: Preview) -> None:
    """The first valid row's message, and the longest one against WhatsApp's limit."""
    first, longest = preview.first, preview.longest
    out.print(f"message of row {first.row}:", highlight=False)
    out.print(first.text, highlight=False, markup=False, soft_wrap=True)
    over = " (too long)" if longest.length > preview.limit else ""
    out.print(
        f"longest message: row {longest.row}, {longest.length:,} of {preview.limit:,} "
        f"characters{over}",
        highlight=False,
    )


def confirm_second_message(yes: bool, why: str) -> None:
    """Ask before sending rows that may give their recipients a second message."""
    err.print(
        f"[yellow]warning:[/] {why}; retrying them may send those recipients a second message."
    )
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("retrying these rows needs --yes when there is no terminal to ask")
    if not typer.confirm("Send them again?", err=True):
        raise typer.Exit(1)


def finish(result: RunResult) -> None:
    """Print a run's summary and leave with its exit code."""
    out.print(display.counts_table(f"campaign {result.campaign.name}", result.counts))
    if result.halt_reason:
        err.print(f"[red]halted:[/] {escape(result.halt_reason)}", highlight=False, soft_wrap=True)
        err.print("fix the cause, then run the same command again to send the rest")
    elif result.stopped:
        err.print(f"stopped; resume with: campaign resume {result.campaign.name}")
    elif result.daytime is not None:
        err.print(f"finished for now: {result.daytime}", highlight=False, soft_wrap=True)
        err.print("run the same command again then (a cron job goes on), or pass --wait")
    raise typer.Exit(result.exit_code)


@app.command()
@friendly
def status(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="A campaign (default: all).")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Show rows per state and per error code, the halt reason, and a live run's rate."""
    with Store.open(db) as store:
        campaigns = [runner.find(store, name)] if name else store.campaigns()
        states = [report.campaign_status(store, c) for c in campaigns]
    if as_json:
        print(json.dumps(states[0] if name else states, indent=2, default=str))
        return
    for state in states:
        render_status(state)


def render_status(state: dict[str, Any]) -> None:
    out.print(
        display.counts_table(f"campaign {state['name']} ({state['status']})", state["counts"])
    )
    if state["errors"]:
        out.print(
            display.error_table((e["state"], e["error_code"], e["rows"]) for e in state["errors"])
        )
    if state.get("delivery"):
        out.print(report.delivery_text(state["delivery"]), highlight=False)
    if state["halt_reason"]:
        halt_reason = escape(state["halt_reason"])
        out.print(f"[red]halted:[/] {halt_reason}", highlight=False, soft_wrap=True)
    window = report.send_window_text(state["send_window"], state["default_timezone"])
    if window:
        out.print(window, highlight=False)
    cap = report.frequency_cap_text(state["max_per_recipient"])
    if cap:
        out.print(cap, highlight=False)
    waiting = state["daytime"]
    if waiting["rows"]:
        out.print(f"{waiting['text']}", highlight=False, soft_wrap=True)
    if state["active"]:
        eta = state["eta_seconds"]
        out.print(f"running: {state['rate']}/s" + (f", about {eta} s left" if eta else ""))


@app.command("report")
@friendly
def report_(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The campaign's name.")],
    db: DbOption = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="csv or json.")] = "csv",
    html: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Also write a one-page HTML report here.", dir_okay=False
        ),
    ] = None,
) -> None:
    """One line per input row: who got what, and why not.

    CSV cells a spreadsheet would run as formulas are defused; --html writes a page with
    the totals, sends over time, outcomes by error code and the failed and unknown rows.
    """
    if fmt not in ("csv", "json"):
        raise UsageError(f"--format must be csv or json, not {fmt!r}")
    with Store.open(db) as store:
        campaign = runner.find(store, name)
        if html:
            with html.open("w", encoding="utf-8") as page:
                report.write_html(store, campaign, page)
            err.print(f"wrote the HTML report to {html}")
            if out_file is None:
                return
        with open_output(out_file) as target:
            lines = report.records(store, campaign)
            if fmt == "csv":
                n = report.write_csv(lines, target)
            else:
                counts = store.counts(campaign.id)
                delivery = deliveries.delivery_counts(store, campaign.id)
                n = report.write_json(campaign, counts, lines, target, delivery)
    if out_file:
        err.print(f"wrote {n} rows to {out_file}")


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[TextIO]:
    """The file at `path`, or stdout (left open) when there is none."""
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as f:
        yield f


@app.command("list")
@friendly
def list_(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list on stdout.")] = False,
) -> None:
    """Every campaign in the store, with its state and totals."""
    with Store.open(db) as store:
        campaigns = report.campaign_list(store)
    if as_json:
        print(json.dumps(campaigns, indent=2, default=str))
        return
    out.print(display.campaigns_table(campaigns))


@app.command()
@friendly
def sandbox(
    port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1.")] = 8000,
    latency: Annotated[
        str,
        typer.Option(
            metavar="SECONDS", help="Seconds per answer: a number or a range like 0.05-1.5."
        ),
    ] = "0.05",
    rate: Annotated[
        float, typer.Option(metavar="N", help="Requests per rolling second per key.")
    ] = 5,
    balance: Annotated[
        int | None, typer.Option(metavar="N", help="Messages the account can pay for.")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Post signed delivery status events here."),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="The webhook's secret (default: AUTOCALLS_WEBHOOK_SECRET)."
        ),
    ] = None,
) -> None:
    """Serve the built-in fake of the autocalls API on loopback (key: sandbox-key)."""
    from campaign import sandbox as fake
    from campaign.web.webhook import read_webhook_secret

    low, _, high = latency.partition("-")
    emitter = None
    if webhook_url:
        secret = read_webhook_secret(webhook_secret_file)
        if secret is None:
            raise UsageError(
                "--webhook-url needs a secret: AUTOCALLS_WEBHOOK_SECRET or --webhook-secret-file"
            )
        emitter = fake.WebhookEmitter(webhook_url, secret)
    fake_api = fake.Sandbox(
        rate=rate, latency=(float(low), float(high or low)), balance=balance, webhook=emitter
    )
    err.print(f"sandbox on http://127.0.0.1:{port} (API key: {fake.DEFAULT_KEY})")
    fake.serve(fake_api, host="127.0.0.1", port=port)


@app.command()
@friendly
def demo(
    db: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Keep the demo's store here.")
    ] = None,
) -> None:
    """Run the sample campaign in samples/ against the built-in sandbox."""
    from campaign import sandbox as fake  # the product path never imports the fake API

    setup_logging(0, False, "text")
    sample = Path(str(resources.files("campaign.samples") / "recipients.csv"))
    fake_api = fake.Sandbox(latency=(0.05, 0.4))
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(
            api_key=fake.DEFAULT_KEY,
            db=str(db or Path(tmp) / "demo.db"),
            base_url="http://127.0.0.1",  # never reached: the transport is the sandbox itself
            handle_signals=True,
        )
        result = send_with_progress(
            runner.run_campaign,
            sample,
            fake.DEMO_SENDER_ID,
            fake.DEMO_TEMPLATE_ID,
            settings,
            name="demo",
            transport=httpx.ASGITransport(app=fake_api.app),
        )
    out.print(display.counts_table("demo campaign", result.counts))
    out.print(f"the sandbox accepted {len(fake_api.messages)} messages")
    if db:
        out.print(f"who got what: campaign report demo --db {db}")


def account_settings(api_key_file: Path | None, db: str | None, base_url: str) -> RunSettings:
    """The settings of a command that only reads the account (or sends one test message)."""
    return RunSettings(api_key=read_api_key(api_key_file), db=db, base_url=base_url)


@app.command()
@friendly
def senders(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list on stdout.")] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """The account's WhatsApp senders, online or not: what --sender-id may name.

    The request takes a turn of the account's rate, shared through the store (--db) with
    any run in progress.
    """
    settings = account_settings(api_key_file, db, base_url)
    found = anyio.run(catalog.senders, settings)
    if as_json:
        print(json.dumps([s.as_json() for s in found], indent=2))
        return
    out.print(display.senders_table(found))


@app.command()
@friendly
def templates(
    sender_id: SenderOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Pending and rejected templates too.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list on stdout.")] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """A sender's templates (approved ones unless --all): what --template-id may name.

    Its requests take turns of the account's rate, shared through the store (--db).
    """
    if sender_id is None:
        raise UsageError("missing --sender-id: see `campaign senders`")
    settings = account_settings(api_key_file, db, base_url)
    sender = anyio.run(catalog.resolve_sender, settings, sender_id)
    found = anyio.run(catalog.templates, settings, sender, show_all)
    if as_json:
        print(json.dumps([t.as_json() for t in found], indent=2))
        return
    out.print(display.templates_table(found, sender))


@app.command("test")
@friendly
def test_(
    recipients: Annotated[
        Path, typer.Argument(metavar="RECIPIENTS", help="CSV or XLSX of recipients.")
    ],
    to: Annotated[
        str | None, typer.Option("--to", metavar="PHONE", help="Your own number (E.164).")
    ] = None,
    sender_id: SenderOption = None,
    template_id: TemplateOption = None,
    row: Annotated[
        int | None,
        typer.Option(metavar="N", help="The spreadsheet row whose values go (default: the first)."),
    ] = None,
    default_region: RegionOption = None,
    name_fallback: NameFallbackOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    sheet: SheetOption = None,
    phone_column: PhoneColumnOption = None,
    name_column: NameColumnOption = None,
    column_vars: VarOption = None,
    date_format: DateFormatOption = None,
    time_format: TimeFormatOption = None,
    block_red: BlockRedOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """Send one message, with one row's values and name, to your own number.

    Shows the message and the API's answer; recorded in the store apart from every
    campaign (it marks no row) and paced with the account's other requests. Never sent
    twice: run it again to send another. Exit 0 when the API accepted it, 1 otherwise,
    2 for bad input (nothing sent).
    """
    for flag, value in (("--to", to), ("--sender-id", sender_id), ("--template-id", template_id)):
        if value is None:
            raise UsageError(f"missing {flag}")
    settings = RunSettings(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        loading=LoadSettings(
            default_region=default_region,
            name_fallback=name_fallback,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            **column_settings(phone_column, name_column, column_vars, date_format, time_format),
        ),
        sending=SendSettings(timeout=timeout, block_red=block_red),
    )
    sender, template = resolve_ids(settings, sender_id, template_id)
    notices: list[str] = []
    sent = anyio.run(
        functools.partial(
            trial.send_test,
            recipients,
            settings,
            sender,
            template,
            str(to),
            row=row,
            on_notice=notices.append,
        )
    )
    for text in notices:
        err.print(text, highlight=False, markup=False)
    render_test_send(sent)
    raise typer.Exit(sent.exit_code)


def render_test_send(sent: trial.TestSendResult) -> None:
    out.print(
        f"test send of row {sent.row} to {sent.to} (sender {sent.sender_id}, "
        f"template {sent.template_id}): {sent.status}",
        highlight=False,
    )
    if sent.text is not None:
        out.print(sent.text, highlight=False, markup=False, soft_wrap=True)
    answer = display.answer_text(sent.outcome)
    out.print(f"the API answered: {answer}", highlight=False, markup=False, soft_wrap=True)


@app.command()
@friendly
def serve(
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS", help="Address to bind; other than loopback needs a password."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8080,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="File holding the console's password (else $CAMPAIGN_CONSOLE_PASSWORD).",
            dir_okay=False,
        ),
    ] = None,
    max_upload: Annotated[
        str, typer.Option(metavar="SIZE", help="Largest upload accepted, e.g. 50MB.")
    ] = "50MB",
    upload_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="Where uploaded files are kept (mode 700).")
    ] = Path("campaign-uploads"),
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="File holding the webhook's signing secret (else $AUTOCALLS_WEBHOOK_SECRET).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the web console: upload lists, start, watch and stop campaigns.

    It binds 127.0.0.1 unless told otherwise; any other address needs a password, and
    then every page needs a login. Campaigns started here run in this process with the
    same lease and pace as `campaign run`.
    """
    from campaign import web  # the terminal's commands never load the web door

    password = config_module.read_secret(password_file, "CAMPAIGN_CONSOLE_PASSWORD", "password")
    web.safety.check_bind(host, password)  # before anything else: refuse in one sentence
    config = web.ConsoleConfig(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        host=host,
        port=port,
        password=password,
        max_upload=web.safety.parse_size(max_upload),
        upload_dir=upload_dir,
        webhook_secret=web.webhook.read_webhook_secret(webhook_secret_file),
    )
    setup_logging(0, False, "text")
    web.serve(config)


suppress_app = typer.Typer(
    help="The account's suppression list: numbers that are never messaged (SUPPRESSED).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(suppress_app, name="suppress")
PhonesArgument = Annotated[
    list[str], typer.Argument(metavar="PHONE...", help="Numbers, best in E.164 (+447700900123).")
]
ReasonOption = Annotated[
    str | None, typer.Option(metavar="TEXT", help="Why, e.g. 'replied STOP' (kept with each).")
]


def the_account(db: str | None, base_url: str, api_key_file: Path | None) -> optouts.Account:
    """The list's account: the API's address and key (the key only names it; never stored)."""
    return optouts.Account(db, base_url, read_api_key(api_key_file))


@suppress_app.command("add")
@friendly
def suppress_add(
    phones: PhonesArgument,
    reason: ReasonOption = None,
    default_region: RegionOption = None,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """Put numbers on the suppression list.

    From now on no run messages them, also a run already going.
    """
    done = optouts.add(the_account(db, base_url, api_key_file), phones, reason, default_region)
    out.print(f"{done.added} added, {done.already} already on the list", highlight=False)


@suppress_app.command("import")
@friendly
def suppress_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or XLSX with a phone column.")],
    reason: ReasonOption = None,
    default_region: RegionOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    sheet: SheetOption = None,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """Put every number of a file's phone column on the suppression list.

    The file is read as `run` reads recipients. Rows whose number cannot be read are
    listed by row and not added (exit 2); the others are added all the same.
    """
    done = optouts.import_file(
        the_account(db, base_url, api_key_file),
        file,
        reason,
        default_region=default_region,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
    )
    if done.bad_rows:
        err.print(display.problems_table(done.bad_rows))
    out.print(f"{done.added} added, {done.already} already on the list", highlight=False)
    if done.bad_rows:
        rows = len({p.row for p in done.bad_rows})
        err.print(f"{rows} rows were not added: their number cannot be read", highlight=False)
        raise typer.Exit(2)


@suppress_app.command("remove")
@friendly
def suppress_remove(
    phones: PhonesArgument,
    default_region: RegionOption = None,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """Take numbers off the suppression list.

    Later runs may message them again.
    """
    account = the_account(db, base_url, api_key_file)
    removed, absent = optouts.remove(account, phones, default_region)
    out.print(f"{removed} removed, {absent} not on the list", highlight=False)


@suppress_app.command("list")
@friendly
def suppress_list(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list on stdout.")] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
) -> None:
    """The suppression list of the account, oldest first."""
    numbers = optouts.listing(the_account(db, base_url, api_key_file))
    if as_json:
        print(json.dumps([report.suppression_line(n) for n in numbers], indent=2))
        return
    out.print(display.suppressions_table(numbers))
