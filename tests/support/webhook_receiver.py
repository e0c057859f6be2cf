"""A real HTTP webhook receiver on 127.0.0.1, in a thread: scriptable answers, records every request,
verifies every signature. `stop()` then `start()` reopens the same port (receiver outage)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.support.server import free_port
from tests.support.waiting import eventually


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time(), for latency against NewEvent.produced_at
    status: int  # what this receiver answered
    signature_ok: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER.lower(), "")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WebhookReceiver:
    def __init__(self, secret: str = "s3cret-webhook", port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.default = Answer()
        self.delay_s = 0.0  # answer slowly (a receiver under load)
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.on_request: Callable[[Received], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *answers: int | Answer) -> None:
        """The next requests get these answers in order; then `default`."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real receiver

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._conns.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._conns.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._handle(self, body)

            def log_message(self, *_: Any) -> None:
                pass

        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})
        self._server = server_class(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="test.webhook", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Refuse connections from now on, and cut the kept-alive ones."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        received_at = time.time()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        signed = verify(
            self.secret,
            headers.get(TIMESTAMP_HEADER.lower(), ""),
            body,
            headers.get(SIGNATURE_HEADER.lower(), ""),
        )
        with self._lock:
            answer = self._script.popleft() if self._script else self.default
        if self.delay_s:
            time.sleep(self.delay_s)
        record = Received(handler.path, headers, body, received_at, answer.status, signed)
        with self._lock:
            self._received.append(record)
        if self.on_request is not None:
            self.on_request(record)
        data = answer.body.encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.ok]

    def delivered_alert_ids(self) -> set[str]:
        """Alert ids that reached this receiver with a 2xx answer, from single alerts and digests."""
        ids: set[str] = set()
        for r in self.delivered:
            body = r.json
            if body["type"] == "digest":
                ids.update(a["id"] for a in body["alerts"])
            else:
                ids.add(body["id"])
        return ids

    def all_signed(self) -> bool:
        received = self.received
        return bool(received) and all(r.signature_ok for r in received)

    async def wait_until(self, predicate: Callable[[WebhookReceiver], bool], timeout: float = 10.0) -> None:
        await eventually(
            lambda: predicate(self),
            timeout,
            interval=0.02,
            what=lambda: f"receiver condition ({len(self.received)} requests)",
        )


def main() -> None:
    """`python -m tests.support.webhook_receiver PORT DUMP_PORT SECRET`: a receiver in its own process.

    For benchmarks: its parsing then does not share the GIL with the server under test.
    GET / on DUMP_PORT returns what it recorded, as JSON lines.
    """
    import sys

    port, dump_port, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    receiver = WebhookReceiver(secret, port)

    class Dumping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            lines = [
                json.dumps(
                    {
                        "received_at": r.received_at,
                        "status": r.status,
                        "signed": r.signature_ok,
                        "body": r.json,
                    }
                )
                for r in receiver.received
            ]
            data = "\n".join(lines).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    receiver.start()
    print("ready", flush=True)
    ThreadingHTTPServer(("127.0.0.1", dump_port), Dumping).serve_forever()


if __name__ == "__main__":
    main()
