"""What people see on the terminal: progress, summaries, problem tables (rich)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from campaign.model import Problem, RowEvent, RowState
from campaign.store import CampaignInfo

PLAIN_EVERY = 5.0  # seconds between progress lines when there is no terminal
FINAL = (RowState.SENT, RowState.FAILED, RowState.UNKNOWN, RowState.SKIPPED)


class ProgressView:
    """Shows a run's progress: a live bar on a terminal, a line every few seconds otherwise."""

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

    def start(self, campaign: CampaignInfo, counts: dict[str, int]) -> None:
        self.total = campaign.total_rows
        self.counts.update({s: n for s, n in counts.items() if s in FINAL})
        self._done_at_start = self.done
        self._started = time.monotonic()
        if self.quiet:
            return
        self.console.print(
            f"campaign [bold]{campaign.name}[/]: {self.total} rows, "
            f"{self.total - self.done} to send"
        )
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[progress.description]{task.description}"),
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
        if not self.quiet or text.startswith("warning"):
            self.console.print(text, highlight=False)

    def row(self, event: RowEvent) -> None:
        if event.state in FINAL:
            self.counts[event.state] += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, counts=self._counts_text())
        elif not self.quiet and time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._last_line = time.monotonic()
            self.console.print(f"{self.done}/{self.total} done, {self._counts_text()}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in FINAL)

    def _counts_text(self) -> str:
        rate = (self.done - self._done_at_start) / max(time.monotonic() - self._started, 1e-9)
        return (
            f"sent {self.counts[RowState.SENT]}  failed {self.counts[RowState.FAILED]}  "
            f"unknown {self.counts[RowState.UNKNOWN]}  {rate:.1f}/s"
        )


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
        table.add_row(state, code, str(n))
    return table


def problems_table(problems: list[Problem], limit: int = 20) -> Table:
    table = Table(title=f"problems (first {min(limit, len(problems))} of {len(problems)})")
    for column in ("row", "column", "code", "message"):
        table.add_column(column, overflow="fold")
    for p in problems[:limit]:
        table.add_row("" if p.row is None else str(p.row), p.column or "", p.code, p.message)
    return table
