"""One campaign run: open the store, load or resume, dispatch, halt or finish."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import pickle
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio
import httpx
import sqlalchemy as sa

from campaign import deliveries
from campaign.client import DEFAULT_BASE_URL, AutocallsClient, account_id
from campaign.config import duration_text
from campaign.daytime import Daytime, DaytimeWait, SendWindow
from campaign.dispatcher import Dispatcher, DispatchSettings
from campaign.eligibility import Cap, cap_text, parse_cap
from campaign.errors import CampaignBusy, InputError, NotFound, StoreUnavailable, UsageError
from campaign.limiter import AccountLimiter
from campaign.model import (
    ALREADY_SENT,
    FREQUENCY_CAP,
    SUPPRESSED,
    Recipient,
    RowEvent,
    RowState,
    SkippedRow,
)
from campaign.patience import DEFAULT_PATIENCE, StorePatience
from campaign.preflight import Preflight, check_account, check_tier
from campaign.preview import Preview, PreviewCount
from campaign.store import (
    DEFAULT_DEDUPE_WINDOW,
    KEPT_SETTINGS,
    AlreadySent,
    CampaignInfo,
    Store,
    lease_owner_id,
    message_keyer,
)

if TYPE_CHECKING:
    from campaign.loader import Chunk, LoadResult

log = logging.getLogger(__name__)

# In a worker thread: raises the run's cancellation (Ctrl-C) if it came meanwhile.
cancelled = anyio.from_thread.check_cancelled

LEASE_TTL = 6.0  # seconds a killed run keeps others out, at most (less on the same host)
LEASE_RENEW = 1.5


DEFAULT_RATE = 5.0  # requests per second: the API's limit per account
DEFAULT_TIMEOUT = 30.0  # seconds to wait for an answer
DEFAULT_MAX_ATTEMPTS = 5  # tries of a row the API certainly did not process


@dataclass(frozen=True)
class LoadSettings:
    """How a recipients file is read and checked."""

    default_region: str | None = None  # of numbers written without +country code
    name_fallback: str | None = None  # for rows without a name
    encoding: str | None = None  # of a CSV file, when the guess is wrong
    delimiter: str | None = None
    sheet: str | None = None  # of an XLSX workbook (default: the first)
    skip_invalid: bool = False  # record invalid rows as skipped and send the rest
    phone_column: str | None = None  # the user's choice, over the guesses
    name_column: str | None = None  # a column, or a pattern: "{First Name} {Last Name}"
    column_vars: tuple[tuple[str, str], ...] = ()  # (template variable, column)
    date_format: str | None = None  # strftime, for an XLSX's date cells (else as shown)
    time_format: str | None = None  # strftime, for an XLSX's time-of-day cells


@dataclass(frozen=True)
class SendSettings:
    """How the rows are sent, and what the account must allow before the first one."""

    rate: float = DEFAULT_RATE
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW  # seconds; 0 turns the guard off
    store_patience: float = DEFAULT_PATIENCE  # seconds to wait for a failing store
    block_red: bool = False  # refuse a sender whose quality rating is RED
    allow_partial: bool = False  # start a campaign bigger than the sender's 24-hour tier
    # The frequency cap across campaigns. None: the campaign's own (kept from the run that
    # started it), if any; a cap given replaces the campaign's.
    max_per_recipient: Cap | None = None
    max_per_recipient_off: bool = False  # --max-per-recipient off: remove the campaign's cap
    # The recipients' send window, in their local time. None: the campaign's own (kept
    # from the run that started it), if any; a window given replaces the campaign's.
    send_window: SendWindow | None = None
    default_timezone: str | None = None  # for numbers with no known zone (else: any hour)
    send_window_off: bool = False  # --send-window off: remove the campaign's window
    wait_for_daytime: bool = False  # sleep until a window opens instead of exiting 6


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides the file; flags, environment and config fill it."""

    api_key: str = field(repr=False)  # never printed
    db: str | None = None
    base_url: str = DEFAULT_BASE_URL
    loading: LoadSettings = field(default_factory=LoadSettings)
    sending: SendSettings = field(default_factory=SendSettings)
    handle_signals: bool = False  # Ctrl-C and SIGTERM stop cleanly (the CLI turns it on)


