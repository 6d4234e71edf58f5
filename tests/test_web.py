"""The web console's routes and safety rules (Starlette's TestClient, a real sandbox)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
import signal
import socket
import stat
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
from helpers import (
    SENDER,
    TEMPLATE,
    campaign_argv,
    cli_env,
    in_process,
    phone,
    settings_for,
    wait_for,
    write_recipients,
)
from typer.testing import CliRunner

from campaign import report, runner
from campaign import sandbox as fake
from campaign.cli import app as cli_app
from campaign.client import account_id
from campaign.eligibility import parse_cap
from campaign.errors import UsageError
from campaign.store import Store
from campaign.web import ConsoleConfig, create_app, pages
from campaign.web.options import CampaignOptions, run_settings
from campaign.web.webhook import MAX_BODY, PATH

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
    data = {"csrf_token": token(client), "sender": SENDER, "template": TEMPLATE} | form
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
    """Every POST route but the webhook (its signature is its proof) answers 403 without
    the session's token, or with another one."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(2))
        wait_until_not_running(client, page)
        posts = [r.path for r in client.app.routes if "POST" in getattr(r, "methods", ())]
        posts = [path for path in posts if not path.startswith("/webhooks/")]
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


def test_send_window_and_cap_reach_the_run_settings(tmp_path):
    """The send window and the frequency cap are parsed as the CLI's flags and applied;
    a bad one is refused in one line, never dropped."""
    config = config_for(tmp_path, "http://127.0.0.1:9")
    form = {"send_window": "09:00-20:00", "max_per_recipient": "1/24h"}
    options = CampaignOptions.from_form(form)
    sending = run_settings(config, options).sending
    assert str(sending.send_window) == "09:00-20:00"
    assert sending.max_per_recipient == parse_cap("1/24h")
    with pytest.raises(UsageError, match="max-per-recipient"):
        run_settings(config, CampaignOptions.from_form({"max_per_recipient": "lots"}))


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
        refused = upload(client, recipients(2), template=fake.PENDING_TEMPLATE_ID)
        assert refused.status_code == 400 and "only approved templates" in refused.text
    assert list((tmp_path / "uploads").iterdir()) == []


# --- the webhook, mounted on the console ----------------------------------------------

SECRET = b"console-webhook-secret"


def signed(client: TestClient, body: dict | bytes, secret: bytes = SECRET, **headers):
    """POST a body to the webhook with its signature (made with `secret`)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Signature-256": fake.sign(raw, secret)}
    return client.post(PATH, content=raw, headers=headers)


def test_signed_event_through_the_console_updates_a_row_without_login(sandbox, tmp_path):
    """A signed event reaches the console's webhook without a login and updates its row;
    a bad signature gets 401 and changes nothing."""
    api, base_url = sandbox
    config = config_for(tmp_path, base_url, webhook_secret=SECRET, password="open sesame")
    with console(config) as client:
        csrf = token(client, "/login")
        client.post("/login", data={"csrf_token": csrf, "password": "open sesame"})
        page = start(client, write_recipients(tmp_path / "two.csv", 2))
        assert wait_until_not_running(client, page)["counts"]["sent"] == 2
        client.post("/logout", data={"csrf_token": token(client, "/")})
        assert client.get("/api/campaigns").status_code == 401  # logged out indeed
        first = next(m for m in api.messages if m.phone == phone(0))
        read = fake.status_event(first, "+14155551234", "read")
        forged = signed(client, read, secret=b"another secret")
        assert forged.status_code == 401
        assert signed(client, read).status_code == 200
        csrf = token(client, "/login")
        client.post("/login", data={"csrf_token": csrf, "password": "open sesame"})
        view = live(client, page)
    assert view["delivery"] | {"resolved": 0} == {
        "read": 1,
        "delivered": 0,
        "failed": 0,
        "no_news": 1,
        "resolved": 0,
    }
    with Store.open(config.db) as store:
        rows = {r.phone: r.delivery_status for r in store.report_rows(1)}
    assert rows == {phone(0): "read", phone(1): None}


def test_webhook_without_secret_answers_503_and_pages_say_it_is_off(sandbox, tmp_path):
    """No secret: the route says the webhook is off (503, the sender comes back later),
    and the pages say delivery status is off."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        answer = signed(client, {"event": "message_status"})
        assert answer.status_code == 503 and "webhook is off" in answer.text
        assert "webhook-off" in client.get("/").text
    with console(config_for(tmp_path, base_url, webhook_secret=SECRET)) as client:
        assert "webhook-off" not in client.get("/").text


