"""What people see: a progress bar on a terminal, log lines elsewhere, summary tables."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from campaign.daytime import DaytimeWait
from campaign.model import Problem, RowEvent, RowState, SendOutcome
from campaign.store import CampaignInfo, SuppressedNumber

if TYPE_CHECKING:
    from campaign.catalog import Sender, Template

PLAIN_EVERY = 5.0  # seconds between progress lines when there is no terminal
FINAL = (RowState.SENT, RowState.FAILED, RowState.UNKNOWN, RowState.SKIPPED)
log = logging.getLogger("campaign.progress")


class ProgressView:
    """A run's progress: a live bar on a terminal; without one (cron), a log line every
    few seconds, and one per row with -v."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.counts: Counter[str] = Counter()
        self.total = 0
        self._started = time.monotonic()
        self._done_at_start = 0
        self._last_line = 0.0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    @property
    def live(self) -> bool:
        return self.console.is_terminal and not self.quiet

    def start(self, campaign: CampaignInfo, counts: dict[str, int]) -> None:
        self.total = campaign.total_rows
        self.counts.update({s: n for s, n in counts.items() if s in FINAL})
        self._done_at_start = self.done
        self._started = time.monotonic()
        self.notice(
            f"campaign {campaign.name}: {self.total} rows, {self.total - self.done} to send"
        )
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[counts]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task(
                "sending", total=self.total, completed=self.done, counts=""
            )
            self._bar.start()

    def notice(self, text: str) -> None:
        warning = text.startswith("warning")
        if self.live or (warning and self.console.is_terminal):
            self.console.print(text, highlight=False, markup=False)  # may quote the server
        else:
            log.log(logging.WARNING if warning else logging.INFO, text)

    def row(self, event: RowEvent) -> None:
        if event.state in FINAL:
            self.counts[event.state] += 1
        log.debug(
            "row %s %s %s",
            event.row,
            event.state,
            event.error_code or "",
            extra={"row": event.row, "state": str(event.state), "error_code": event.error_code},
        )
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, counts=self._counts_text())
        elif time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._last_line = time.monotonic()
            log.info(
                "%s/%s done, %s", self.done, self.total, self._counts_text(), extra=self._fields()
            )

    def wait(self, wait: DaytimeWait | None) -> None:
        """The run sleeps until a recipient's daytime (None: it sends again); says why."""
        if self._bar is not None and self._task is not None:
            what = "sending" if wait is None else f"waiting: {wait}"
            self._bar.update(self._task, description=what)
        elif wait is not None:
            log.info("waiting: %s", wait, extra={"waiting_rows": wait.rows, "until": wait.at})
        else:
            log.info("sending again: a recipient's daytime has come")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in FINAL)

    def _rate(self) -> float:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return (self.done - self._done_at_start) / elapsed

    def _counts_text(self) -> str:
        f = self._fields()
        eta = f" eta {f['eta_seconds']}s" if f["eta_seconds"] is not None else ""
        return (
            f"sent {f['sent']}  failed {f['failed']}  unknown {f['unknown']}  "
            f"{f['rate']:.1f}/s{eta if self._bar is None else ''}"
        )

    def _fields(self) -> dict[str, object]:
        rate = self._rate()
        left = self.total - self.done
        return {
            "done": self.done,
            "total": self.total,
            "sent": self.counts[RowState.SENT],
            "failed": self.counts[RowState.FAILED],
            "unknown": self.counts[RowState.UNKNOWN],
            "rate": round(rate, 2),
            "eta_seconds": round(left / rate) if rate > 0 else None,
        }


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("state")
    table.add_column("rows", justify="right")
    for state in RowState:
        if counts.get(state):
            table.add_row(state.value, str(counts[state]))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    return table


