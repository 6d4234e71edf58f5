"""Real stores failing under a real run: a full disk, a restarted PostgreSQL, a lost lease.

`campaign run` is a real subprocess against the sandbox on loopback; the store's disk is
a small tmpfs we fill, or the store is a private PostgreSQL cluster we restart.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import campaign_argv, cli_env, phone, run_argv, wait_for, write_recipients

from campaign import sandbox as fake
from campaign.errors import StoreError, StoreUnavailable
from campaign.limiter import plan_turn
from campaign.store import Store

RATE = 20  # not the 5/s limit under test here: keep the runs short
PAUSED = "the store is unavailable"  # the one log line of a run waiting for its store


def must_have(reason: str) -> None:
    """Skip for want of a facility; under CI it must be there, so fail instead."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def small_disk(size: str = "16m") -> Iterator[Path]:
    """A tmpfs of `size`, mounted for this test only."""
    where = Path(tempfile.mkdtemp(prefix="campaign-disk-"))
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        mounted = None
    if mounted is None or mounted.returncode != 0:
        where.rmdir()
        must_have(f"cannot mount a tmpfs here: {mounted.stderr.strip() if mounted else 'no mount'}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    assert shutil.disk_usage(disk).free == 0
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


class Lines:
    """A process's stderr, read line by line in a thread, so a test can wait on a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def start_run(path: Path, base_url: str, db: str, *more: object) -> subprocess.Popen[str]:
    command = run_argv(path, base_url, "--rate", RATE, "--timeout", 5, "-q", *more)
    return subprocess.Popen(
        command, env=cli_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def sends(sandbox: fake.Sandbox) -> list[float]:
    """When each send request arrived (the sandbox's clock is this process's monotonic)."""
    return [r.time for r in sandbox.requests if r.path.endswith("/whatsapp/send")]


def stored_rows(url: str) -> dict[str, tuple[str, str | None]]:
    """phone -> (state, message_sid) of every row in the store at `url`."""
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    try:
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT phone, state, message_sid FROM rows").all()
    finally:
        engine.dispose()
    return {p: (state, sid) for p, state, sid in found}


def assert_every_message_once_and_recorded(url: str, sandbox: fake.Sandbox, n: int) -> None:
    assert sandbox.duplicates() == {}
    assert len(sandbox.messages) == n
    sid = {m.phone: m.message_sid for m in sandbox.messages}
    assert stored_rows(url) == {phone(i): ("sent", sid[phone(i)]) for i in range(n)}


@pytest.mark.slow
def test_a_full_disk_pauses_the_run_which_finishes_once_it_is_freed(tmp_path):
    """The SQLite store's disk fills mid-run, then is freed: the run waits, exit 0, each once."""
    n = 60
    sandbox = fake.Sandbox(rate=1000, latency=(0.01, 0.1))
    path = write_recipients(tmp_path / "list.csv", n)
    with small_disk() as disk, fake.running(sandbox) as base_url:
        db = str(disk / "campaigns.db")
        proc = start_run(path, base_url, db, "--store-patience", 60)
        try:
            reader = Lines(proc.stderr)
            wait_for(lambda: len(sandbox.messages) >= 10, 30, "10 messages")
            filler = fill(disk)
            wait_for(lambda: reader.has(PAUSED), 30, "the run to say it waits for its store")
            paused, sent_by_then = time.monotonic(), len(sandbox.messages)
            wait_for(lambda: time.monotonic() > paused + 1.5, 5, "the disk to stay full a while")
            freed = time.monotonic()
            filler.unlink()
            proc.wait(timeout=60)
            stderr = reader.text()
        finally:
            stop(proc)
        assert proc.returncode == 0, stderr
        assert stderr.count(PAUSED) == 1, stderr  # one line, not one per retry
        assert "Traceback" not in stderr
        # Nothing left while the disk was full (what had left by the pause was answered).
        assert not [t for t in sends(sandbox) if paused + 0.25 < t < freed]
        assert sent_by_then < n  # the disk filled mid-run, not after it
        assert_every_message_once_and_recorded(db, sandbox, n)


@pytest.mark.slow
def test_a_disk_that_stays_full_ends_the_run_with_exit_5_and_every_outcome_on_stderr(tmp_path):
    """Patience spent: exit 5, each accepted-but-unrecorded message as a JSON line; resume
    then marks those rows unknown, and nothing is sent twice."""
    n = 60
    sandbox = fake.Sandbox(rate=1000, latency=(0.2, 0.5))  # answers slow: some in flight
    path = write_recipients(tmp_path / "list.csv", n)
    with small_disk() as disk, fake.running(sandbox) as base_url:
        db = str(disk / "campaigns.db")
        proc = start_run(path, base_url, db, "--store-patience", 2)
        try:
            reader = Lines(proc.stderr)
            wait_for(lambda: len(sandbox.messages) >= 10, 30, "10 messages")
            filler = fill(disk)
            proc.wait(timeout=60)
            stderr = reader.text()
        finally:
            stop(proc)
        assert proc.returncode == 5, stderr
        assert "Traceback" not in stderr and fake.DEFAULT_KEY not in stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("error: the store stayed unavailable for 2 s"), stderr
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]

        # Every message the API accepted is recorded `sent`, or named on stderr with its IDs.
        filler.unlink()
        before = stored_rows(db)
        sid = {m.phone: m.message_sid for m in sandbox.messages}
        handed_back = {line["phone"]: line for line in lines if line["state"] == "sent"}
        assert handed_back, "no answer was in flight when the disk filled"
        recorded = {p for p, (state, _) in before.items() if state == "sent"}
        assert set(sid) == recorded | set(handed_back)
        assert not recorded & set(handed_back)
        for p, line in handed_back.items():
            assert line["message_sid"] == sid[p] and line["conversation_id"], line
            assert before[p][0] == "sending", (p, before[p])

        with sqlite3.connect(db) as conn:
            (name,) = conn.execute("SELECT name FROM campaigns").fetchone()
        again = subprocess.run(
            campaign_argv("resume", name, "--base-url", base_url, "--rate", RATE, "-q"),
            env=cli_env(db),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 1, again.stderr  # finished, with unknown rows
        after = stored_rows(db)
        report = subprocess.run(
            campaign_argv("report", name, "--format", "json"),
            env=cli_env(db),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert sandbox.duplicates() == {}
    assert {p for p, (state, _) in after.items() if state == "unknown"} >= set(handed_back)
    assert {p for p, (state, _) in after.items() if state not in ("sent", "unknown")} == set()
    accepted = {m.phone for m in sandbox.messages}
    assert accepted <= {p for p, (state, _) in after.items() if state in ("sent", "unknown")}
    shown = {r["phone"]: r for r in json.loads(report.stdout)["rows"]}
    assert all(shown[p]["state"] == "unknown" for p in handed_back)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """A PostgreSQL cluster of our own, in a temporary directory, that a test may restart."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            must_have("no PostgreSQL server binaries in /usr/lib/postgresql")
        if os.geteuid() != 0:
            must_have("starting a private PostgreSQL cluster needs root (to become postgres)")
        self.bin = bins[-1].parent
        self.home = Path(tempfile.mkdtemp(prefix="campaign-pg-"))
        owner = pwd.getpwnam("postgres")
        os.chown(self.home, owner.pw_uid, owner.pw_gid)
        self.data = self.home / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            user="postgres",
            cwd=self.home,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        log = str(self.home / "log")
        self.pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", action, *args)

    def __enter__(self) -> PrivateCluster:
        self.pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.ctl("start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.ctl("stop", "-m", "immediate")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.mark.slow
def test_a_postgresql_restart_mid_run_is_ridden_out(tmp_path):
    """`pg_ctl restart -m fast` while the run sends: exit 0, every message once, all recorded."""
    n = 80
    sandbox = fake.Sandbox(rate=1000, latency=(0.01, 0.1))
    path = write_recipients(tmp_path / "list.csv", n)
    with PrivateCluster() as cluster, fake.running(sandbox) as base_url:
        proc = start_run(path, base_url, cluster.url)
        try:
            reader = Lines(proc.stderr)
            wait_for(lambda: len(sandbox.messages) >= 15, 60, "15 messages")
            cluster.ctl("restart", "-m", "fast")
            assert proc.poll() is None and len(sandbox.messages) < n  # restarted mid-run
            proc.wait(timeout=60)
            stderr = reader.text()
        finally:
            stop(proc)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert_every_message_once_and_recorded(cluster.url, sandbox, n)


@pytest.mark.slow
@pytest.mark.parametrize("rows_taken", [False, True], ids=["lease", "lease-and-rows"])
def test_a_run_that_finds_its_lease_taken_stops_with_exit_4(tmp_path, rows_taken):
    """Another run takes the campaign mid-run: exit 4 with one sentence, no traceback, and
    every message this run had sent is recorded."""
    n = 80
    sandbox = fake.Sandbox(rate=1000, latency=(0.01, 0.1))
    path = write_recipients(tmp_path / "list.csv", n)
    db = str(tmp_path / "campaigns.db")
    with fake.running(sandbox) as base_url:
        proc = start_run(path, base_url, db)
        try:
            wait_for(lambda: len(sandbox.messages) >= 10, 30, "10 messages")
            with sqlite3.connect(db, timeout=30) as conn:  # the other run, as it starts
                conn.execute(
                    "UPDATE campaigns SET lease_owner = 'elsewhere:1:x', lease_expires_at = ?",
                    (time.time() + 600,),
                )
                if rows_taken:  # ...and claims the rows it is about to send
                    conn.execute("UPDATE rows SET state = 'sending' WHERE state = 'pending'")
            _, stderr = proc.communicate(timeout=30)
        finally:
            stop(proc)
    assert proc.returncode == 4, stderr
    assert "Traceback" not in stderr
    said = " ".join(stderr.split())  # one sentence (wrapped on a narrow stderr), nothing else
    assert said.startswith("error: campaign") and said.count("error") == 1, stderr
    assert "taken over by another run" in said
    assert sandbox.duplicates() == {}
    rows = stored_rows(db)
    sid = {m.phone: m.message_sid for m in sandbox.messages}
    assert all(rows[p] == ("sent", s) for p, s in sid.items())  # what it sent is recorded
    assert len(sid) < n
    if not rows_taken:  # a row it had claimed but not sent went back to pending
        assert {state for p, (state, _) in rows.items() if p not in sid} == {"pending"}


def book(store: Store) -> float:
    """Book a turn of an account: a write to the store."""
    return store.book_turn("account", 5, lambda pace: plan_turn(pace, 5)).at


def test_a_locked_sqlite_store_is_unavailable_not_a_bug(db_path):
    """Another process holding the write lock past the busy timeout: StoreUnavailable."""
    store = Store.open(db_path)
    store.engine.dispose()
    sa.event.listen(store.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=50"))
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            book(store)
        assert caught.value.reason == "database is locked"
        assert caught.value.exit_code == 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert book(store) > 0  # the lock gone, the same store works
    store.close()


def test_any_other_database_error_stays_a_bug(db_path):
    """A missing table is a bug, not a store to wait for: the database error goes through."""
    store = Store.open(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE account_pace")
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        book(store)
    store.close()


def test_a_postgresql_store_reopens_connections_the_server_dropped(pg_url):
    """Every connection killed server-side: the next call checks out a new one and works."""
    store = Store.open(pg_url)
    book(store)
    name = sa.make_url(pg_url).database
    admin = sa.create_engine(pg_url.replace(f"/{name}", "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ).scalar()
    admin.dispose()
    assert killed >= 1
    assert book(store) > 0
    store.close()


def test_a_postgresql_server_that_refuses_is_unavailable():
    """Connection refused: StoreUnavailable (exit 5), still a StoreError, no password shown."""
    with pytest.raises(StoreUnavailable) as caught:
        Store.open("postgresql+psycopg://user:s3cret@127.0.0.1:1/none?connect_timeout=2")
    assert isinstance(caught.value, StoreError) and caught.value.exit_code == 5
    assert "s3cret" not in str(caught.value)
