"""The console's Starlette app: its settings, middleware, lifespan and server."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from campaign.client import DEFAULT_BASE_URL
from campaign.store import Store
from campaign.web import pages, safety, webhook
from campaign.web.account import AccountCache
from campaign.web.runs import ConsoleRuns

HERE = Path(__file__).parent
DEFAULT_MAX_UPLOAD = 50 << 20  # bytes


@dataclass(frozen=True)
class ConsoleConfig:
    """What `campaign serve` was given; the API key stays on the server."""

    api_key: str = field(repr=False)
    db: str | None = None
    base_url: str = DEFAULT_BASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    password: str | None = field(default=None, repr=False)
    max_upload: int = DEFAULT_MAX_UPLOAD
    upload_dir: Path = Path("campaign-uploads")
    # The delivery webhook's signing secret (webhook.read_webhook_secret); None: it is off.
    webhook_secret: bytes | None = field(default=None, repr=False)


def create_app(config: ConsoleConfig) -> Starlette:
    """The console: pages, JSON for the live views, static files, and `mounted` routes."""
    safety.check_bind(config.host, config.password)
    store = open_store(config)
    state = pages.Console(
        config=config,
        store=store,
        runs=ConsoleRuns(store),
        account=AccountCache(),
        templates=_templates(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            state.runs.attach(tasks)
            try:
                yield
            finally:
                state.runs.stop_all()  # the task group then waits for them to end
        store.close()

    routes = [
        *pages.routes(),
        *mounted(store, config),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(safety.SecurityHeaders),
        Middleware(safety.BodyLimit, limit=config.max_upload, chunked_ok=(webhook.PATH,)),
        Middleware(safety.Sessions, secret_key=secrets.token_urlsafe(32)),
        Middleware(safety.LoginGate, required=bool(config.password)),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.console = state
    return app


def mounted(store: Store, config: ConsoleConfig) -> list[BaseRoute]:
    """Routes other features mount on the console, beside its pages: the signed delivery
    webhook (campaign/web/webhook.py), or, without a secret, a route saying it is off.

    It lives under /webhooks/, which the login leaves open (safety.OPEN_PATHS: it has its
    own proof) and which no CSRF check touches.
    """
    if config.webhook_secret:
        return [*webhook.webhook_routes(store, config.webhook_secret)]
    return [Route(webhook.PATH, webhook_off, methods=["POST"])]


WEBHOOK_OFF = (
    "The delivery status webhook is off: this console was started without a secret "
    f"(--webhook-secret-file or {webhook.SECRET_ENV}).\n"
)


async def webhook_off(request: Request) -> PlainTextResponse:
    """503, not 404: the sender delivers the event again later, once a secret is set."""
    return PlainTextResponse(WEBHOOK_OFF, 503, headers={"Retry-After": webhook.RETRY_AFTER})


def open_store(config: ConsoleConfig) -> Store:
    return Store.open(config.db)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value from a spreadsheet or the API is text, never markup
        undefined=jinja2.ChainableUndefined,
    )
    return Jinja2Templates(env=env)


def serve(config: ConsoleConfig) -> None:
    """Serve the console with uvicorn until Ctrl-C or SIGTERM (runs then stop cleanly)."""
    app = create_app(config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        proxy_headers=True,  # X-Forwarded-Proto from a TLS proxy on this host: Secure cookies
        forwarded_allow_ips="127.0.0.1",
        log_level="info",
        timeout_graceful_shutdown=60,
    )
