"""The `campaign` command: parse flags, call one function, render the result."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console

from campaign import display, report, runner
from campaign.client import DEFAULT_BASE_URL
from campaign.errors import CampaignError, InputError, UsageError
from campaign.model import RowState
from campaign.runner import RunResult, RunSettings
from campaign.store import Store

app = typer.Typer(
    help="Send a WhatsApp template message to every recipient of a spreadsheet, "
    "at most once, within the rate limit, resumably.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands.
DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="CAMPAIGN_DB", help="SQLite path or SQLAlchemy URL."),
]
BaseUrlOption = Annotated[
    str, typer.Option("--base-url", envvar="AUTOCALLS_BASE_URL", help="The API's address.")
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="File holding the API key (else $AUTOCALLS_API_KEY).",
        dir_okay=False,
    ),
]
RateOption = Annotated[float, typer.Option(min=0.1, help="Requests per second, at most.")]
TimeoutOption = Annotated[float, typer.Option(min=1, help="Seconds to wait for an answer.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")]
VerboseOption = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")]


def main() -> None:
    app()


def friendly(command: F) -> F:
    """Turn the library's errors into one clear line and their exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            if exc.problems:
                err.print(display.problems_table(exc.problems))
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except CampaignError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def read_api_key(key_file: Path | None) -> str:
    """The API key, from a file or the environment; never from the command line."""
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the API key file {key_file}: {exc.strerror}") from None
        if not key:
            raise UsageError(f"the API key file {key_file} is empty")
        return key
    key = os.environ.get("AUTOCALLS_API_KEY", "").strip()
    if not key:
        raise UsageError("no API key: set AUTOCALLS_API_KEY or pass --api-key-file")
    return key


def setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
@friendly
def run(
    recipients: Annotated[Path, typer.Argument(help="CSV or XLSX of recipients.")],
    sender_id: Annotated[int, typer.Option(help="The WhatsApp sender's id.")],
    template_id: Annotated[int, typer.Option(help="The approved template's id.")],
    name: Annotated[
        str | None, typer.Option(help="Campaign name (default: the file's name and content).")
    ] = None,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = 5.0,
    timeout: TimeoutOption = 30.0,
    max_attempts: Annotated[int, typer.Option(min=1, help="Tries of a row not processed.")] = 5,
    default_region: Annotated[
        str | None, typer.Option(help="Region of national numbers, e.g. GB.")
    ] = None,
    name_fallback: Annotated[str | None, typer.Option(help="Name for rows without one.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip invalid rows (recorded as skipped) instead of refusing.")
    ] = False,
    block_red: Annotated[
        bool, typer.Option(help="Refuse a sender whose quality rating is RED.")
    ] = False,
    allow_partial: Annotated[
        bool, typer.Option(help="Start even if the sender's 24-hour tier is too small.")
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Send the template to every recipient of a file; run it again to resume.

    The same file with the same sender and template is the same campaign: rows already
    sent, failed, unknown or skipped are never sent again. Exit codes: 0 all sent or
    skipped, 1 some failed or unknown, 2 bad input, 3 halted by an account problem,
    4 busy in another run, 130 interrupted.
    """
    setup_logging(verbose)
    settings = RunSettings(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        rate=rate,
        timeout=timeout,
        max_attempts=max_attempts,
        default_region=default_region,
        name_fallback=name_fallback,
        skip_invalid=skip_invalid,
        block_red=block_red,
        allow_partial=allow_partial,
        handle_signals=True,
    )
    view = display.ProgressView(err, quiet=quiet)
    try:
        result = anyio.run(
            functools.partial(
                runner.run_campaign,
                recipients,
                sender_id,
                template_id,
                settings,
                name=name,
                on_start=view.start,
                on_row=view.row,
                on_notice=view.notice,
            )
        )
    finally:
        view.close()
    finish(result)


@app.command()
@friendly
def resume(
    name: Annotated[str, typer.Argument(help="The campaign's name.")],
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = 5.0,
    timeout: TimeoutOption = 30.0,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Go on with a stored campaign's pending rows; no file needed."""
    setup_logging(verbose)
    settings = RunSettings(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        rate=rate,
        timeout=timeout,
        handle_signals=True,
    )
    view = display.ProgressView(err, quiet=quiet)
    try:
        result = anyio.run(
            functools.partial(
                runner.resume_campaign,
                name,
                settings,
                on_start=view.start,
                on_row=view.row,
                on_notice=view.notice,
            )
        )
    finally:
        view.close()
    finish(result)


@app.command()
@friendly
def retry(
    name: Annotated[str, typer.Argument(help="The campaign's name.")],
    failed: Annotated[bool, typer.Option("--failed", help="Send the failed rows again.")] = False,
    code: Annotated[
        str | None, typer.Option(help="With --failed: only rows failed with this code.")
    ] = None,
    unknown: Annotated[
        bool, typer.Option("--unknown", help="Send the unknown rows again (risk: twice).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before --unknown.")] = False,
    db: DbOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key_file: KeyFileOption = None,
    rate: RateOption = 5.0,
    timeout: TimeoutOption = 30.0,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
) -> None:
    """Put failed (or unknown) rows back to pending and send them.

    Unknown rows may already have reached their recipient: sending them again may give
    those people a second message. They are only retried on this explicit request.
    """
    setup_logging(verbose)
    if failed == unknown:
        raise UsageError("say which rows to retry: --failed or --unknown")
    if code and not failed:
        raise UsageError("--code goes with --failed")
    if unknown:
        confirm_unknown(yes)
    states = (RowState.FAILED,) if failed else (RowState.UNKNOWN,)
    settings = RunSettings(
        api_key=read_api_key(api_key_file),
        db=db,
        base_url=base_url,
        rate=rate,
        timeout=timeout,
        handle_signals=True,
    )
    view = display.ProgressView(err, quiet=quiet)
    try:
        result = anyio.run(
            functools.partial(
                runner.resume_campaign,
                name,
                settings,
                retry=runner.Retry(states, code),
                on_start=view.start,
                on_row=view.row,
                on_notice=view.notice,
            )
        )
    finally:
        view.close()
    finish(result)


def confirm_unknown(yes: bool) -> None:
    err.print(
        "[yellow]warning:[/] unknown rows may already have been delivered; "
        "retrying them may send those recipients a second message."
    )
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("retrying unknown rows needs --yes when there is no terminal to ask")
    if not typer.confirm("Send them again?", err=True):
        raise typer.Exit(1)


def finish(result: RunResult) -> None:
    """Print a run's summary and leave with its exit code."""
    out.print(display.counts_table(f"campaign {result.campaign.name}", result.counts))
    if result.halt_reason:
        err.print(f"[red]halted:[/] {result.halt_reason}", highlight=False)
        err.print("fix the cause, then run the same command again to send the rest")
    elif result.stopped:
        err.print(f"stopped; resume with: campaign resume {result.campaign.name}")
    raise typer.Exit(result.exit_code)


@app.command()
@friendly
def status(
    name: Annotated[str | None, typer.Argument(help="A campaign (default: all).")] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Show rows per state and per error code, the halt reason, and a live run's rate."""
    store = Store.open(db)
    try:
        campaigns = [runner.find(store, name)] if name else store.campaigns()
        states = [campaign_status(store, c) for c in campaigns]
    finally:
        store.close()
    if as_json:
        print(json.dumps(states[0] if name else states, indent=2, default=str))
        return
    for state in states:
        render_status(state)


def campaign_status(store: Store, campaign: Any) -> dict[str, Any]:
    counts = store.counts(campaign.id)
    active = store.lease_holder(campaign.id) is not None
    rate = store.recent_rate(campaign.id) if active else 0.0
    waiting = counts["pending"] + counts["sending"]
    return {
        **report.campaign_summary(campaign),
        "counts": counts,
        "errors": [
            {"state": s, "error_code": c, "rows": n} for s, c, n in store.error_counts(campaign.id)
        ],
        "active": active,
        "rate": round(rate, 2),
        "eta_seconds": round(waiting / rate) if active and rate else None,
    }


def render_status(state: dict[str, Any]) -> None:
    out.print(
        display.counts_table(f"campaign {state['name']} ({state['status']})", state["counts"])
    )
    if state["errors"]:
        out.print(
            display.error_table((e["state"], e["error_code"], e["rows"]) for e in state["errors"])
        )
    if state["halt_reason"]:
        out.print(f"[red]halted:[/] {state['halt_reason']}", highlight=False)
    if state["active"]:
        eta = state["eta_seconds"]
        out.print(f"running: {state['rate']}/s" + (f", about {eta} s left" if eta else ""))


@app.command("report")
@friendly
def report_(
    name: Annotated[str, typer.Argument(help="The campaign's name.")],
    db: DbOption = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.", dir_okay=False)
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
) -> None:
    """One line per input row: who got what, and why not."""
    if fmt not in ("csv", "json"):
        raise UsageError(f"--format must be csv or json, not {fmt!r}")
    store = Store.open(db)
    try:
        campaign = runner.find(store, name)
        target = out_file.open("w", encoding="utf-8", newline="") if out_file else sys.stdout
        try:
            lines = report.records(store, campaign)
            if fmt == "csv":
                n = report.write_csv(lines, target)
            else:
                n = report.write_json(campaign, store.counts(campaign.id), lines, target)
        finally:
            if out_file:
                target.close()
    finally:
        store.close()
    if out_file:
        err.print(f"wrote {n} rows to {out_file}")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    latency: Annotated[
        str, typer.Option(help="Seconds per answer: a number or a range like 0.05-1.5.")
    ] = "0.05",
    rate: Annotated[float, typer.Option(help="Requests per rolling second per key.")] = 5,
    balance: Annotated[int | None, typer.Option(help="Messages the account can pay for.")] = None,
) -> None:
    """Serve the built-in fake of the autocalls API on loopback (key: sandbox-key)."""
    from campaign import sandbox as fake

    low, _, high = latency.partition("-")
    fake_api = fake.Sandbox(rate=rate, latency=(float(low), float(high or low)), balance=balance)
    err.print(f"sandbox on http://127.0.0.1:{port} (API key: {fake.DEFAULT_KEY})")
    fake.serve(fake_api, host="127.0.0.1", port=port)


@app.command()
@friendly
def demo(
    db: Annotated[Path | None, typer.Option(help="Keep the demo's store here.")] = None,
) -> None:
    """Run the sample campaign in samples/ against the built-in sandbox."""
    import tempfile

    import httpx

    from campaign import sandbox as fake

    sample = Path(str(resources.files("campaign.samples") / "recipients.csv"))
    fake_api = fake.Sandbox(latency=(0.05, 0.4))
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(
            api_key=fake.DEFAULT_KEY,
            db=str(db or Path(tmp) / "demo.db"),
            base_url="http://127.0.0.1",
            handle_signals=True,
        )
        view = display.ProgressView(err)
        try:
            result = anyio.run(
                functools.partial(
                    runner.run_campaign,
                    sample,
                    fake.DEMO_SENDER_ID,
                    fake.DEMO_TEMPLATE_ID,
                    settings,
                    name="demo",
                    transport=httpx.ASGITransport(app=fake_api.app),
                    on_start=view.start,
                    on_row=view.row,
                    on_notice=view.notice,
                )
            )
        finally:
            view.close()
        out.print(display.counts_table("demo campaign", result.counts))
        out.print(f"the sandbox accepted {len(fake_api.messages)} messages")