def test_webhook_takes_chunked_bodies_up_to_its_own_cap(sandbox, tmp_path):
    """A chunked body (no Content-Length) reaches the webhook, which still refuses one
    over 1 MB (413); other routes still want a declared length (411)."""
    _, base_url = sandbox
    small = json.dumps({"event": "message_status", "status": "sent"}).encode()
    big = b"x" * (MAX_BODY + 10)

    def chunks(raw: bytes):
        for i in range(0, len(raw), 64 * 1024):
            yield raw[i : i + 64 * 1024]

    def post_chunked(client, path, raw):
        headers = {"X-Signature-256": fake.sign(raw, SECRET)}
        return client.post(path, content=chunks(raw), headers=headers)

    with console(config_for(tmp_path, base_url, webhook_secret=SECRET)) as client:
        assert post_chunked(client, PATH, small).status_code == 200
        assert post_chunked(client, PATH, big).status_code == 413
        assert post_chunked(client, "/campaigns/new", small).status_code == 411


def test_webhook_secret_comes_from_the_file_or_environment(tmp_path, monkeypatch):
    """`campaign serve --webhook-secret-file` and AUTOCALLS_WEBHOOK_SECRET reach the app."""
    seen: list[ConsoleConfig] = []
    monkeypatch.setattr("campaign.web.serve", seen.append)
    monkeypatch.setenv("AUTOCALLS_API_KEY", KEY)
    monkeypatch.setenv("AUTOCALLS_WEBHOOK_SECRET", "from-env")
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    runner = CliRunner()
    assert runner.invoke(cli_app, ["serve"]).exit_code == 0
    from_file = ["serve", "--webhook-secret-file", str(secret_file)]
    assert runner.invoke(cli_app, from_file).exit_code == 0
    assert [c.webhook_secret for c in seen] == [b"from-env", b"from-file"]


# --- names, the preview, the test send ---------------------------------------------------


