"""One campaign run: open the store, load or resume, dispatch, halt or finish."""

from __future__ import annotations

import hashlib
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import sqlalchemy as sa

from campaign.client import DEFAULT_BASE_URL, AutocallsClient, account_id
from campaign.dispatcher import Dispatcher, DispatchSettings
from campaign.errors import CampaignBusy, InputError, NotFound, UsageError
from campaign.limiter import AccountLimiter
from campaign.model import RowEvent, RowState
from campaign.preflight import Preflight, check_account, check_tier
from campaign.store import CampaignInfo, Store, lease_owner_id

if TYPE_CHECKING:
    from campaign.loader import LoadResult

LEASE_TTL = 6.0  # seconds a killed run keeps others out, at most (less on the same host)
LEASE_RENEW = 1.5


@dataclass
class RunSettings:
    """Everything a run needs besides the file; flags, environment and config fill it."""

    api_key: str = field(repr=False)  # never printed
    db: str | None = None
    base_url: str = DEFAULT_BASE_URL
    rate: float = 5.0
    timeout: float = 30.0
    max_attempts: int = 5
    default_region: str | None = None
    name_fallback: str | None = None
    skip_invalid: bool = False
    block_red: bool = False  # refuse a sender whose quality rating is RED
    allow_partial: bool = False  # start a campaign bigger than the sender's 24-hour tier
    encoding: str | None = None  # of a CSV file, when the guess is wrong
    delimiter: str | None = None
    sheet: str | None = None  # of an XLSX workbook (default: the first)
    handle_signals: bool = False  # Ctrl-C and SIGTERM stop cleanly (the CLI turns it on)


@dataclass(frozen=True)
class RunResult:
    campaign: CampaignInfo
    counts: dict[str, int]
    halt_reason: str | None = None
    stopped: bool = False
    load: LoadResult | None = None  # set when this run read the file

    @property
    def exit_code(self) -> int:
        """0 all sent or skipped, 1 failed or unknown rows, 3 halted, 130 stopped."""
        if self.halt_reason:
            return 3
        if self.stopped:
            return 130
        if self.counts[RowState.FAILED] or self.counts[RowState.UNKNOWN]:
            return 1
        return 0


OnRow = Callable[[RowEvent], None]
OnStart = Callable[[CampaignInfo, dict[str, int]], None]
OnNotice = Callable[[str], None]


@dataclass(frozen=True)
class Retry:
    """Rows a person chose to send again: failed ones (of one code), or unknown ones."""

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
) -> RunResult:
    """Start a campaign from a file, or resume it if this file was started before."""
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    notice = on_notice or (lambda text: None)
    store = Store.open(settings.db)
    try:
        print_ = fingerprint(path, sender_id, template_id)
        name = name or default_name(path, print_)
        campaign = store.find_campaign(name)
        if campaign is not None and campaign.fingerprint != print_:
            raise UsageError(
                f"campaign {name!r} was started from another file, sender or template "
                f"({campaign.source}, sender {campaign.sender_id}, template "
                f"{campaign.template_id}); choose another --name"
            )
        limiter = _limiter(store, settings)
        owner = lease_owner_id()
        loaded = None
        async with _client(settings, transport, limiter) as client:
            try:
                if campaign is None:
                    preflight = await _preflight(client, sender_id, template_id, settings, notice)
                    loaded = _load(path, settings, preflight, notice)
                    new = (store, name, print_, path, sender_id, template_id, loaded, owner)
                    campaign = _create(*new)
                else:  # a resume does not read the file again
                    _take_lease(store, campaign, owner)
                    await _preflight(client, sender_id, template_id, settings, notice)
                result = await _dispatch(store, client, campaign, owner, settings, on_start, on_row)
            finally:
                if campaign is not None:
                    store.release_lease(campaign.id, owner)
        return replace(result, load=loaded)
    finally:
        store.close()


async def resume_campaign(
    name: str,
    settings: RunSettings,
    *,
    retry: Retry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_start: OnStart | None = None,
    on_row: OnRow | None = None,
    on_notice: OnNotice | None = None,
) -> RunResult:
    """Go on with a stored campaign's pending rows, no file needed; `retry` adds others."""
    notice = on_notice or (lambda text: None)
    store = Store.open(settings.db)
    try:
        campaign = find(store, name)
        limiter = _limiter(store, settings)
        owner = lease_owner_id()
        _take_lease(store, campaign, owner)  # before anything else: a busy one refuses at once
        try:
            async with _client(settings, transport, limiter) as client:
                await _preflight(client, campaign.sender_id, campaign.template_id, settings, notice)
                return await _dispatch(
                    store, client, campaign, owner, settings, on_start, on_row, retry, notice
                )
        finally:
            store.release_lease(campaign.id, owner)
    finally:
        store.close()


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
    preflight = await check_account(client, sender_id, template_id, block_red=settings.block_red)
    for warning in preflight.warnings:
        notice(f"warning: {warning}")
    if preflight.balance is not None:
        notice(f"account balance: {preflight.balance:.2f} USD")
    return preflight


def _load(path: Path, settings: RunSettings, preflight: Preflight, notice: OnNotice) -> LoadResult:
    loaded = read_file(path, settings, preflight.variables, preflight.body_text)
    for text in loaded.notices:
        notice(text)
    if not loaded.ok and not settings.skip_invalid:
        raise InputError(
            f"{path} has {_invalid_text(loaded)}; nothing was sent. "
            "Fix them, or pass --skip-invalid to skip the invalid rows.",
            loaded.problems,
        )
    if not loaded.recipients:
        raise InputError(f"{path} has no row that can be sent; nothing was sent.", loaded.problems)
    tier = check_tier(preflight, len(loaded.recipients), allow_partial=settings.allow_partial)
    if tier:
        notice(f"warning: {tier}")
    return loaded


