"""What people see: a progress bar on a terminal, log lines elsewhere, summary tables."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from campaign.model import Problem, RowEvent, RowState
from campaign.store import CampaignInfo, SuppressedNumber

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
                TextColumn("sending"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[counts]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task("", total=self.total, completed=self.done, counts="")
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


def suppressions_table(numbers: list[SuppressedNumber]) -> Table:
    table = Table(title=f"suppression list ({len(numbers)} numbers)")
    for column in ("phone", "reason", "added (UTC)"):
        table.add_column(column, overflow="fold")
    for n in numbers:
        added = n.added_at if n.added_at.tzinfo is None else n.added_at.astimezone(UTC)
        table.add_row(n.phone, escape(n.reason or ""), added.strftime("%Y-%m-%d %H:%M:%S"))
    return table