@dataclass(frozen=True)
class RunResult:
    campaign: CampaignInfo
    counts: dict[str, int]
    halt_reason: str | None = None
    stopped: bool = False
    load: LoadResult | None = None  # set when this run read the file (its rows: in the store)
    daytime: DaytimeWait | None = None  # finished for now: these rows wait for daytime

    @property
    def exit_code(self) -> int:
        """0 all sent or skipped, 1 failed or unknown rows, 3 halted, 6 finished for now
        (the rest waits for the recipients' daytime: a later run goes on), 130 stopped.

        The others come from errors.py: 2 bad input, 4 busy, 5 the store stayed down.
        """
        if self.halt_reason:
            return 3
        if self.stopped:
            return 130
        if self.daytime is not None:  # failed or unknown rows are told when it finishes
            return 6
        if self.counts[RowState.FAILED] or self.counts[RowState.UNKNOWN]:
            return 1
        return 0


OnRow = Callable[[RowEvent], None]
OnStart = Callable[[CampaignInfo, dict[str, int]], None]
OnNotice = Callable[[str], None]
OnWait = Callable[[DaytimeWait | None], None]  # a wait for daytime begins (None: it ended)


@dataclass(frozen=True)
class Retry:
    """Rows a person chose to send again: failed ones (of one code), unknown ones, or
    ones skipped as ALREADY_SENT."""

    states: tuple[RowState, ...]
    code: str | None = None


def fingerprint(path: Path, sender_id: int, template_id: int) -> str:
    """Identifies a campaign by what it sends: the file's bytes, the sender, the template."""
    digest = hashlib.sha256(f"{sender_id}|{template_id}|".encode())
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_name(path: Path, print_: str) -> str:
    return f"{path.stem}-{print_[:10]}"


async def run_campaign(
    path: Path,
    sender_id: int,
    template_id: int,
    settings: RunSettings,
    *,
    name: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_start: OnStart | None = None,
    on_row: OnRow | None = None,
    on_notice: OnNotice | None = None,
    on_wait: OnWait | None = None,
    stop: anyio.Event | None = None,
) -> RunResult:
    """Start a campaign from a file, or resume it if this file was started before.

    Setting `stop` stops the run as Ctrl-C does (the web console's Stop button).
    """
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    notice = on_notice or (lambda text: None)
    with Store.open(settings.db) as store:
        # Reading the whole file: on a worker thread, like the load below.
        print_ = await anyio.to_thread.run_sync(fingerprint, path, sender_id, template_id)
        name = name or default_name(path, print_)
        campaign = store.find_campaign(name)
        if campaign is not None and campaign.fingerprint != print_:
            raise UsageError(
                f"campaign {name!r} was started from another file, sender or template "
                f"({campaign.source}, sender {campaign.sender_id}, template "
                f"{campaign.template_id}); choose another --name"
            )
        kept = kept_settings(settings.sending, campaign)  # a bad choice refuses here
        limiter = _limiter(store, settings)
        owner = lease_owner_id()
        loaded = None
        created: list[CampaignInfo] = []  # by the load's thread, even if we are cancelled
        async with _client(settings, transport, limiter) as client:
            try:
                if campaign is None:
                    preflight = await _preflight(client, sender_id, template_id, settings, notice)
                    account = account_id(settings.base_url, settings.api_key)
                    new = (store, name, print_, path, account, sender_id, template_id)

                    def load_and_create() -> LoadResult:
                        # The rows wait in a spool file while the rest is read: memory
                        # stays flat, and nothing is stored from a file that is refused.
                        with tempfile.TemporaryFile() as spool:
                            loaded = _load(path, settings, preflight, notice, spool, cancelled)
                            created.append(_create(*new, _unspool(spool, cancelled), owner, kept))
                        return loaded

                    # On a worker thread: a big file takes a while, and the web console's
                    # pages and other runs share this event loop. Ctrl-C (a cancellation)
                    # still stops it between blocks of rows, and nothing is stored then.
                    loaded = await anyio.to_thread.run_sync(load_and_create)
                    campaign = created[0]
                else:  # a resume does not read the file again
                    _take_lease(store, campaign, owner)
                    preflight = await _preflight(client, sender_id, template_id, settings, notice)
                result = await _dispatch(
                    store,
                    client,
                    campaign,
                    owner,
                    settings,
                    on_start,
                    on_row,
                    notice=notice,
                    sender_phone=preflight.sender.get("phone_number"),
                    on_wait=on_wait,
                    stop=stop,
                )
            finally:
                campaign = campaign or (created[0] if created else None)
                if campaign is not None:
                    _release(store, campaign, owner)
        return replace(result, load=loaded)


