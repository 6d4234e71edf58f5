"""The web console's routes and safety rules (Starlette's TestClient, a real sandbox)."""

from __future__ import annotations

import contextlib
import csv
import re
import signal
import socket
import stat
import subprocess
import warnings
from pathlib import Path

import httpx
import pytest
from helpers import SENDER, TEMPLATE, campaign_argv, cli_env, phone, wait_for, write_recipients
from typer.testing import CliRunner

from campaign import sandbox as fake
from campaign.cli import app as cli_app
from campaign.errors import UsageError
from campaign.runner import SendSettings
from campaign.store import Store
from campaign.web import ConsoleConfig, create_app
from campaign.web.options import CampaignOptions, run_settings

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

KEY = "sk-console-test-key-0123456789"  # distinctive: no page may ever show it
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)", re.IGNORECASE)


@pytest.fixture
def sandbox():
    """A sandbox on loopback that knows only KEY; yields (sandbox, base_url)."""
    api = fake.Sandbox(keys=[KEY])
    with fake.running(api) as base_url:
        yield api, base_url


def config_for(tmp_path: Path, base_url: str, **more) -> ConsoleConfig:
    values = dict(
        api_key=KEY,
        db=str(tmp_path / "console.db"),
        base_url=base_url,
        upload_dir=tmp_path / "uploads",
    )
    return ConsoleConfig(**values | more)


@contextlib.contextmanager
def console(config: ConsoleConfig, base_url: str = "http://127.0.0.1"):
    """The console's app with its lifespan running (its runs live on the client's loop)."""
    with TestClient(create_app(config), base_url=base_url) as client:
        yield client


def token(client: TestClient, path: str = "/campaigns/new") -> str:
    return CSRF.search(client.get(path).text)[1]


def upload(client: TestClient, path: Path, **form) -> object:
    """Post a file on the new-campaign form, as a browser does."""
    data = {"csrf_token": token(client), "sender_id": SENDER, "template_id": TEMPLATE} | form
    files = {"recipients": (path.name, path.read_bytes(), "text/csv")}
    return client.post("/campaigns/new", data=data, files=files, follow_redirects=False)


