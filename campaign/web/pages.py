"""The console's routes: thin, like cli.py; the runner and report.py do the work.

Every route that changes something reads its form through `safety.form_of` (the CSRF
check); every page is a Jinja2 template with autoescape on.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import re
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from campaign import deliveries, display, report, runner, trial
from campaign.errors import CampaignError, UsageError
from campaign.model import ALREADY_SENT, RowState, Severity
from campaign.store import CampaignInfo, Store
from campaign.web import safety
from campaign.web.account import AccountCache
from campaign.web.options import CampaignOptions, run_settings
from campaign.web.runs import INTERRUPTED, ConsoleRuns

PROBLEMS_SHOWN = 500  # on the validation page; the CSV download has every one
UPLOAD_SUFFIXES = (".csv", ".xlsx", ".tsv", ".txt")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Draft:
    """An uploaded, validated file waiting for its Start button."""

    path: Path
    sender_id: int
    template_id: int
    sender_name: str
    template_name: str
    options: CampaignOptions
    name: str | None
    validation: runner.Validation
    notices: list[str] = field(default_factory=list)
    tests: list[TestSend] = field(default_factory=list)  # test sends, newest first


@dataclass(frozen=True)
class TestSend:
    """A test send from the validation page, as the page shows it."""

    to: str
    row: int | None  # None: refused before a row was chosen
    status: str  # sent, failed, not_sent, unknown, or refused
    answer: str  # the API's answer in one line, or why nothing was sent
    text: str | None = None  # the message as sent
    notices: tuple[str, ...] = ()


@dataclass
class Console:
    """What every route shares: settings, the store, the runs, the account's lists."""

    config: Any  # ConsoleConfig (console.py imports this module)
    store: Store
    runs: ConsoleRuns
    account: AccountCache
    templates: Jinja2Templates
    drafts: dict[str, Draft] = field(default_factory=dict)
    # A campaign's chart while it is not sending: (its status and counts, the series).
    charts: dict[int, tuple[tuple, list[list[int]]]] = field(default_factory=dict)


