"""A strict rolling-window API server of another make than the sandbox: stdlib only.

A `http.server.ThreadingHTTPServer` that answers the few endpoints a run uses (the send,
and the preflight reads: senders, templates, me) in the sandbox's shapes, for the demo
sender 12 and template 45. It logs every arrival's time and refuses with a 429 (and a
Retry-After) a request that would make a rolling second hold more than `rate` admitted
ones. `jitter` adds a random delay of 0 to `jitter` seconds before a request "arrives",
as a network delays some requests more than others. `refuse` answers the next sends 429
with a given Retry-After, whatever the rate (a server that asks for a long wait).

Shared by the tests and the benchmarks (bench/ puts tests/ on its path). In a thread:

    with running(StrictServer(jitter=0.04)) as url:
        ...  # campaign run ... --base-url url
    server.max_in_rolling_second(), server.rate_limited, server.accepted

or in its own process (`python tests/strict_server.py --port 8001 [--jitter 0.04]
[--refuse 960]`), whose log `arrivals_at(url)` reads from GET /strict/arrivals.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sandbox-key"
SENDER = {
    "id": 12,
    "phone_number": "+14155551234",
    "display_name": "Acme Support",
    "status": "online",
    "quality_rating": "GREEN",
    "messaging_limit": 100_000,
    "messaging_limit_formatted": "100,000 / 24hr",
}
TEMPLATE = {
    "id": 45,
    "name": "appointment_reminder",
    "language": "en",
    "category": "marketing",
    "status": "approved",
    "body_text": "Hi {{1}}, this is a reminder of your appointment on {{2}}.",
    "variables": ["customer_name", "date"],
    "has_variables": True,
}
ME = {"name": "Strict User", "email": "strict@example.com", "total_balance": 1000.0}


@dataclass(frozen=True)
class Arrival:
    time: float  # time.time() when the request arrived (after any jitter)
    path: str
    phone: str | None  # the recipient of a send
    status: int


class StrictServer:
    """The server's state: its rule, and the log of every arrival."""

    def __init__(
        self,
        rate: int = 5,
        *,
        jitter: float = 0.0,
        latency: float = 0.02,
        retry_after: str = "1",
        seed: int | None = None,
    ) -> None:
        self.rate = rate
        self.jitter = jitter  # seconds, at most, of random delay before arriving
        self.latency = latency  # seconds an admitted request takes to answer
        self.retry_after = retry_after
        self.arrivals: list[Arrival] = []
        self.refuse: list[str] = []  # Retry-After values of the next sends to refuse
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    # -- what the tests read ---------------------------------------------------------

    def times(self, path_end: str = "") -> list[float]:
        with self._lock:
            return sorted(a.time for a in self.arrivals if a.path.endswith(path_end))

    @property
    def sends(self) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path.endswith("/send")]

    @property
    def accepted(self) -> int:
        return sum(1 for a in self.sends if a.status == 200)

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return sum(1 for a in self.arrivals if a.status == 429)

    def max_in_rolling_second(self) -> int:
        """Most arrivals (refused ones too) in any half-open window of one second."""
        return most_in_one_second(self.times())

    # -- the rule --------------------------------------------------------------------

    def arrive(self, path: str, phone: str | None) -> tuple[int, str | None]:
        """Log an arrival now; (status, Retry-After) by the rolling-window rule."""
        with self._lock:
            now = time.time()
            if path.endswith("/send") and self.refuse:
                status, retry_after = 429, self.refuse.pop(0)
            else:
                while self._admitted and now - self._admitted[0] >= 1.0:
                    self._admitted.popleft()
                admitted = len(self._admitted) < self.rate
                if admitted:
                    self._admitted.append(now)
                status, retry_after = (200, None) if admitted else (429, self.retry_after)
            self.arrivals.append(Arrival(now, path, phone, status))
        return status, retry_after

    def delay(self) -> float:
        with self._lock:
            return self._random.uniform(0.0, self.jitter) if self.jitter else 0.0


def most_in_one_second(times: list[float]) -> int:
    """The largest number of (sorted) times falling in one half-open window of one second."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API over TLS would be used
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet

    def _handle(self) -> None:
        api = self.server.api
        if self.path == "/strict/arrivals":  # the log, for a test in another process
            with api._lock:
                self._answer(200, {"data": [asdict(a) for a in api.arrivals]})
            return
        time.sleep(api.delay())  # the network's extra delay, before the server sees it
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._answer(401, {"message": "Unauthenticated."})
            return
        phone = _phone(body) if path.endswith("/send") else None
        status, retry_after = api.arrive(path, phone)
        if status == 429:
            self._answer(429, {"message": "Too Many Attempts."}, {"Retry-After": retry_after})
            return
        time.sleep(api.latency)
        self._answer(*_answer_to(self.command, path, len(api.arrivals)))

    def _answer(self, status: int, body: object, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _phone(body: bytes) -> str | None:
    try:
        return json.loads(body).get("recipient_phone")
    except (ValueError, AttributeError):
        return None


def _answer_to(method: str, path: str, n: int) -> tuple[int, object]:
    if method == "POST" and path == "/api/user/whatsapp/send":
        return 200, {
            "success": True,
            "conversation_id": n,
            "message_id": n,
            "whatsapp_message_id": n,
            "message_sid": f"SM{n:032x}",
            "status": "queued",
        }
    if path == "/api/user/whatsapp/senders":
        return 200, {"data": [SENDER]}
    if path == "/api/user/whatsapp/senders/12/templates":
        return 200, {"data": [TEMPLATE]}
    if path == "/api/user/me":
        return 200, ME
    return 404, {"message": "Not Found"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: StrictServer


@contextlib.contextmanager
def running(api: StrictServer) -> Iterator[str]:
    """Serve `api` on 127.0.0.1 in a background thread; yields its base URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = api
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def arrivals_at(url: str) -> list[Arrival]:
    """The arrival log of a strict server running in another process."""
    with urllib.request.urlopen(f"{url}/strict/arrivals", timeout=10) as answer:
        return [Arrival(**a) for a in json.load(answer)["data"]]


def main() -> None:
    parser = argparse.ArgumentParser(description="A strict rolling-window API on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=int, default=5)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--refuse", default="", help="Retry-After values of the first sends")
    args = parser.parse_args()
    api = StrictServer(args.rate, jitter=args.jitter, latency=args.latency)
    api.refuse = [value for value in args.refuse.split(",") if value]
    server = _Server(("127.0.0.1", args.port), _Handler)
    server.api = api
    server.serve_forever()


if __name__ == "__main__":
    main()