def start(client: TestClient, path: Path, **form) -> str:
    """Upload, check and start a campaign; returns its page's path."""
    checked = upload(client, path, **form)
    assert checked.status_code == 303, checked.text
    started = client.post(
        checked.headers["location"] + "/start",
        data={"csrf_token": token(client)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    return started.headers["location"]


def live(client: TestClient, page: str) -> dict:
    return client.get("/api" + page).json()


def wait_until_not_running(client: TestClient, page: str) -> dict:
    wait_for(lambda: not live(client, page)["state"].startswith("running"), what="the run's end")
    return live(client, page)


# --- binding and login ----------------------------------------------------------------


def test_public_address_without_password_exits_2(monkeypatch):
    """`campaign serve --host 0.0.0.0` with no password refuses in one sentence, exit 2."""
    monkeypatch.setenv("AUTOCALLS_API_KEY", KEY)
    monkeypatch.delenv("CAMPAIGN_CONSOLE_PASSWORD", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "without a password" in lines[0], result.output


def test_app_refuses_public_address_without_password(tmp_path):
    """The app itself will not be built for a public address without a password."""
    with pytest.raises(UsageError, match="password"):
        create_app(config_for(tmp_path, "http://127.0.0.1:9", host="0.0.0.0"))


def test_login_required_off_loopback(sandbox, tmp_path):
    """With a password every page needs a login; the cookie is HttpOnly, SameSite, Secure."""
    _, base_url = sandbox
    config = config_for(tmp_path, base_url, host="0.0.0.0", password="open sesame")
    with console(config, base_url="https://console.example") as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/api/campaigns").status_code == 401
        csrf = token(client, "/login")
        wrong = client.post("/login", data={"csrf_token": csrf, "password": "guess"})
        assert wrong.status_code == 401 and client.get("/api/campaigns").status_code == 401
        right = client.post(
            "/login", data={"csrf_token": csrf, "password": "open sesame"}, follow_redirects=False
        )
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
        assert client.get("/api/campaigns").status_code == 200


def test_loopback_without_password_needs_no_login(sandbox, tmp_path):
    """On 127.0.0.1 without a password the pages open directly."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        assert client.get("/", follow_redirects=False).status_code == 200


# --- CSRF, uploads, escaping, headers, the key ------------------------------------------


def test_every_changing_route_refuses_a_post_without_csrf_token(sandbox, tmp_path, recipients):
    """Every POST route answers 403 without the session's token, or with another one."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(2))
        wait_until_not_running(client, page)
        posts = [r.path for r in client.app.routes if "POST" in getattr(r, "methods", ())]
        assert len(posts) >= 7
        for path in posts:
            url = path.replace("{id:int}", page.rsplit("/", 1)[1]).replace("{token}", "x")
            for form in ({}, {"csrf_token": "forged"}):
                answer = client.post(url, data=form | {"rows": "failed"}, follow_redirects=False)
                assert answer.status_code == 403, (url, answer.status_code)
        # No upload slipped through: still one campaign, and no file beyond the first.
        assert len(client.get("/api/campaigns").json()["campaigns"]) == 1
        assert len(list((tmp_path / "uploads").iterdir())) == 1


def test_upload_too_big_is_refused(sandbox, tmp_path, recipients):
    """A body over --max-upload gets 413 before any of it is read; nothing is written."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url, max_upload=2000)) as client:
        answer = upload(client, recipients(100))
        assert answer.status_code == 413
        assert not (tmp_path / "uploads").exists()
        assert upload(client, recipients(2)).status_code == 303  # a small one passes


def test_upload_is_kept_with_mode_600(sandbox, tmp_path, recipients):
    """The uploaded file is readable by the server's user only, in a private directory."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        upload(client, recipients(2))
    (saved,) = (tmp_path / "uploads").glob("*/*.csv")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700


def test_script_in_names_and_values_is_shown_as_text(sandbox, tmp_path):
    """A campaign name and a cell holding <script> come back escaped on every page."""
    _, base_url = sandbox
    evil = "<script>alert(1)</script>"
    messy = tmp_path / "messy.csv"
    with messy.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        writer.writerow([phone(1), evil, "R1", "1 December"])
        writer.writerow([evil, "Bob", "R2", "1 December"])
    with console(config_for(tmp_path, base_url)) as client:
        checked = client.get(upload(client, messy, name=evil).headers["location"])
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in checked.text
        assert evil not in checked.text
        page = start(client, messy, name=evil, skip_invalid="on")
        wait_until_not_running(client, page)
        for path in ("/", page):
            text = client.get(path).text
            assert evil not in text and "&lt;script&gt;" in text


def test_every_page_sends_a_csp_and_no_inline_script(sandbox, tmp_path, recipients):
    """Every page has a Content-Security-Policy allowing scripts from the console only."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        draft = upload(client, recipients(3)).headers["location"]
        page = start(client, recipients(2))
        wait_until_not_running(client, page)
        for path in ("/", "/login", "/campaigns/new", draft, page, "/campaigns/999", "/nope"):
            answer = client.get(path)
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
            assert not INLINE_SCRIPT.search(answer.text), path
        report = client.get(page + "/report.html")
        assert "script-src" not in report.headers["content-security-policy"]  # none at all
        assert "default-src 'none'" in report.headers["content-security-policy"]


def test_api_key_never_reaches_the_browser(sandbox, tmp_path, recipients):
    """No page, JSON answer, report or header carries the API key."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        draft = upload(client, recipients(3)).headers["location"]
        page = start(client, recipients(2))
        wait_until_not_running(client, page)
        paths = ["/", "/campaigns/new", draft, draft + "/problems.csv", page, "/api" + page]
        paths += ["/api/campaigns", *(f"{page}/report.{kind}" for kind in ("csv", "json", "html"))]
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert KEY not in answer.text and KEY not in str(answer.headers), path


# --- the pages do what they say ----------------------------------------------------------


def test_messy_file_shows_each_problem_by_row(sandbox, tmp_path):
    """The validation page names the spreadsheet row of each bad phone, and refuses to start."""
    _, base_url = sandbox
    path = write_recipients(tmp_path / "messy.csv", 4, phones=[phone(1), "12", phone(3), "abc"])
    with console(config_for(tmp_path, base_url)) as client:
        draft = upload(client, path).headers["location"]
        text = client.get(draft).text
        rows = re.findall(r'<td class="num">(\d+)</td>', text)
        assert rows == ["3", "5"]
        refused = client.post(draft + "/start", data={"csrf_token": token(client)})
        assert refused.status_code == 400 and "skip" in refused.text
        assert client.get("/api/campaigns").json()["campaigns"] == []


def test_campaign_runs_to_the_end_with_live_counts(sandbox, tmp_path, recipients):
    """A started campaign sends every row once; its JSON shows counts and a chart."""
    api, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(6))
        done = wait_until_not_running(client, page)
    assert done["state"] == "finished" and done["counts"]["sent"] == 6
    assert sum(n for _, n in done["chart"]) == 6
    assert api.duplicates() == {}


def test_stop_then_resume_sends_each_row_once(tmp_path, recipients):
    """Stop leaves the rest pending; Resume sends it; nobody gets two messages."""
    api = fake.Sandbox(keys=[KEY], latency=0.05)
    with fake.running(api) as base_url, console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(15))
        wait_for(lambda: live(client, page)["counts"]["sent"] >= 2, what="a first send")
        client.post(page + "/stop", data={"csrf_token": token(client)})
        stopped = wait_until_not_running(client, page)
        assert stopped["state"] == "stopped" and stopped["counts"]["pending"] > 0
        assert stopped["can_resume"]
        client.post(page + "/resume", data={"csrf_token": token(client)})
        done = wait_until_not_running(client, page)
    assert done["counts"]["sent"] == 15 and api.duplicates() == {}


def test_server_shutdown_leaves_campaign_interrupted_and_resumable(tmp_path, recipients):
    """When the console stops mid-run its campaign shows interrupted; a resume ends it once."""
    api = fake.Sandbox(keys=[KEY], latency=0.05)
    with fake.running(api) as base_url:
        config = config_for(tmp_path, base_url)
        with console(config) as client:
            page = start(client, recipients(15))
            wait_for(lambda: live(client, page)["counts"]["sent"] >= 2, what="a first send")
        with console(config) as client:
            view = live(client, page)
            assert view["state"] == "interrupted" and view["can_resume"], view
            assert "Resume" in client.get(page).text
            client.post(page + "/resume", data={"csrf_token": token(client)})
            done = wait_until_not_running(client, page)
    assert done["counts"]["sent"] == 15 and api.duplicates() == {}


def test_retry_unknown_rows_needs_the_typed_name(tmp_path, recipients):
    """Unknown rows are retried only once the person typed the campaign's name."""
    api = fake.Sandbox(keys=[KEY], faults=fake.Faults(error_500_phones={phone(1)}))
    with fake.running(api) as base_url, console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(3), name="spring")
        assert wait_until_not_running(client, page)["counts"]["unknown"] == 1
        form = {"csrf_token": token(client), "rows": "unknown"}
        refused = client.post(page + "/retry", data=form | {"confirm": "yes"})
        assert refused.status_code == 400 and "type the campaign" in refused.text
        assert api.messages_to(phone(1)) == 1
        api.faults = fake.Faults()
        client.post(page + "/retry", data=form | {"confirm": "spring"})
        done = wait_until_not_running(client, page)
    assert done["counts"]["sent"] == 3 and api.messages_to(phone(1)) == 2