def console(request: Request) -> Console:
    return request.app.state.console


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """A template with what every page needs: the CSRF token and whether a login exists."""
    config = console(request).config
    context |= {
        "csrf": safety.csrf_token(request),
        "login": bool(config.password),
        "webhook_on": bool(config.webhook_secret),
    }
    return console(request).templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def changes(
    handler: Callable[..., Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A route that changes something: its form, CSRF-checked, and its errors as a page."""

    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        try:
            form = await safety.form_of(request)
        except safety.CsrfRefused:
            return page(
                request,
                "error.html",
                403,
                message="This form has expired or did not come from this console; reload "
                "the page and try again.",
            )
        try:
            return await handler(request, form)
        except CampaignError as exc:
            return page(request, "error.html", 400, message=str(exc))

    return route


# --- login --------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return page(request, "login.html")


@changes
async def login(request: Request, form) -> Response:
    expected = console(request).config.password
    given = str(form.get("password") or "")
    if not expected or not safety.password_matches(given, expected):
        return page(request, "login.html", 401, failed=True)
    request.session.clear()
    request.session["user"] = "console"
    request.session["csrf"] = secrets.token_urlsafe(32)  # a new session, a new token
    return RedirectResponse("/", status_code=303)


@changes
async def logout(request: Request, form) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# --- the campaigns list ---------------------------------------------------------------


async def campaigns_page(request: Request) -> Response:
    return page(request, "list.html", campaigns=campaign_list(console(request)))


async def campaigns_json(request: Request) -> Response:
    return JSONResponse({"campaigns": campaign_list(console(request))})


def campaign_list(state: Console) -> list[dict[str, Any]]:
    """Every campaign, newest first, with its state as the console shows it."""
    return [campaign_view(state, c, detail=False) for c in reversed(state.store.campaigns())]


def campaign_view(state: Console, campaign: CampaignInfo, *, detail: bool) -> dict[str, Any]:
    """A campaign as the pages and their JSON show it; `detail` adds codes and the chart."""
    store = state.store
    # The list asks only what its table shows: it is polled every second during a run.
    facts = report.campaign_status(store, campaign) if detail else {}
    counts = facts.get("counts") or store.counts(campaign.id)
    active = facts["active"] if detail else store.lease_holder(campaign.id) is not None
    here = state.runs.is_running(campaign.name)
    chart = sends_per_second(state, campaign, counts, active) if detail else []
    rate = live_rate(chart) if active else 0.0
    waiting = counts["pending"] + counts["sending"]
    done = sum(counts[s] for s in ("sent", "failed", "unknown", "skipped"))
    shown = shown_state(campaign.status, active, here)
    delivery = facts.get("delivery") or deliveries.delivery_counts(store, campaign.id)
    daytime = facts.get("daytime") or report.daytime_status(store, campaign)
    view = {
        "id": campaign.id,
        "name": campaign.name,
        "state": shown,
        "created_at": _utc_text(campaign.created_at),
        "total": campaign.total_rows,
        "done": done,
        "counts": counts,
        "delivery": delivery,
        "delivery_short": delivery_short(delivery),
        "daytime": daytime,
        "daytime_short": daytime_short(daytime),
        "rate": round(rate, 1),
        "eta_seconds": round(waiting / rate) if rate else None,
        "halt_reason": campaign.halt_reason,
        "can_stop": here,
        "can_resume": not active and counts["pending"] > 0,
        "can_retry_failed": not active and counts["failed"] > 0,
        "can_retry_unknown": not active and counts["unknown"] > 0,
    }
    if detail:
        ended = state.runs.ended.get(campaign.name)
        sender, template = state.account.find(campaign.sender_id, campaign.template_id)
        view |= {
            "sender": sender,
            "template": template,
            "source": Path(campaign.source).name,
            "send_window": campaign.send_window,
            "max_per_recipient": campaign.max_per_recipient,  # its frequency cap, kept
            "errors": facts["errors"],
            "chart": chart,
            "chart_window": CHART_WINDOW if active else None,
            "error": ended.error if ended else None,
            "notices": (state.runs.running[campaign.name].notices if here else [])
            or (ended.notices if ended else []),
        }
    return view


DELIVERY_WORDS = (("read", "read"), ("delivered", "delivered"), ("failed", "undelivered"))


def delivery_short(delivery: dict[str, int]) -> str:
    """The list's one cell on what the webhook said of the sent rows (it wraps between
    parts only: each keeps its number with its words)."""
    parts = [f"{delivery[key]} {word}" for key, word in DELIVERY_WORDS if delivery[key]]
    if delivery["no_news"]:
        parts.append(f"{delivery['no_news']} no news yet")
    return f"{NBSP}· ".join(part.replace(" ", NBSP) for part in parts) or "none sent yet"


NBSP = "\u00a0"


def daytime_short(daytime: dict[str, Any]) -> str | None:
    """The list's line under a campaign's state; its page says when the next one goes."""
    return f"{daytime['rows']} wait for daytime" if daytime["rows"] else None


def _utc_text(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # SQLite: naive UTC
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def shown_state(status: str, active: bool, here: bool) -> str:
    """The state a person reads: a `running` campaign with no live run was interrupted."""
    if active:
        return "running" if here else "running elsewhere"
    if status == "running":  # its run died without a word: a killed server or CLI
        return INTERRUPTED
    return status


RATE_WINDOW = 10  # seconds of sends the live rate is read from


def live_rate(chart: list[list[int]], now: float | None = None) -> float:
    """Sends per second over the last RATE_WINDOW seconds (or since the first of them)."""
    now = time.time() if now is None else now
    recent = [(second, n) for second, n in chart if second > now - RATE_WINDOW]
    if not recent:
        return 0.0
    return sum(n for _, n in recent) / max(1.0, now - recent[0][0])


CHART_WINDOW = 600  # seconds: while a campaign sends, its live chart shows the last ones


def sends_per_second(
    state: Console,
    campaign: CampaignInfo,
    counts: dict[str, int],
    active: bool,
    now: datetime | None = None,
) -> list[list[int]]:
    """[epoch second, send requests that left in it] for the chart (report.py's series).

    The page asks every second or few: while a run sends, only its last CHART_WINDOW
    seconds are read; otherwise the whole campaign, read again only when its counts or
    status changed (a campaign of a million rows is not reread every few seconds).
    """
    if active:
        since = (now or datetime.now(UTC)) - timedelta(seconds=CHART_WINDOW)
        return [[s, n] for s, n in report.sends_per_second(state.store, campaign, since)]
    key = (campaign.status, tuple(sorted(counts.items())))
    kept = state.charts.get(campaign.id)
    if kept is None or kept[0] != key:
        chart = [[s, n] for s, n in report.sends_per_second(state.store, campaign)]
        kept = state.charts[campaign.id] = (key, chart)
    return kept[1]


# --- one campaign ---------------------------------------------------------------------


def find_campaign(state: Console, request: Request) -> CampaignInfo:
    wanted = request.path_params["id"]
    for campaign in state.store.campaigns():
        if campaign.id == wanted:
            return campaign
    raise CampaignNotFound


class CampaignNotFound(Exception):
    pass


async def campaign_page(request: Request) -> Response:
    state = console(request)
    try:
        campaign = find_campaign(state, request)
    except CampaignNotFound:
        return page(request, "error.html", 404, message="There is no such campaign.")
    view = campaign_view(state, campaign, detail=True)
    return page(request, "campaign.html", campaign=view)


async def campaign_json(request: Request) -> Response:
    state = console(request)
    try:
        campaign = find_campaign(state, request)
    except CampaignNotFound:
        return JSONResponse({"error": "no such campaign"}, status_code=404)
    return JSONResponse(campaign_view(state, campaign, detail=True))


@changes
async def stop(request: Request, form) -> Response:
    state = console(request)
    campaign = _campaign_or_fail(state, request)
    if not state.runs.stop(campaign.name):
        raise UsageError("this console is not sending that campaign; nothing to stop")
    return _to_campaign(campaign)


@changes
async def resume(request: Request, form) -> Response:
    state = console(request)
    campaign = _campaign_or_fail(state, request)
    await state.runs.resume(campaign.name, run_settings(state.config, again_options(form)))
    return _to_campaign(campaign)


@changes
async def retry(request: Request, form) -> Response:
    """Retry failed rows, or unknown ones once the person typed the campaign's name."""
    state = console(request)
    campaign = _campaign_or_fail(state, request)
    which = form.get("rows")
    sending: dict[str, Any] = {}
    if which == "failed":
        rows = runner.Retry((RowState.FAILED,))
    elif which == "unknown":
        if str(form.get("confirm") or "").strip() != campaign.name:
            raise UsageError(
                "unknown rows may already have reached their recipients; type the "
                "campaign's name to send them again"
            )
        rows = runner.Retry((RowState.UNKNOWN,))
    elif which == "already_sent":
        if str(form.get("confirm") or "").strip() != campaign.name:
            raise UsageError("type the campaign's name to send rows skipped as ALREADY_SENT")
        rows = runner.Retry((RowState.SKIPPED,), ALREADY_SENT)
        sending["dedupe_window"] = 0.0  # else the check would skip them again
    else:
        raise UsageError("say which rows to retry: failed or unknown")
    settings = run_settings(state.config, again_options(form), **sending)
    await state.runs.resume(campaign.name, settings, retry=rows)
    return _to_campaign(campaign)


def again_options(form) -> CampaignOptions:
    """A resume's or retry's send window and frequency cap, as its form gives them.

    As `campaign resume`: an empty window or cap keeps the campaign's own (the store
    keeps them), a new one replaces it; `no_window` removes the window, a cap of `off`
    removes the cap.
    """
    text = {k: str(form.get(k) or "") for k in ("send_window", "max_per_recipient")}
    options = CampaignOptions.from_form(text)
    if form.get("no_window") == "on":
        options = dataclasses.replace(options, send_window=None, send_window_off=True)
    return options


def _campaign_or_fail(state: Console, request: Request) -> CampaignInfo:
    try:
        return find_campaign(state, request)
    except CampaignNotFound:
        raise UsageError("there is no such campaign") from None


def _to_campaign(campaign: CampaignInfo) -> Response:
    return RedirectResponse(f"/campaigns/{campaign.id}", status_code=303)


async def download(request: Request) -> Response:
    """The campaign's report as CSV, JSON or the one-page HTML (report.py writes each)."""
    state = console(request)
    try:
        campaign = find_campaign(state, request)
    except CampaignNotFound:
        return page(request, "error.html", 404, message="There is no such campaign.")
    kind = request.path_params["kind"]
    if kind not in ("csv", "json", "html"):
        return page(request, "error.html", 404, message="Reports come as csv, json or html.")
    out = io.StringIO()
    headers = {"content-disposition": f'attachment; filename="campaign-{campaign.id}.{kind}"'}
    if kind == "csv":
        report.write_csv(report.records(state.store, campaign), out)
        media = "text/csv"
    elif kind == "json":
        lines = report.records(state.store, campaign)
        report.write_json(campaign, state.store.counts(campaign.id), lines, out)
        media = "application/json"
    else:
        report.write_html(state.store, campaign, out)
        media = "text/html"
        headers["content-security-policy"] = report.CSP  # its own: inline CSS, no script
    return Response(out.getvalue(), media_type=media, headers=headers)


# --- a new campaign -----------------------------------------------------------------


async def new_page(request: Request) -> Response:
    return await _new_form(request)


async def _new_form(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    state = console(request)
    senders, account_error = [], None
    try:
        senders = await state.account.get(run_settings(state.config))
    except CampaignError as exc:
        account_error = str(exc)
    return page(
        request,
        "new.html",
        status_code,
        senders=senders,
        account_error=account_error,
        error=error,
        max_upload_mb=state.config.max_upload / (1 << 20),
    )


@changes
async def upload(request: Request, form) -> Response:
    """Keep the uploaded file (mode 600), check it as `campaign validate` does, show it."""
    state = console(request)
    file = form.get("recipients")
    if not isinstance(file, UploadFile) or not file.filename:
        return await _new_form(request, "Choose a CSV or XLSX file of recipients.", 400)
    sender, template = str(form.get("sender") or ""), str(form.get("template") or "")
    if not (sender.strip() and template.strip()):
        return await _new_form(request, "Choose a sender and a template.", 400)
    notices: list[str] = []
    try:
        options = CampaignOptions.from_form({k: v for k, v in form.items() if isinstance(v, str)})
        settings = run_settings(state.config, options)  # refuses options it cannot apply
        # The names the pickers showed, to ids by catalog's rules (as the CLI's flags).
        sender_id, template_id = await state.account.resolve(settings, sender, template)
        path = await save_upload(file, state.config.upload_dir)
    except CampaignError as exc:
        return await _new_form(request, str(exc), 400)
    try:
        validation = await validate(path, settings, sender_id, template_id, notices)
    except CampaignError as exc:
        shutil.rmtree(path.parent, ignore_errors=True)  # a refused file is not kept
        return await _new_form(request, str(exc), 400)
    sender_name, template_name = state.account.find(sender_id, template_id)
    token = secrets.token_urlsafe(16)
    state.drafts[token] = Draft(
        path=path,
        sender_id=sender_id,
        template_id=template_id,
        sender_name=sender_name,
        template_name=template_name,
        options=options,
        name=str(form.get("name") or "").strip() or None,
        validation=validation,
        notices=notices + validation.load.notices,
    )
    return RedirectResponse(f"/drafts/{token}", status_code=303)


async def validate(
    path: Path, settings: runner.RunSettings, sender_id: int, template_id: int, notices: list[str]
) -> runner.Validation:
    """`campaign validate` of the upload, on a worker thread: reading a big file would
    otherwise hold up the pages and the runs on the server's loop."""
    check = functools.partial(
        runner.validate_file,
        path,
        settings,
        sender_id=sender_id,
        template_id=template_id,
        on_notice=notices.append,
    )
    return await anyio.to_thread.run_sync(anyio.run, check)


async def save_upload(file: UploadFile, upload_dir: Path) -> Path:
    """Copy an upload into its own private directory, readable by this user only."""
    name = SAFE_NAME.sub("_", Path(file.filename or "recipients.csv").name).strip("._")
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise UsageError("upload a .csv or .xlsx file (a .tsv or .txt of values also works)")
    upload_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = upload_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := await file.read(1 << 20):
            out.write(chunk)
    return path


def _draft(state: Console, request: Request) -> Draft:
    draft = state.drafts.get(request.path_params["token"])
    if draft is None:
        raise UsageError("this upload is no longer here (the console restarted?); upload it again")
    return draft


async def draft_page(
    request: Request, error: str | None = None, status_code: int = 200
) -> Response:
    state = console(request)
    try:
        draft = _draft(state, request)
    except UsageError as exc:
        return page(request, "error.html", 404, message=str(exc))
    load, v = draft.validation.load, draft.validation
    problems = [p for p in load.problems if p.severity != Severity.SKIP] or load.problems
    return page(
        request,
        "validation.html",
        status_code,
        error=error,
        draft=draft,
        token=request.path_params["token"],
        load=load,
        validation=draft.validation,
        problems=problems[:PROBLEMS_SHOWN],
        more_problems=max(0, len(problems) - PROBLEMS_SHOWN),
        warnings=sum(1 for p in load.problems if p.severity == Severity.WARNING),
        already_sent=runner.already_sent_text(draft.validation.already_sent)
        if draft.validation.already_sent and draft.validation.already_sent.rows
        else None,
        suppressed=runner.suppressed_text(v.suppressed) if v.suppressed else None,
        capped=runner.capped_text(v.capped, v.cap) if v.capped and v.cap else None,
    )


async def draft_problems(request: Request) -> Response:
    state = console(request)
    try:
        draft = _draft(state, request)
    except UsageError as exc:
        return page(request, "error.html", 404, message=str(exc))
    out = io.StringIO()
    report.write_problems_csv(draft.validation.load.problems, out)
    headers = {"content-disposition": 'attachment; filename="problems.csv"'}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@changes
async def start(request: Request, form) -> Response:
    state = console(request)
    draft = _draft(state, request)
    options = draft.options
    if form.get("skip_invalid") == "on" and not options.skip_invalid:
        options = dataclasses.replace(options, skip_invalid=True)
    try:
        name = await state.runs.start_new(
            draft.path,
            draft.sender_id,
            draft.template_id,
            run_settings(state.config, options),
            name=draft.name,
        )
    except CampaignError as exc:
        return await draft_page(request, str(exc), 400)
    state.drafts.pop(request.path_params["token"], None)
    campaign = state.store.find_campaign(name)
    assert campaign is not None
    return _to_campaign(campaign)


@changes
async def test_send(request: Request, form) -> Response:
    """Send the draft's row (the first valid one, or the chosen row) to the person's own
    number, once (`campaign test`); the page then shows the API's answer."""
    state = console(request)
    draft = _draft(state, request)
    to = str(form.get("to") or "").strip()
    row_text = str(form.get("row") or "").strip()
    notices: list[str] = []
    try:
        if not to:
            raise UsageError("give the number to send the test to, with its +country code")
        if row_text and not row_text.isdigit():
            raise UsageError(f"the row must be a spreadsheet row number, not {row_text!r}")
        sent = await send_one(
            draft,
            run_settings(state.config, draft.options),
            to,
            int(row_text) if row_text else None,
            notices,
        )
        result = TestSend(
            to=sent.to,
            row=sent.row,
            status=sent.status,
            answer=display.answer_text(sent.outcome),
            text=sent.text,
            notices=tuple(notices),
        )
    except CampaignError as exc:
        result = TestSend(to=to, row=None, status="refused", answer=str(exc))
    draft.tests.insert(0, result)
    return RedirectResponse(f"/drafts/{request.path_params['token']}#test-send", status_code=303)


async def send_one(
    draft: Draft, settings: runner.RunSettings, to: str, row: int | None, notices: list[str]
) -> trial.TestSendResult:
    """trial.send_test on a worker thread: it reads the file to find its row."""
    send = functools.partial(
        trial.send_test,
        draft.path,
        settings,
        draft.sender_id,
        draft.template_id,
        to,
        row=row,
        on_notice=notices.append,
    )
    return await anyio.to_thread.run_sync(anyio.run, send)


def routes() -> list[Route]:
    return [
        Route("/", campaigns_page),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/campaigns", campaigns_json),
        Route("/api/campaigns/{id:int}", campaign_json),
        Route("/campaigns/new", new_page, methods=["GET"]),
        Route("/campaigns/new", upload, methods=["POST"]),
        Route("/drafts/{token}", draft_page),
        Route("/drafts/{token}/problems.csv", draft_problems),
        Route("/drafts/{token}/start", start, methods=["POST"]),
        Route("/drafts/{token}/test", test_send, methods=["POST"]),
        Route("/campaigns/{id:int}", campaign_page),
        Route("/campaigns/{id:int}/stop", stop, methods=["POST"]),
        Route("/campaigns/{id:int}/resume", resume, methods=["POST"]),
        Route("/campaigns/{id:int}/retry", retry, methods=["POST"]),
        Route("/campaigns/{id:int}/report.{kind:str}", download),
    ]