async def resume_campaign(
    name: str,
    settings: RunSettings,
    *,
    retry: Retry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_start: OnStart | None = None,
    on_row: OnRow | None = None,
    on_notice: OnNotice | None = None,
    on_wait: OnWait | None = None,
    stop: anyio.Event | None = None,
) -> RunResult:
    """Go on with a stored campaign's pending rows, no file needed; `retry` adds others."""
    notice = on_notice or (lambda text: None)
    with Store.open(settings.db) as store:
        campaign = find(store, name)
        kept_settings(settings.sending, campaign)  # a bad choice refuses before anything
        limiter = _limiter(store, settings)
        owner = lease_owner_id()
        _take_lease(store, campaign, owner)  # before anything else: a busy one refuses at once
        try:
            async with _client(settings, transport, limiter) as client:
                preflight = await _preflight(
                    client, campaign.sender_id, campaign.template_id, settings, notice
                )
                return await _dispatch(
                    store,
                    client,
                    campaign,
                    owner,
                    settings,
                    on_start,
                    on_row,
                    retry,
                    notice,
                    on_wait=on_wait,
                    stop=stop,
                    sender_phone=preflight.sender.get("phone_number"),
                )
        finally:
            _release(store, campaign, owner)


def find(store: Store, name: str) -> CampaignInfo:
    campaign = store.find_campaign(name)
    if campaign is None:
        known = ", ".join(c.name for c in store.campaigns()[-5:]) or "none yet"
        raise NotFound(f"no campaign named {name!r} in this store (recent: {known})")
    return campaign


async def _preflight(
    client: AutocallsClient,
    sender_id: int,
    template_id: int,
    settings: RunSettings,
    notice: OnNotice,
) -> Preflight:
    preflight = await check_account(
        client, sender_id, template_id, block_red=settings.sending.block_red
    )
    for warning in preflight.warnings:
        notice(f"warning: {warning}")
    if preflight.balance is not None:
        notice(f"account balance: {preflight.balance:.2f} USD")
    return preflight


def _load(
    path: Path,
    settings: RunSettings,
    preflight: Preflight,
    notice: OnNotice,
    spool: BinaryIO,
    between_blocks: Callable[[], None] = lambda: None,
) -> LoadResult:
    """Read the file into `spool`, a block of rows at a time; refuse it as a whole here."""

    def keep(chunk: Chunk) -> None:
        between_blocks()  # raises if the run was cancelled meanwhile
        skipped = [replace(s, code="DUPLICATE") for s in chunk.skipped]
        skipped += [replace(s, code="INVALID_ROW") for s in chunk.invalid]
        skipped.sort(key=attrgetter("row"))
        pickle.dump((chunk.recipients, skipped), spool, protocol=pickle.HIGHEST_PROTOCOL)

    loaded = read_file(path, settings, preflight.variables, preflight.body_text, keep)
    for text in loaded.notices:
        notice(text)
    for problem in loaded.problems:  # a warning that changes what is sent is said on `run` too
        if problem.code == "unrendered_date_format":
            notice(f"warning: column {problem.column!r}: {problem.message}")
    if not loaded.ok and not settings.loading.skip_invalid:
        raise InputError(
            f"{path} has {_invalid_text(loaded)}; nothing was sent. "
            "Fix them, or pass --skip-invalid to skip the invalid rows.",
            loaded.problems,
        )
    if not loaded.valid_rows:
        raise InputError(f"{path} has no row that can be sent; nothing was sent.", loaded.problems)
    tier = check_tier(preflight, loaded.valid_rows, allow_partial=settings.sending.allow_partial)
    if tier:
        notice(f"warning: {tier}")
    return loaded