def read_file(
    path: Path, settings: RunSettings, variables: list[str] | None, body_text: str | None
) -> LoadResult:
    # Imported here: pandas takes a second to load, and a resume or a refused run
    # (busy, bad flags) never reads a file.
    from campaign.loader import load_recipients

    return load_recipients(
        path,
        variables=variables,
        body_text=body_text,
        default_region=settings.default_region,
        name_fallback=settings.name_fallback,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        sheet=settings.sheet,
    )


@dataclass(frozen=True)
class Validation:
    """What `campaign validate` found: the file's rows and, with a key, the account's word."""

    load: LoadResult
    preflight: Preflight | None = None
    tier: str | None = None  # the sender's daily tier is too small for the file


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
    preflight = None
    if settings.api_key and sender_id is not None and template_id is not None:
        notice = on_notice or (lambda text: None)
        # These reads take turns of the account like any run's requests: from its store.
        store = Store.open(settings.db)
        try:
            async with _client(settings, transport, _limiter(store, settings)) as client:
                preflight = await _preflight(client, sender_id, template_id, settings, notice)
        finally:
            store.close()
        variables = preflight.variables
    loaded = read_file(path, settings, variables, preflight.body_text if preflight else None)
    tier = None
    if preflight is not None:
        tier = check_tier(preflight, len(loaded.recipients), allow_partial=settings.allow_partial)
    return Validation(loaded, preflight, tier)


def _invalid_text(loaded: LoadResult) -> str:
    if loaded.invalid:
        return f"{len(loaded.invalid)} invalid rows"
    return "problems that concern the whole file"


def _create(
    store: Store,
    name: str,
    print_: str,
    path: Path,
    sender_id: int,
    template_id: int,
    loaded: LoadResult,
    owner: str,
) -> CampaignInfo:
    try:
        return store.create_campaign(
            name=name,
            fingerprint=print_,
            source=str(path),
            sender_id=sender_id,
            template_id=template_id,
            recipients=loaded.recipients,
            skipped=[replace(s, code="DUPLICATE") for s in loaded.skipped]
            + [replace(s, code="INVALID_ROW") for s in loaded.invalid],
            lease=(owner, LEASE_TTL),  # created holding the lease: no other run can start it
        )
    except sa.exc.IntegrityError:
        # Another run created it between our look and our insert: it is running it.
        raise CampaignBusy(f"campaign {name!r} is being started by another run") from None


def _limiter(store: Store, settings: RunSettings) -> AccountLimiter:
    """The pace every run on this account shares, named by a hash of its key and address."""
    return AccountLimiter(store, account_id(settings.base_url, settings.api_key), settings.rate)


def _client(
    settings: RunSettings, transport: httpx.AsyncBaseTransport | None, limiter: AccountLimiter
) -> AutocallsClient:
    if not settings.api_key:
        raise UsageError("no API key: set AUTOCALLS_API_KEY or pass --api-key-file")
    return AutocallsClient(
        settings.api_key,
        settings.base_url,
        timeout=settings.timeout,
        max_connections=_max_in_flight(settings) + 4,
        limiter=limiter,
        transport=transport,
    )


def _max_in_flight(settings: RunSettings) -> int:
    # Enough requests in flight that a slow answer does not slow the rate.
    return max(8, math.ceil(settings.rate * 6))


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
) -> RunResult:
    """Send the campaign's pending rows; the caller holds the lease and gives it back."""
    if not store.renew_lease(campaign.id, owner, LEASE_TTL):  # lost while we prepared
        raise _busy(campaign)
    store.mark_interrupted(campaign.id)
    if retry is not None:  # under the lease, so no other run is sending them now
        moved = store.requeue(campaign.id, retry.states, retry.code)
        if notice:
            notice(f"{moved} rows put back to pending")
    store.set_status(campaign.id, "running")
    if on_start:
        on_start(campaign, store.counts(campaign.id))
    dispatcher = Dispatcher(
        store,
        client,
        campaign,
        DispatchSettings(
            max_in_flight=_max_in_flight(settings), max_attempts=settings.max_attempts
        ),
        on_row,
    )
    async with anyio.create_task_group() as background:
        background.start_soon(_keep_lease, store, campaign.id, owner, dispatcher)
        if settings.handle_signals:
            background.start_soon(_stop_on_signal, dispatcher)
        result = await dispatcher.run()
        background.cancel_scope.cancel()
    status = "halted" if result.halt_reason else "stopped" if result.stopped else "finished"
    store.set_status(campaign.id, status, result.halt_reason)
    return RunResult(
        campaign=store.find_campaign(campaign.name) or campaign,
        counts=store.counts(campaign.id),
        halt_reason=result.halt_reason,
        stopped=result.stopped,
    )


def _take_lease(store: Store, campaign: CampaignInfo, owner: str) -> None:
    if not store.acquire_lease(campaign.id, owner, LEASE_TTL):
        raise _busy(campaign)


def _busy(campaign: CampaignInfo) -> CampaignBusy:
    return CampaignBusy(
        f"campaign {campaign.name!r} is being sent by another run; try again when it has finished"
    )


async def _keep_lease(store: Store, campaign_id: int, owner: str, dispatcher: Dispatcher) -> None:
    """Renew the lease; if another run took it (we stalled too long), stop sending at once."""
    while True:
        await anyio.sleep(LEASE_RENEW)
        kept = store.renew_lease(campaign_id, owner, LEASE_TTL)
        if not kept:
            dispatcher.stop()
            return


async def _stop_on_signal(dispatcher: Dispatcher) -> None:
    """First Ctrl-C or SIGTERM: finish what is in flight, leave the rest pending."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            dispatcher.stop()
            return