def error_table(errors: Iterable[tuple[str, str, int]]) -> Table:
    table = Table(title="by error code")
    table.add_column("state")
    table.add_column("code")
    table.add_column("rows", justify="right")
    for state, code, n in errors:
        table.add_row(state, escape(code), str(n))  # a code may come from the server
    return table


def problems_table(problems: list[Problem], limit: int = 20) -> Table:
    table = Table(title=f"problems (first {min(limit, len(problems))} of {len(problems)})")
    for column in ("row", "column", "code", "message"):
        table.add_column(column, overflow="fold")
    for p in problems[:limit]:
        row = "" if p.row is None else str(p.row)
        table.add_row(row, escape(p.column or ""), p.code, escape(p.message))  # file text
    return table


def campaigns_table(campaigns: list[dict]) -> Table:
    shown = (RowState.SENT, RowState.FAILED, RowState.UNKNOWN, RowState.PENDING)
    table = Table(title="campaigns")
    table.add_column("name", no_wrap=True)
    table.add_column("status")
    for column in ("rows", *(s.value for s in shown)):
        table.add_column(column, justify="right")
    table.add_column("created", no_wrap=True)
    for c in campaigns:
        counts = [str(c["counts"][s]) for s in shown]
        created = str(c["created_at"])[:16]
        table.add_row(c["name"], c["status"], str(c["total_rows"]), *counts, created)
    return table


def senders_table(senders: list[Sender]) -> Table:
    """`campaign senders`: what a run's --sender-id may name."""
    table = Table(title="senders")
    for column in ("id", "phone number", "display name", "status", "quality", "messaging tier"):
        table.add_column(column, overflow="fold")
    for s in senders:  # every text came from the server: shown as written, never as markup
        table.add_row(
            str(s.id),
            *(escape(t or "") for t in (s.phone_number, s.display_name, s.status)),
            escape(s.quality_rating or ""),
            escape(tier_text(s)),
        )
    return table


def tier_text(sender: Sender) -> str:
    """The sender's daily tier as the API words it, else from its number."""
    if sender.messaging_tier:
        return sender.messaging_tier
    return "" if sender.messaging_limit is None else f"{sender.messaging_limit:,} / 24hr"


def templates_table(templates: list[Template], sender_id: int) -> Table:
    """`campaign templates`: what a run's --template-id may name."""
    table = Table(title=f"templates of sender {sender_id}")
    for column in ("id", "name", "language", "category", "status", "variables"):
        table.add_column(column, overflow="fold")
    for t in templates:
        texts = (t.name, t.language, t.category, t.status, ", ".join(t.variables))
        table.add_row(str(t.id), *(escape(x or "") for x in texts))
    return table


def answer_text(outcome: SendOutcome | None) -> str:
    """A send's answer in one line (its texts already redacted by the client)."""
    if outcome is None:
        return "nothing: no request left"
    parts = [f"HTTP {outcome.http_status}" if outcome.http_status else "no answer"]
    if outcome.error_code:
        parts.append(outcome.error_code)
    if outcome.error_message:
        parts.append(outcome.error_message)
    for label, value in (
        ("status", outcome.api_status),
        ("message_sid", outcome.message_sid),
        ("conversation_id", outcome.conversation_id),
        ("message_id", outcome.message_id),
        ("whatsapp_message_id", outcome.whatsapp_message_id),
    ):
        if value is not None:
            parts.append(f"{label} {value}")
    if outcome.raw_body:
        parts.append(f"body: {outcome.raw_body}")
    return ", ".join(parts)


def suppressions_table(numbers: list[SuppressedNumber]) -> Table:
    table = Table(title=f"suppression list ({len(numbers)} numbers)")
    for column in ("phone", "reason", "added (UTC)"):
        table.add_column(column, overflow="fold")
    for n in numbers:
        added = n.added_at if n.added_at.tzinfo is None else n.added_at.astimezone(UTC)
        table.add_row(n.phone, escape(n.reason or ""), added.strftime("%Y-%m-%d %H:%M:%S"))
    return table
