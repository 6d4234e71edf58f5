"""The campaigns this server is sending: anyio tasks on the server's own event loop.

They go through runner.run_campaign / resume_campaign like the CLI's runs: the same
dispatcher, lease and account pace, so a CLI run of a campaign this server is sending
exits 4, and this server refuses one a CLI run holds. Each has a stop event (the Stop
button). When the server shuts down it stops them all (requests in flight finish and
are recorded), marks them `interrupted`, and the campaign page offers Resume: nothing
is resent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus

from campaign import runner
from campaign.errors import CampaignError
from campaign.runner import Retry, RunResult, RunSettings
from campaign.store import CampaignInfo, Store

log = logging.getLogger("campaign.web")
INTERRUPTED = "interrupted"  # the status of a campaign whose server stopped mid-run


@dataclass
class Run:
    """One campaign this server is sending."""

    name: str
    stop: anyio.Event = field(default_factory=anyio.Event)
    notices: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """How this server's last run of a campaign ended: an error, or a halt's reason."""

    error: str | None = None
    notices: list[str] = field(default_factory=list)


Starter = Callable[..., Awaitable[RunResult]]


class ConsoleRuns:
    """Starts runs on the server's task group and remembers how they ended."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.running: dict[str, Run] = {}
        self.ended: dict[str, Outcome] = {}
        self._tasks: TaskGroup | None = None
        self._closing = False

    def attach(self, tasks: TaskGroup) -> None:
        self._tasks = tasks

    def is_running(self, name: str) -> bool:
        return name in self.running

    async def start_new(
        self,
        path: Path,
        sender_id: int,
        template_id: int,
        settings: RunSettings,
        name: str | None = None,
    ) -> str:
        """Create the campaign and start sending it; returns its name once it is sending.

        Raises what the runner raises before the first send (a bad file, the account's
        refusal, a busy campaign), so the page can say it.
        """
        start = runner.run_campaign
        return await self._start(start, path, sender_id, template_id, settings, name=name)

    async def resume(self, name: str, settings: RunSettings, retry: Retry | None = None) -> str:
        """Go on with a stored campaign (and `retry` rows); returns once it is sending."""
        return await self._start(runner.resume_campaign, name, settings, retry=retry)

    def stop(self, name: str) -> bool:
        run = self.running.get(name)
        if run is not None:
            run.stop.set()
        return run is not None

    def stop_all(self) -> None:
        """The server is shutting down: stop every run; each ends recorded."""
        self._closing = True
        for run in self.running.values():
            run.stop.set()

    async def _start(self, start: Starter, *args: object, **kwargs: object) -> str:
        if self._tasks is None or self._closing:
            raise CampaignError("the console is shutting down; start it again to send")
        return await self._tasks.start(self._run, start, args, kwargs)

    async def _run(
        self,
        start: Starter,
        args: tuple,
        kwargs: dict,
        *,
        task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        run = Run(name="")
        started = False

        def on_start(campaign: CampaignInfo, counts: dict[str, int]) -> None:
            nonlocal started
            run.name = campaign.name
            self.running[campaign.name] = run
            self.ended.pop(campaign.name, None)
            started = True
            task_status.started(campaign.name)

        try:
            result = await start(
                *args, **kwargs, on_start=on_start, on_notice=run.notices.append, stop=run.stop
            )
        except Exception as exc:
            if not started:
                raise  # the request that started it says why
            # A run's end must never take the server (and the other runs) down with it.
            if isinstance(exc, CampaignError):
                log.warning("campaign %s ended: %s", run.name, exc)
                error = str(exc)
            else:
                log.exception("campaign %s crashed", run.name)
                error = "the run ended on an internal error; see the server's log"
            self.ended[run.name] = Outcome(error, run.notices)
        else:
            self._ended(run, result)
        finally:
            self.running.pop(run.name, None)

    def _ended(self, run: Run, result: RunResult) -> None:
        self.ended[run.name] = Outcome(None, run.notices)
        if result.stopped and self._closing:
            # Stopped by the server going away, not by a person: the list says so.
            self.store.set_status(result.campaign.id, INTERRUPTED)