def _unspool(
    spool: BinaryIO, between_blocks: Callable[[], None] = lambda: None
) -> Iterator[tuple[list[Recipient], list[SkippedRow]]]:
    spool.seek(0)
    while True:
        between_blocks()  # a cancelled run stops here: the store's transaction rolls back
        try:
            yield pickle.load(spool)
        except EOFError:
            return


def read_file(
    path: Path,
    settings: RunSettings,
    variables: list[str] | None,
    body_text: str | None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> LoadResult:
    """The file's problems and row counts; its rows go to `on_chunk` (never all in memory)."""
    # Imported here: pandas takes a second to load, and a resume or a refused run
    # (busy, bad flags) never reads a file.
    from campaign.loader import ColumnChoice, DateChoice, load_recipients

    loading = settings.loading
    return load_recipients(
        path,
        variables=variables,
        body_text=body_text,
        default_region=settings.loading.default_region,
        name_fallback=settings.loading.name_fallback,
        encoding=settings.loading.encoding,
        delimiter=settings.loading.delimiter,
        sheet=settings.loading.sheet,
        columns=ColumnChoice(loading.phone_column, loading.name_column, loading.column_vars),
        dates=DateChoice(loading.date_format, loading.time_format),
        keep_rows=False,
        on_chunk=on_chunk,
    )


@dataclass(frozen=True)
class Validation:
    """What `campaign validate` found: the file's rows and, with a key, the account's word."""

    load: LoadResult
    preflight: Preflight | None = None
    tier: str | None = None  # the sender's daily tier is too small for the file
    already_sent: AlreadySent | None = None  # with a key: the rows the guard will skip
    preview: Preview | None = None  # with a key: the first valid row's message, the longest
    suppressed: int | None = None  # with a key: the rows whose number is suppressed
    capped: int | None = None  # with a key and a cap: the rows at --max-per-recipient
    cap: Cap | None = None


async def validate_file(
    path: Path,
    settings: RunSettings,
    *,
    sender_id: int | None = None,
    template_id: int | None = None,
    variables: list[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_notice: OnNotice | None = None,
) -> Validation:
    """Check a file as `run` would, sending nothing; ask the account too when a key is set."""
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if not (settings.api_key and sender_id is not None and template_id is not None):
        return Validation(read_file(path, settings, variables, None))
    # The account's reads take turns like any run's requests, and the guard's count comes
    # from the same store: the one `run` would use.
    with Store.open(settings.db) as store:
        async with _client(settings, transport, _limiter(store, settings)) as client:
            notice = on_notice or (lambda text: None)
            preflight = await _preflight(client, sender_id, template_id, settings, notice)
        guard = GuardCount(store, settings, sender_id, template_id)
        preview = PreviewCount(preflight.body_text or "", preflight.variables)

        def count(chunk: Chunk) -> None:
            guard(chunk)
            preview.add(chunk.recipients)

        loaded = read_file(path, settings, preflight.variables, preflight.body_text, count)
        tier = check_tier(
            preflight, loaded.valid_rows, allow_partial=settings.sending.allow_partial
        )
    shown = preview.preview if loaded.valid_rows and preflight.body_text else None
    cap = settings.sending.max_per_recipient
    capped = guard.capped if cap else None
    return Validation(loaded, preflight, tier, guard.found, shown, guard.suppressed, capped, cap)


class GuardCount:
    """Counts the rows of a file that the eligibility rules would skip today, a chunk at
    a time; each row once, by the first rule that refuses it (as a claim would)."""

    def __init__(
        self, store: Store, settings: RunSettings, sender_id: int, template_id: int
    ) -> None:
        self.store = store
        self.window = settings.sending.dedupe_window
        self.cap = settings.sending.max_per_recipient
        self.account = account_id(settings.base_url, settings.api_key)
        self.key = message_keyer(self.account, sender_id, template_id)
        self.found = AlreadySent(window=self.window)
        self.suppressed = 0
        self.capped = 0

    def __call__(self, chunk: Chunk) -> None:
        rows = chunk.recipients
        blocked = self.store.suppressed_among(self.account, [r.phone for r in rows])
        self.suppressed += sum(r.phone in blocked for r in rows)
        keyed = [(r, self.key(r.phone, r.variables)) for r in rows if r.phone not in blocked]
        self.found = self.found.plus(self.store.already_sent([k for _, k in keyed], self.window))
        if self.cap is not None:
            sent = self.store.already_sent_keys([k for _, k in keyed], self.window)
            rest = [r.phone for r, k in keyed if k not in sent]
            counts = self.store.recent_sends(self.account, rest, self.cap.period)
            self.capped += sum(counts[p] >= self.cap.messages for p in rest)


def already_sent_text(found: AlreadySent) -> str:
    """The opening summary's line on what the guard will skip."""
    rows = "1 row was" if found.rows == 1 else f"{found.rows} rows were"
    names = ", ".join(found.campaigns[:3])
    if len(found.campaigns) > 3:
        names += f" and {len(found.campaigns) - 3} more"
    campaigns = "campaign" if len(found.campaigns) == 1 else "campaigns"
    return (
        f"{rows} already sent to the same numbers with the same variables in the last "
        f"{duration_text(found.window)} ({campaigns} {names}); they will be skipped "
        f"({ALREADY_SENT})"
    )


def suppressed_text(rows: int) -> str:
    """The opening summary's line on the rows skipped because their number is suppressed."""
    rows_text = "1 row's number is" if rows == 1 else f"{rows} rows' numbers are"
    return f"{rows_text} on this account's suppression list; they are skipped ({SUPPRESSED})"


def capped_text(rows: int, cap: Cap, are: str = "would be") -> str:
    """The line on the rows at the frequency cap: the run's opening one, or validate's."""
    rows_text = "1 row is" if rows == 1 else f"{rows} rows are"
    return (
        f"{rows_text} at the cap of {cap.messages} message{'s' if cap.messages != 1 else ''} "
        f"per {duration_text(cap.period)} to one number; they {are} skipped ({FREQUENCY_CAP})"
    )


def _invalid_text(loaded: LoadResult) -> str:
    if loaded.invalid_rows:
        return f"{loaded.invalid_rows} invalid rows"
    return "problems that concern the whole file"


def _create(
    store: Store,
    name: str,
    print_: str,
    path: Path,
    account: str,
    sender_id: int,
    template_id: int,
    rows: Iterable[tuple[list[Recipient], list[SkippedRow]]],
    owner: str,
    kept: SendSettings,
) -> CampaignInfo:
    try:
        return store.create_campaign(
            name=name,
            fingerprint=print_,
            source=str(path),
            account=account,
            sender_id=sender_id,
            template_id=template_id,
            batches=rows,
            lease=(owner, LEASE_TTL),  # created holding the lease: no other run can start it
            # Kept with it from the start: a later run without the flag keeps them.
            **_kept(kept),
        )
    except sa.exc.IntegrityError:
        # Another run created it between our look and our insert: it is running it.
        raise CampaignBusy(f"campaign {name!r} is being started by another run") from None


@contextlib.asynccontextmanager
async def account_session(
    settings: RunSettings, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[tuple[Store, AutocallsClient]]:
    """The store and a client whose every request takes a turn of the account's pace.

    For reads and single sends outside a campaign (catalog.py, trial.py): the same pace,
    through the same store, as any run in progress.
    """
    with Store.open(settings.db) as store:
        async with _client(settings, transport, _limiter(store, settings)) as client:
            yield store, client


def _limiter(store: Store, settings: RunSettings) -> AccountLimiter:
    """The pace every run on this account shares, named by a hash of its key and address."""
    return AccountLimiter(
        store, account_id(settings.base_url, settings.api_key), settings.sending.rate
    )


def _client(
    settings: RunSettings, transport: httpx.AsyncBaseTransport | None, limiter: AccountLimiter
) -> AutocallsClient:
    if not settings.api_key:
        raise UsageError("no API key: set AUTOCALLS_API_KEY or pass --api-key-file")
    return AutocallsClient(
        settings.api_key,
        settings.base_url,
        timeout=settings.sending.timeout,
        max_connections=_max_in_flight(settings) + 4,
        limiter=limiter,
        transport=transport,
    )


def _max_in_flight(settings: RunSettings) -> int:
    # Enough requests in flight that a slow answer does not slow the rate.
    return max(8, math.ceil(settings.sending.rate * 6))


async def _dispatch(
    store: Store,
    client: AutocallsClient,
    campaign: CampaignInfo,
    owner: str,
    settings: RunSettings,
    on_start: OnStart | None,
    on_row: OnRow | None,
    retry: Retry | None = None,
    notice: OnNotice | None = None,
    on_wait: OnWait | None = None,
    stop: anyio.Event | None = None,
    sender_phone: object = None,
) -> RunResult:
    """Send the campaign's pending rows; the caller holds the lease and gives it back.

    Every store call waits out a failing store, up to `settings.sending.store_patience`.
    `sender_phone`: the sender's number as the account gave it (for the webhook).
    """
    patience = StorePatience(settings.sending.store_patience)
    patient = patience.call
    if not await patient(store.renew_lease, campaign.id, owner, LEASE_TTL):  # lost meanwhile
        raise _busy(campaign)
    sending = await _keep_settings(store, campaign, settings.sending, patient, notice)
    await _remember_sender_number(store, campaign.sender_id, sender_phone, patient)
    await patient(store.mark_interrupted, campaign.id)
    if retry is not None:  # under the lease, so no other run is sending them now
        moved = await patient(store.requeue, campaign.id, retry.states, retry.code)
        if notice:
            notice(f"{moved} rows put back to pending")
    await patient(store.set_status, campaign.id, "running")
    suppressed = await patient(store.skip_suppressed, campaign.id)  # first: as a claim asks
    if suppressed and notice:
        notice(suppressed_text(suppressed))
    found = await patient(store.skip_already_sent, campaign.id, settings.sending.dedupe_window)
    if found.rows and notice:
        notice(already_sent_text(found))
    waited = await patient(store.forget_daytime, campaign.id)  # this run decides them again
    if waited and sending.send_window is None and notice:
        notice(
            f"warning: {waited} rows waited for their recipients' daytime; without a send "
            "window this run sends them at once"
        )
    cap = sending.max_per_recipient  # the campaign's own, or the one given
    if cap is not None:
        why = partial(cap_text, cap=cap)
        capped = await patient(store.skip_capped, campaign.id, cap.messages, cap.period, why)
        if capped and notice:
            notice(capped_text(capped, cap, "are"))
    if on_start:
        on_start(campaign, await patient(store.counts, campaign.id, read=True))
    dispatcher = Dispatcher(
        store,
        client,
        campaign,
        DispatchSettings(
            max_in_flight=_max_in_flight(settings),
            max_attempts=settings.sending.max_attempts,
            dedupe_window=settings.sending.dedupe_window,
            max_per_recipient=sending.max_per_recipient,
            daytime=_daytime(sending),
            wait_for_daytime=sending.wait_for_daytime,
        ),
        on_row,
        patience,
        on_wait,
    )
    async with anyio.create_task_group() as background:
        background.start_soon(_keep_lease, store, campaign.id, owner, dispatcher)
        if settings.handle_signals:
            background.start_soon(_stop_on_signal, dispatcher)
        if stop is not None:
            background.start_soon(_stop_on_event, stop, dispatcher)
        result = await dispatcher.run()
        background.cancel_scope.cancel()
    if result.store_failure is not None:
        raise _store_down(result.store_failure, result.unrecorded)
    if result.lease_lost:  # the other run owns the campaign's status now
        raise _taken_over(campaign)
    status = "halted" if result.halt_reason else "stopped" if result.stopped else "finished"
    if status == "finished" and result.daytime is not None:
        status = "waiting"  # for the recipients' daytime: a later run goes on
    await patient(store.set_status, campaign.id, status, result.halt_reason)
    await _catch_up(store, campaign.id, patient)
    return RunResult(
        campaign=await patient(store.find_campaign, campaign.name, read=True) or campaign,
        counts=await patient(store.counts, campaign.id, read=True),
        halt_reason=result.halt_reason,
        stopped=result.stopped,
        daytime=result.daytime,
    )


def campaign_window(sending: SendSettings, campaign: CampaignInfo | None) -> SendSettings:
    """A run's sending settings with its send window: the one given, else the campaign's.

    --send-window replaces the campaign's window, --default-timezone its zone for numbers
    with none known; --send-window off removes both. A UsageError if the run would wait
    for a window (--wait, --default-timezone) while it has none.
    """
    window, zone = sending.send_window, sending.default_timezone
    if sending.send_window_off:
        window = None
    elif campaign is not None:
        if window is None and campaign.send_window is not None:
            window = SendWindow.parse(campaign.send_window)
        zone = zone or campaign.default_timezone
    if window is None and (sending.default_timezone or sending.wait_for_daytime):
        raise UsageError(
            "--default-timezone and --wait go with a send window: --send-window, or the "
            "one the campaign was started with"
        )
    zone = zone if window else None
    return replace(sending, send_window=window, default_timezone=zone, send_window_off=False)


def campaign_cap(sending: SendSettings, campaign: CampaignInfo | None) -> SendSettings:
    """A run's sending settings with its frequency cap: the one given, else the campaign's;
    --max-per-recipient off removes it."""
    cap = sending.max_per_recipient
    if sending.max_per_recipient_off:
        cap = None
    elif cap is None and campaign is not None and campaign.max_per_recipient is not None:
        cap = parse_cap(campaign.max_per_recipient)
    return replace(sending, max_per_recipient=cap, max_per_recipient_off=False)


def kept_settings(sending: SendSettings, campaign: CampaignInfo | None) -> SendSettings:
    """A run's sending settings with what the campaign keeps (its send window and its
    frequency cap) where the run gives none."""
    return campaign_cap(campaign_window(sending, campaign), campaign)


async def _keep_settings(
    store: Store,
    campaign: CampaignInfo,
    given: SendSettings,
    patient: Callable[..., Awaitable[object]],
    notice: OnNotice | None,
) -> SendSettings:
    """The run's sending settings with the campaign's kept ones; a window or cap given (or
    removed) becomes the campaign's own for its later runs, and the run says so."""
    sending = kept_settings(given, campaign)
    now, before = _kept(sending), _stored(campaign)
    if now != before:
        await patient(store.set_kept_settings, campaign.id, **now)
    if notice is not None:
        window_now = (now["send_window"], now["default_timezone"])
        window_before = (before["send_window"], before["default_timezone"])
        given_window = given.send_window is not None
        _say_window(notice, campaign.name, window_now, window_before, given_window=given_window)
        caps = (now["max_per_recipient"], before["max_per_recipient"])
        _say_cap(notice, campaign.name, *caps, given_cap=given.max_per_recipient is not None)
    return sending


def _kept(sending: SendSettings) -> dict[str, str | None]:
    """The settings a campaign keeps for its later runs, as the store holds them."""
    cap = sending.max_per_recipient
    return {
        "send_window": _window_text(sending),
        "default_timezone": sending.default_timezone,
        "max_per_recipient": None if cap is None else str(cap),
    }


def _stored(campaign: CampaignInfo) -> dict[str, str | None]:
    return {name: getattr(campaign, name) for name in KEPT_SETTINGS}


def _say_window(
    notice: OnNotice,
    name: str,
    now: tuple[str | None, str | None],
    before: tuple[str | None, str | None],
    *,
    given_window: bool,
) -> None:
    """Say which window the run keeps: the campaign's, or one that replaces it."""
    window, zone = now
    zone_text = f" (numbers with no known zone: {zone})" if zone else ""
    if now == before:
        if window is not None and not given_window:
            notice(
                f"send window {window} in each recipient's local time{zone_text}: the "
                "campaign's own (--send-window replaces it, --send-window off removes it)"
            )
    elif window is None:
        notice(
            f"the send window {before[0]} is removed from campaign {name!r}: its rows go "
            "at any hour, in this run and the later ones"
        )
    else:
        was = f" (it was {', '.join(filter(None, before))})" if before[0] else ""
        notice(
            f"campaign {name!r} now sends in the window {window}{zone_text}{was}, in this "
            "run and the later ones"
        )


def _say_cap(
    notice: OnNotice, name: str, now: str | None, before: str | None, *, given_cap: bool
) -> None:
    """Say which frequency cap the run keeps: the campaign's, or one that replaces it."""
    if now == before:
        if now is not None and not given_cap:
            notice(
                f"frequency cap {now}: the campaign's own (--max-per-recipient replaces it, "
                "--max-per-recipient off removes it)"
            )
    elif now is None:
        notice(
            f"the frequency cap {before} is removed from campaign {name!r}, in this run and "
            "the later ones"
        )
    else:
        was = f" (it was {before})" if before else ""
        notice(
            f"campaign {name!r} now has the frequency cap {now}{was}, in this run and the "
            "later ones"
        )


def _window_text(sending: SendSettings) -> str | None:
    return None if sending.send_window is None else str(sending.send_window)


async def _remember_sender_number(
    store: Store,
    sender_id: int,
    phone: object,
    patient: Callable[..., Awaitable[object]],
) -> None:
    """Keep the sender's number: the webhook knows its events by it (deliveries.py).

    A help, never a need: a number that does not read as E.164, or a store that stays
    down, is skipped (the run's next store call meets that store all the same).
    """
    number = deliveries.phone_of(phone)
    if number is None:
        log.debug("the sender %s has no E.164 phone number to remember: %r", sender_id, phone)
        return
    try:
        await patient(store.add_sender_number, sender_id, number)
    except StoreUnavailable as exc:
        log.debug("the sender's number was not remembered: %s", exc)


async def _catch_up(
    store: Store, campaign_id: int, patient: Callable[..., Awaitable[object]]
) -> None:
    """Apply webhook events that came before their row's answer was recorded."""
    try:
        await patient(deliveries.catch_up, store, campaign_id)
    except StoreUnavailable as exc:
        log.debug("kept webhook events were not applied at the end of the run: %s", exc)


def _daytime(sending: SendSettings) -> Daytime | None:
    """The run's send window, if it has one."""
    if sending.send_window is None:
        return None
    return Daytime(sending.send_window, sending.default_timezone)


def _store_down(failure: StoreUnavailable, unrecorded: list[dict[str, object]]) -> StoreUnavailable:
    """The run gave up on its store: say so, and hand over what it could not record."""
    if unrecorded:
        what = (
            f"{len(unrecorded)} outcomes could not be recorded (printed above as JSON lines); "
            "rows left `sending` become unknown at the next run"
        )
    else:
        what = "every outcome received was recorded"
    return StoreUnavailable(
        f"{failure}: {what}; run again once the store is back",
        reason=failure.reason,
        unrecorded=unrecorded,
    )


def _taken_over(campaign: CampaignInfo) -> CampaignBusy:
    return CampaignBusy(
        f"campaign {campaign.name!r} was taken over by another run while this one was sending; "
        "what this run sent is recorded, and the other run sends the rest"
    )


def _release(store: Store, campaign: CampaignInfo, owner: str) -> None:
    """Give the lease back; a store that is down lets it expire on its own instead."""
    with contextlib.suppress(StoreUnavailable):
        store.release_lease(campaign.id, owner)


def _take_lease(store: Store, campaign: CampaignInfo, owner: str) -> None:
    if not store.acquire_lease(campaign.id, owner, LEASE_TTL):
        raise _busy(campaign)


def _busy(campaign: CampaignInfo) -> CampaignBusy:
    return CampaignBusy(
        f"campaign {campaign.name!r} is being sent by another run; try again when it has finished"
    )


async def _keep_lease(store: Store, campaign_id: int, owner: str, dispatcher: Dispatcher) -> None:
    """Renew the lease, waiting out a failing store; if another run took it, stop sending."""
    while True:
        await anyio.sleep(LEASE_RENEW)
        try:
            kept = await dispatcher.patience.call(store.renew_lease, campaign_id, owner, LEASE_TTL)
        except StoreUnavailable:  # the run gave up on the store: the dispatcher ends too
            return
        if not kept:
            dispatcher.lose_lease()
            return


async def _stop_on_event(stop: anyio.Event, dispatcher: Dispatcher) -> None:
    """Someone set `stop` (the web console): finish what is in flight, leave the rest pending."""
    await stop.wait()
    dispatcher.stop()


async def _stop_on_signal(dispatcher: Dispatcher) -> None:
    """First Ctrl-C or SIGTERM: finish what is in flight, leave the rest pending."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            dispatcher.stop()
            return
