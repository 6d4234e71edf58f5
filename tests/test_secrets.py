"""The API key never leaks: not into the store, logs, reports, error messages or tracebacks."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import SENDER, TEMPLATE, campaign_argv, phone, write_recipients

from campaign import sandbox as fake

pytestmark = pytest.mark.slow


def key_forms(key: str) -> list[bytes]:
    """The key as it could show up: whole, without its id, its random part, URL-quoted."""
    token = key.split("|", 1)[1]
    forms = {key, token, token.removeprefix("SeCrEt-"), quote(key, safe="")}
    return [form.encode() for form in forms]


def leaks(data: bytes, key: str) -> list[bytes]:
    """The forms of `key` found in `data`, case-insensitively."""
    return [form for form in key_forms(key) if form.lower() in data.lower()]


class Cli:
    """Runs `python -m campaign ...` (several at once when they are independent), keeping
    every byte each one printed."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.outputs: list[tuple[list[str], bytes]] = []

    def start(self, args: list[str], key: str | None) -> subprocess.Popen[bytes]:
        env = dict(os.environ, CAMPAIGN_DB=self.db)
        env.pop("AUTOCALLS_BASE_URL", None)
        env.pop("AUTOCALLS_API_KEY", None)
        if key is not None:
            env["AUTOCALLS_API_KEY"] = key
        return subprocess.Popen(
            campaign_argv(*args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def many(self, *calls: tuple[list[str], str | None, int]) -> list[str]:
        """Run (args, key, expected exit code) calls together; return their stdouts."""
        procs = [self.start(args, key) for args, key, _ in calls]
        stdouts = []
        for (args, _, code), proc in zip(calls, procs, strict=True):
            stdout, stderr = proc.communicate(timeout=90)
            self.outputs.append((args, stdout + stderr))
            assert proc.returncode == code, (args, stderr.decode())
            stdouts.append(stdout.decode())
        return stdouts

    def __call__(self, *args: str, key: str | None = None, code: int = 0) -> str:
        return self.many((list(args), key, code))[0]


def send_args(path: Path, base_url: str, *more: str) -> list[str]:
    return [
        "run",
        str(path),
        "--sender-id",
        str(SENDER),
        "--template-id",
        str(TEMPLATE),
        "--base-url",
        base_url,
        "--rate",
        "20",
        "--timeout",
        "1",
        "--max-attempts",
        "2",
        "-v",
        "-v",
        *more,
    ]


def test_the_api_key_is_never_written_anywhere(tmp_path):
    """Faults, halts, bad input, bad URLs and keys at -v -v: the key is in no output or file."""
    key = "9|SeCrEt-" + secrets.token_hex(12)
    db = str(tmp_path / "campaigns.db")
    cli = Cli(db)
    secret_dir = tmp_path / "secret"  # holds the key on purpose: not scanned
    secret_dir.mkdir()
    key_file = secret_dir / "api-key"
    key_file.write_text(key + "\n")
    bom_key_file = secret_dir / "api-key-notepad"  # UTF-8 with a BOM, as Notepad saves it
    bom_key_file.write_bytes(b"\xef\xbb\xbf" + key.encode() + b"\r\n")
    utf16_key_file = secret_dir / "api-key-utf16"
    utf16_key_file.write_bytes(key.encode("utf-16"))
    config = secret_dir / "campaign.toml"
    faults = fake.Faults(
        error_500_phones={phone(1)},
        drop_phones={phone(2)},
        error_503_phones={phone(3)},
        slow_phones={phone(4)},
        slow_seconds=5,
    )
    sandbox = fake.Sandbox(keys=(key,), rate=20, faults=faults)
    phones = [phone(i) for i in range(6)] + [fake.TWILIO_ERROR_PHONE]
    faulty = write_recipients(tmp_path / "faulty.csv", len(phones), phones=phones)
    halting = write_recipients(
        tmp_path / "halting.csv", 6, phones=[phone(i) for i in range(10, 16)]
    )
    invalid = write_recipients(tmp_path / "invalid.csv", 2, phones=[phone(20), "not a phone"])
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a SQLite database, " * 100)

    with fake.running(sandbox) as base_url:
        # A 500, a drop, a maintenance 503 (retried, then failed), a read timeout and a
        # Twilio error.
        cli(*send_args(faulty, base_url, "--name", "faulty"), key=key, code=1)
        # The balance runs out: a 402 halt. The key comes from --api-key-file.
        sandbox.balance = 2
        cli(
            *send_args(halting, base_url, "--name", "halting", "--api-key-file", str(key_file)),
            code=3,
        )
        sandbox.top_up(100)
        # The Twilio-failed row again, the key from a file Notepad saved, logs as JSON.
        cli(
            "retry",
            "faulty",
            "--failed",
            "--code",
            fake.TWILIO_ERROR_CODE,
            "--base-url",
            base_url,
            "--api-key-file",
            str(bom_key_file),
            "--log-format",
            "json",
            "-v",
            "-v",
            code=1,
        )
        config.write_text(
            f'api_key_file = "{key_file}"\nbase_url = "{base_url}/not-the-api/"\n'
            f"sender_id = {SENDER}\ntemplate_id = {TEMPLATE}\n"
        )
        closed_port = base_url.rsplit(":", 1)[0] + ":9"
        # Every way to fail before sending, at once: they share nothing but the store.
        cli.many(
            # An invalid row: nothing sent, the problems table printed.
            (send_args(invalid, base_url), key, 2),
            # Wrong base URLs: a port nobody listens on; a path that is not the API (404s),
            # from a config file that names the key file.
            (send_args(faulty, closed_port, "--name", "x2"), key, 2),
            (["run", str(faulty), "--config", str(config), "--name", "x3", "-v", "-v"], None, 2),
            # A key the API refuses (401) that contains ours: not echoed either.
            (send_args(faulty, base_url, "--name", "x4"), key + "-revoked", 2),
            # A key file that is not UTF-8, and a store that is not a database.
            (send_args(faulty, base_url, "--api-key-file", str(utf16_key_file)), None, 2),
            (send_args(faulty, base_url, "--db", str(broken)), key, 2),
        )
    assert {r.key for r in sandbox.requests} >= {key}  # the key really was used
    assert {m.phone for m in sandbox.messages} >= {phone(0), phone(10)}

    # Reports and status, on stdout and in files.
    html, json_out = str(tmp_path / "faulty.html"), str(tmp_path / "faulty.json")
    cli.many(
        (["report", "faulty"], None, 0),
        (["report", "faulty", "--format", "json", "--out", json_out, "--html", html], None, 0),
        (["report", "halting", "--format", "json"], None, 0),
        (["status", "faulty", "--json"], None, 0),
        (["status", "--json"], None, 0),
    )

    scanned = 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and secret_dir not in path.parents:
            assert not leaks(path.read_bytes(), key), path
            scanned += 1
    store_files = {p.name for p in tmp_path.iterdir() if p.name.startswith("campaigns.db")}
    assert "campaigns.db" in store_files and scanned >= 7, (store_files, scanned)
    store = b"".join((tmp_path / name).read_bytes() for name in store_files)
    assert phone(0).encode() in store  # the scan reads the store's real content
    for args, printed in cli.outputs:
        assert not leaks(printed, key), (args, printed.decode())
        assert b"Traceback" not in printed, (args, printed.decode())
    logged = b"".join(printed for _, printed in cli.outputs)
    assert b"HTTP Request" in logged and b'"levelname"' in logged  # -v -v, text and JSON


PAGE_PHONE = phone(40)  # the front answers its send with a 500 page listing the headers
QUOTE_PHONE = phone(41)  # ... and this one with a 401 quoting the token


class EchoingFront:
    """The sandbox behind a front (a misconfigured proxy, a debug page) that echoes the key.

    A send to PAGE_PHONE gets a 500 HTML page listing every request header; a send to
    QUOTE_PHONE gets a 401 `{"message": "Invalid token Bearer <key>"}`; the rest, and
    every read, go to the sandbox.
    """

    def __init__(self, sandbox: fake.Sandbox) -> None:
        self.sandbox = sandbox
        self.echoed = 0
        self.app = self  # what fake.running serves

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/whatsapp/send"):
            return await self.sandbox.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        phone_ = json.loads(body).get("recipient_phone")
        if phone_ == PAGE_PHONE:
            listed = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in headers.items())
            page = f"<html><h1>500 | Server Error</h1><table>{listed}</table></html>"
            return await self._answer(send, 500, "text/html", page.encode())
        if phone_ == QUOTE_PHONE:
            quoted = {"message": f"Invalid token {headers['authorization']}"}
            return await self._answer(send, 401, "application/json", json.dumps(quoted).encode())
        replayed = False

        async def replay():  # the body we read, then whatever comes next (a disconnect)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.sandbox.app(scope, replay, send)

    async def _answer(self, send, status: int, content_type: str, body: bytes) -> None:
        self.echoed += 1
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def test_a_server_that_echoes_the_key_cannot_make_us_leak_it(tmp_path):
    """A 500 page listing the headers, a 401 quoting the token: the key is nowhere after."""
    key = "9|SeCrEt-" + secrets.token_hex(12)
    db = str(tmp_path / "campaigns.db")
    cli = Cli(db)
    sandbox = fake.Sandbox(keys=(key,), rate=20)
    front = EchoingFront(sandbox)
    path = write_recipients(
        tmp_path / "echo.csv", 4, phones=[PAGE_PHONE, phone(42), phone(43), QUOTE_PHONE]
    )
    with fake.running(front) as base_url:  # type: ignore[arg-type]  # anything with an .app
        cli(*send_args(path, base_url, "--name", "echo"), key=key, code=3)
    assert front.echoed == 2  # the key really was echoed, twice
    html, csv_out = str(tmp_path / "echo.html"), str(tmp_path / "echo.csv.out")
    status = cli.many(
        (["status", "echo"], None, 0),
        (["report", "echo", "--out", csv_out, "--html", html], None, 0),
        (["report", "echo", "--format", "json"], None, 0),
    )[0]
    halted = b"".join(printed for _, printed in cli.outputs)
    assert b"halted: HTTP_401: Invalid token Bearer [redacted]" in halted, halted.decode()
    assert "Bearer [redacted]" in status

    with sqlite3.connect(db) as conn:
        (halt_reason,) = conn.execute("SELECT halt_reason FROM campaigns").fetchone()
        attempts = conn.execute(
            "SELECT r.phone, a.error_message, a.raw_body FROM attempts a "
            "JOIN rows r ON r.id = a.row_id"
        ).fetchall()
    by_phone = {p: (message, raw) for p, message, raw in attempts}
    assert "[redacted]" in halt_reason and "[redacted]" in by_phone[QUOTE_PHONE][0]
    assert "authorization" in by_phone[PAGE_PHONE][1] and "[redacted]" in by_phone[PAGE_PHONE][1]
    scanned = 0
    for file in tmp_path.iterdir():
        assert not leaks(file.read_bytes(), key), file
        scanned += 1
    assert scanned >= 5  # the store (and its WAL, if any), the file, 3 reports
    for args, printed in cli.outputs:
        assert not leaks(printed, key), (args, printed.decode())
        assert b"Traceback" not in printed, (args, printed.decode())


def test_a_store_urls_secrets_are_never_shown(tmp_path):
    """A password in the URL's userinfo and query: masked in the one error line (a server
    that refuses the connection is unavailable, exit 5; a URL that does not parse, exit 2)."""
    cli = Cli(str(tmp_path / "unused.db"))
    url = (
        "postgresql+psycopg://campaign:Pw-In-UserInfo@127.0.0.1:9/campaigns"
        "?sslpassword=Pw-In-Query&password=Pw-Again&application_name=nightly"
    )
    cli.many(
        (["list", "--db", url], None, 5),
        (["status", "--db", url.replace("127.0.0.1:9", "127.0.0.1:notaport")], None, 2),
    )
    for _, printed in cli.outputs:
        text = printed.decode()
        assert text.startswith("error: ") and text.count("\n") == 1, text
        assert "Pw-" not in text and "***@127.0.0.1" in text, text
        assert "application_name=nightly" in text  # only secrets are masked


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:Pw-Secret@host:notaport/db",
        "://nothing",
        "postgresql+psycopg://user:Pw-Secret@[::1/db",
        "postgresql+psycopg://user:Pw@Secret@127.0.0.1:9/db",
    ],
)
def test_a_malformed_store_url_is_one_line_and_exit_2(tmp_path, url):
    """A --db URL that does not parse: exit 2, one line, no traceback, no password."""
    cli = Cli(str(tmp_path / "unused.db"))
    cli("list", "--db", url, code=2)
    [(_, printed)] = cli.outputs
    text = printed.decode()
    assert text.startswith("error: ") and text.count("\n") == 1, text
    assert "Secret" not in text and "Traceback" not in text, text