def test_pickers_show_names_and_resolve_them_as_the_cli_does(sandbox, tmp_path, recipients):
    """The form lists the sender by name and number and the template as name:language;
    those names resolve to ids (an ambiguous one is refused with its candidates)."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        form = client.get("/campaigns/new").text
        assert '<option value="+14155551234"' in form and "Acme Support (+14155551234)" in form
        assert '<option value="appointment_reminder:en" data-sender="+14155551234"' in form
        assert ">welcome:es<" in form and str(TEMPLATE) not in re.findall(r'value="([^"]*)"', form)
        draft = upload(client, recipients(2), sender="+14155551234", template="welcome:es")
        assert draft.status_code == 303
        assert "welcome:es" in client.get(draft.headers["location"]).text
        ambiguous = upload(client, recipients(2), sender="+14155551234", template="welcome")
        assert ambiguous.status_code == 400 and "ambiguous" in ambiguous.text
        assert "welcome:en" in ambiguous.text and "welcome:es" in ambiguous.text


def test_validation_page_shows_the_preview_and_sends_a_test(sandbox, tmp_path):
    """The check shows the first and the longest message; a test goes to the given number
    once, its answer on the page, escaped; no campaign is created."""
    api, base_url = sandbox
    path = tmp_path / "names.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        writer.writerow([phone(1), "Ann", "<b>Ann</b>", "1 December"])
        writer.writerow([phone(2), "Bob", "Bartholomew the Longest", "1 December"])
    me = phone(99)
    with console(config_for(tmp_path, base_url)) as client:
        draft = upload(client, path).headers["location"]
        page = client.get(draft).text
        assert "Hi &lt;b&gt;Ann&lt;/b&gt;, this is a reminder" in page
        assert 'id="preview-longest">Hi Bartholomew the Longest' in page
        form = {"csrf_token": token(client, draft), "to": me}
        answered = client.post(draft + "/test", data=form)
        assert answered.status_code == 200
        text = answered.text
        assert 'data-test="status">sent<' in text and "message_sid" in text
        assert "&lt;b&gt;Ann&lt;/b&gt;" in text and "<b>Ann</b>" not in text
        refused = client.post(draft + "/test", data=form | {"to": "not a number"}).text
        assert 'data-test="status">refused<' in refused and "not a phone number" in refused
        assert client.get("/api/campaigns").json()["campaigns"] == []
    assert api.messages_to(me) == 1 and len(api.messages) == 1


# --- what the campaign pages show ------------------------------------------------------


def test_chart_counts_requests_by_the_time_they_left(tmp_path, recipients):
    """The campaign's chart counts each request in the second it left, not its answer's."""
    api = fake.Sandbox(keys=[KEY], latency=1.05)  # over 1 s: every answer in a later second
    with fake.running(api) as base_url, console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(3))
        chart = wait_until_not_running(client, page)["chart"]
    with Store.open(str(tmp_path / "console.db")) as store:
        campaign = store.campaigns()[0]
        left = [[s, n] for s, n in report.sends_per_second(store, campaign)]
        answered = sorted({int(t.timestamp()) for t in store.sent_times(campaign.id)})
    assert chart == left and sum(n for _, n in chart) == 3
    assert [s for s, _ in chart] != answered


def test_live_chart_reads_only_its_last_minutes(sandbox, tmp_path, recipients):
    """While a campaign sends, the chart reads its last minutes only; once it ended, the
    whole campaign, reread only when its counts change."""
    _, base_url = sandbox
    with console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(3))
        wait_until_not_running(client, page)
        state = client.app.state.console
        campaign = state.store.campaigns()[0]
        counts = state.store.counts(campaign.id)
        whole = pages.sends_per_second(state, campaign, counts, active=False)
        assert sum(n for _, n in whole) == 3
        assert pages.sends_per_second(state, campaign, counts, active=False) is whole  # kept
        now = datetime.now(UTC)
        assert pages.sends_per_second(state, campaign, counts, active=True, now=now) == whole
        later = now + timedelta(seconds=pages.CHART_WINDOW + 5)
        assert pages.sends_per_second(state, campaign, counts, active=True, now=later) == []


def test_pages_show_delivery_counts_and_daytime_waits(sandbox, tmp_path, recipients):
    """A campaign whose recipients are asleep shows `waiting` with its rows and next time,
    on its page and in the list; Resume keeps its window unless told 'no window'; sent
    rows' delivery counts show on the page and the list."""
    api, base_url = sandbox
    los_angeles = datetime.now(ZoneInfo("America/Los_Angeles"))
    opens = (los_angeles + timedelta(hours=3)).strftime("%H:00")
    closes = (los_angeles + timedelta(hours=4)).strftime("%H:00")
    with console(config_for(tmp_path, base_url)) as client:
        page = start(client, recipients(2), send_window=f"{opens}-{closes}")
        view = wait_until_not_running(client, page)
        assert view["state"] == "waiting" and view["daytime"]["rows"] == 2
        assert "2 rows wait for their recipients' daytime" in view["daytime"]["text"]
        assert view["can_resume"]
        html = client.get(page).text
        assert "2 rows wait for their recipients&#39; daytime" in html
        listed = client.get("/").text
        assert "state-waiting" in listed and "2 rows wait" in listed
        assert f"sends {opens}-{closes} in each recipient" in html
        client.post(page + "/resume", data={"csrf_token": token(client)})  # keeps its window
        assert wait_until_not_running(client, page)["state"] == "waiting"
        assert api.messages == []
        client.post(page + "/resume", data={"csrf_token": token(client), "no_window": "on"})
        assert wait_until_not_running(client, page)["state"] == "finished"
        assert len(api.messages) == 2
        others = recipients(3, phones=[phone(i) for i in (10, 11, 12)])
        sent = wait_until_not_running(client, start(client, others))
        assert sent["delivery"]["no_news"] == 3
        assert sent["delivery_short"] == "3\u00a0no\u00a0news\u00a0yet"  # wraps between parts
        assert sent["delivery_short"] in client.get("/").text