@pytest.mark.slow
def test_console_and_cli_never_send_one_campaign_at_once(tmp_path, recipients):
    """A CLI resume of a campaign the console is sending exits 4, and the other way round."""
    api = fake.Sandbox(keys=[KEY], latency=0.05)
    with fake.running(api) as base_url:
        config = config_for(tmp_path, base_url)
        env = cli_env(config.db) | {"AUTOCALLS_API_KEY": KEY}
        resume = campaign_argv("resume", "spring", "--base-url", base_url)
        with console(config) as client:
            page = start(client, recipients(25), name="spring")
            busy = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=60)
            assert busy.returncode == 4, busy.stderr
            client.post(page + "/stop", data={"csrf_token": token(client)})
            wait_until_not_running(client, page)
            cli = subprocess.Popen(resume, env=env, stderr=subprocess.PIPE, text=True)
            try:
                with Store.open(config.db) as store:
                    campaign = store.find_campaign("spring")
                    wait_for(lambda: store.lease_holder(campaign.id) is not None, what="the CLI")
                refused = client.post(page + "/resume", data={"csrf_token": token(client)})
                assert refused.status_code == 400 and "another run" in refused.text
            finally:
                assert cli.wait(timeout=60) == 0, cli.stderr.read()
    assert api.duplicates() == {}