# --- a big file does not hold up the server -----------------------------------------------


@pytest.mark.anyio
async def test_loading_a_new_campaigns_file_leaves_the_event_loop_free(tmp_path):
    """While run_campaign reads and stores a big file, other tasks on its loop (the
    console's pages, other runs) keep running: the load is on a worker thread."""
    rows = 30_000
    path = write_recipients(
        tmp_path / "big.csv", rows, phones=[f"+4479111{i:05d}" for i in range(rows)]
    )
    settings = settings_for(str(tmp_path / "big.db"), allow_partial=True)
    stop = anyio.Event()
    gaps: list[float] = []
    loading = True

    async def tick() -> None:
        last = time.monotonic()
        while loading:
            await anyio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        started = time.monotonic()
        result = await runner.run_campaign(
            path,
            SENDER,
            TEMPLATE,
            settings,
            transport=in_process(fake.Sandbox()),
            on_start=lambda *_: stop.set(),  # loaded and stored: enough
            stop=stop,
        )
        took = time.monotonic() - started
        loading = False
    assert result.campaign.total_rows == rows and result.stopped
    assert took > 1.0, f"a load this fast proves nothing ({took:.2f} s)"
    assert max(gaps) < took / 2, (max(gaps), took)


def test_validation_page_counts_suppressed_and_capped_rows(sandbox, tmp_path, recipients):
    """The check says how many rows are suppressed, and how many the frequency cap stops."""
    _, base_url = sandbox
    config = config_for(tmp_path, base_url)
    with console(config) as client:
        wait_until_not_running(client, start(client, recipients(2)))  # phones 0 and 1, today
        with Store.open(config.db) as store:
            store.add_suppressions(account_id(base_url, KEY), [phone(2)], "asked us")
        other = tmp_path / "other.csv"  # the same people, another message: not ALREADY_SENT
        with other.open("w", newline="") as f:
            rows = [[phone(i), f"Person {i}", "Another", "message"] for i in range(4)]
            csv.writer(f).writerows([["phone", "name", "1", "2"], *rows])
        page = client.get(upload(client, other, max_per_recipient="1/24h").headers["location"])
    assert "1 row&#39;s number is on this account&#39;s suppression list" in page.text
    assert "2 rows are at the cap of 1 message per 1 day to one number" in page.text


def test_resume_keeps_the_campaigns_stored_cap(sandbox, tmp_path, recipients):
    """The Resume form offers the campaign's stored frequency cap, even on a server that
    did not start it, and an empty field keeps it: the rows over it get nothing."""
    api, base_url = sandbox
    config = config_for(tmp_path, base_url)
    los_angeles = datetime.now(ZoneInfo("America/Los_Angeles"))
    closed = f"{los_angeles + timedelta(hours=3):%H:00}-{los_angeles + timedelta(hours=4):%H:00}"
    with console(config) as client:
        page = start(client, recipients(2), send_window=closed, max_per_recipient="1/24h")
        assert wait_until_not_running(client, page)["state"] == "waiting"
        other = tmp_path / "other.csv"  # the same people, another message: not ALREADY_SENT
        with other.open("w", newline="") as f:
            rows = [[phone(i), f"Person {i}", "Another", "message"] for i in range(2)]
            csv.writer(f).writerows([["phone", "name", "1", "2"], *rows])
        wait_until_not_running(client, start(client, other))
    with console(config) as client:  # a new server: it remembers nothing of the first
        assert 'name="max_per_recipient" placeholder="1/1d"' in client.get(page).text
        client.post(page + "/resume", data={"csrf_token": token(client), "no_window": "on"})
        assert wait_until_not_running(client, page)["state"] == "finished"
    assert len(api.messages) == 2  # the other campaign's: the capped rows got nothing
    with Store.open(config.db) as store:
        capped = store.campaigns()[0]
        assert capped.max_per_recipient == "1/1d"
        assert {r.error_code for r in store.report_rows(capped.id)} == {"FREQUENCY_CAP"}