# --- the options ---------------------------------------------------------------------


def test_options_reach_the_run_settings(tmp_path):
    """Skip invalid and default region reach the runner; the key stays out of the repr."""
    config = config_for(tmp_path, "http://127.0.0.1:9")
    options = CampaignOptions.from_form({"skip_invalid": "on", "default_region": "gb"})
    settings = run_settings(config, options)
    assert settings.loading.skip_invalid and settings.loading.default_region == "GB"
    assert not settings.handle_signals and KEY not in repr(settings) + repr(config)
    with pytest.raises(UsageError, match="two letters"):
        CampaignOptions.from_form({"default_region": "Great Britain"})


def test_send_window_is_applied_or_refused_never_dropped(tmp_path):
    """A send window the runner cannot apply is refused, not silently ignored."""
    config = config_for(tmp_path, "http://127.0.0.1:9")
    options = CampaignOptions.from_form({"send_window": "09:00-20:00"})
    if "send_window" in {f.name for f in SendSettings.__dataclass_fields__.values()}:
        assert run_settings(config, options).sending.send_window  # type: ignore[attr-defined]
    else:
        with pytest.raises(UsageError, match="send window"):
            run_settings(config, options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_campaign_serve_serves_and_stops_on_sigterm(sandbox, tmp_path):
    """`campaign serve` in a real process answers on loopback and shuts down on SIGTERM."""
    _, base_url = sandbox
    port = free_port()
    argv = campaign_argv("serve", "--port", port, "--base-url", base_url, "--upload-dir", tmp_path)
    env = cli_env(str(tmp_path / "serve.db")) | {"AUTOCALLS_API_KEY": KEY}
    server = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(serving, what="the console to serve")
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert "content-security-policy" in page.headers and KEY not in page.text
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    # uvicorn shuts down cleanly, then re-raises the signal it caught: the exit says so.
    log = server.stderr.read()
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, log


def test_empty_password_file_is_refused(tmp_path, monkeypatch):
    """An empty --password-file is one line and exit 2, not a console without a password."""
    monkeypatch.setenv("AUTOCALLS_API_KEY", KEY)
    empty = tmp_path / "password"
    empty.write_text("\n")
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0", "--password-file", str(empty)]
    )
    assert result.exit_code == 2 and "is empty" in result.output


def test_a_refused_upload_is_not_kept(sandbox, tmp_path, recipients):
    """A file the account check refuses (a pending template) is deleted, the reason shown."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        refused = upload(client, recipients(2), template_id=fake.PENDING_TEMPLATE_ID)
        assert refused.status_code == 400 and "only approved templates" in refused.text
    assert list((tmp_path / "uploads").iterdir()) == []
