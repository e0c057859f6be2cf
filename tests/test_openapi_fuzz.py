"""Schemathesis over the whole API: a real server on a temp SQLite, every operation of /openapi.json
generated from its schema (explicit examples, coverage of the boundaries, random fuzzing, stateful
sequences over links schemathesis infers), checked for server errors, undocumented statuses and responses
that break their documented schema. Zero failures allowed.

The server is `argus serve` in its own process (as deployed): its tracebacks land in a log shown with any
failure, and CPython 3.11's `ast` is not thread-safe (schemathesis and the server compiling at once
raised "AST constructor recursion depth mismatch" when they shared a process).

Network: the server listens on 127.0.0.1, and fuzzed camera and webhook URLs would make it connect
anywhere (a camera opens its URL at once, a webhook `/test` posts to it, alert deliveries follow). So
every `url` in a request body whose host is not 127.0.0.1 is replaced by one on a closed loopback port
(9) before the request is sent: the server still validates, stores and connects as usual, only never off
the machine. Paths without a host (local files) are left alone; the server refuses those outside its media
directory.

Bounded for CI by time: one pass of every phase takes about 15 s here (`ARGUS_FUZZ_EXAMPLES`, default
25, examples per operation); schemathesis then repeats the fuzzing and stateful phases with new data until
`ARGUS_FUZZ_MAX_S` (default 150) is spent. `ARGUS_FUZZ_SEED` picks another run (default fixed; every
failure is reported with a curl line that reproduces it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from tests.conftest import API_KEY
from tests.support.server import free_port, wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")
LOOPBACK = "127.0.0.1"
CLOSED_PORT = 9  # discard: nothing listens here, so connections fail at once
STREAMING_PATHS = ["/api/events/stream"]


def loopback_url(url: str) -> str:
    """`url` if it stays on 127.0.0.1 (or names no host at all), else the same scheme on a closed
    loopback port. Strict on purpose: userinfo, odd ports or parse errors are replaced too."""
    try:
        parts = urlsplit(url.strip())
        netloc = parts.netloc
        host, port = parts.hostname, parts.port
    except ValueError:
        return f"rtsp://{LOOPBACK}:{CLOSED_PORT}/fuzz"
    if not netloc and "//" not in url:
        return url  # a local path (or no URL at all): no network
    if host == LOOPBACK and netloc in (LOOPBACK, f"{LOOPBACK}:{port}"):
        return url
    scheme = "http" if parts.scheme.lower().startswith("http") else "rtsp"
    return f"{scheme}://{LOOPBACK}:{CLOSED_PORT}/fuzz"


def keep_on_loopback(value: Any) -> Any:
    """The body with every string under a `url` key passed through loopback_url, at any depth."""
    if isinstance(value, dict):
        return {
            k: loopback_url(v) if k == "url" and isinstance(v, str) else keep_on_loopback(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [keep_on_loopback(v) for v in value]
    return value


def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, (dict, list)):
        case.body = keep_on_loopback(case.body)


SERVED_HOSTS: list[str | None] = []  # hosts of the `url`s the server answered with (None: a local file)


def after_call(context: Any, case: Any, response: Any) -> None:
    """Collects what the server stored, to check that the rewriting above held."""
    json_body = "json" in response.headers.get("content-type", [""])[0] and response.content  # not HEAD
    if 200 <= response.status_code < 300 and json_body:
        body = response.json()
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                SERVED_HOSTS.append(urlsplit(item["url"]).hostname)


@pytest.fixture
def loopback_only() -> Iterator[list[str | None]]:
    """Installs the hooks (global in schemathesis 4: undone afterwards); yields the served hosts."""
    SERVED_HOSTS.clear()
    schemathesis.hook(before_call)
    schemathesis.hook(after_call)
    try:
        yield SERVED_HOSTS
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
        GLOBAL_HOOK_DISPATCHER.unregister(after_call)


@dataclass
class Outcome:
    cases: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)  # name -> [cases, seconds]

    def summary(self) -> str:
        parts = ", ".join(f"{n} {int(c)} in {s:.0f} s" for n, (c, s) in self.phases.items() if c)
        return f"schemathesis: {self.cases} cases in {self.seconds:.1f} s ({parts}; {self.stop_reason})"

    def report(self) -> str:
        lines = [f"{len(self.failures)} distinct failures, {len(self.errors)} errors in {self.cases} cases:"]
        lines += [
            f"- {op} [{check}] {title}\n  {detail}" for (op, check, title), detail in self.failures.items()
        ]
        return "\n".join(lines + self.errors)


def config(api_key: str) -> SchemathesisConfig:
    checks: dict[str, Any] = {"enabled": False} | {name: {"enabled": True} for name in CHECKS}
    return SchemathesisConfig.from_dict(
        {
            "seed": int(os.environ.get("ARGUS_FUZZ_SEED", "20261130")),
            "max-time": int(os.environ.get("ARGUS_FUZZ_MAX_S", "150")),
            "headers": {"Authorization": f"Bearer {api_key}"},
            "checks": checks,
            "workers": 1,
            "request-timeout": 30,
            "generation": {
                "max-examples": int(os.environ.get("ARGUS_FUZZ_EXAMPLES", "25")),
                "database": "none",  # no .hypothesis folder in the tree
            },
        }
    )


def run_schemathesis(base_url: str) -> Outcome:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config(API_KEY))
    # An SSE stream never ends (every request would run to the 30-s timeout); tests/events/test_stream.py
    # covers its statuses and messages over real HTTP instead.
    schema = schema.exclude(path=STREAMING_PATHS)
    outcome = Outcome()
    started = time.monotonic()
    for event in engine_for(schema).execute():
        if isinstance(event, events.PhaseStarted):
            outcome.phases.setdefault(str(event.phase.name), [0, 0.0])[1] -= time.monotonic()
        elif isinstance(event, events.PhaseFinished):
            outcome.phases.setdefault(str(event.phase.name), [0, 0.0])[1] += time.monotonic()
        elif isinstance(event, events.ScenarioFinished):
            outcome.cases += len(event.recorder.cases)
            outcome.phases.setdefault(str(event.phase), [0, 0.0])[0] += len(event.recorder.cases)
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        key = (event.recorder.label, node.name, failure.title)
                        sample = node.failure_info.code_sample
                        outcome.failures.setdefault(key, f"{failure.message[:600]}\n  {sample[:800]}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            outcome.errors.append(f"error: {getattr(event, 'info', event)}")
        elif isinstance(event, events.EngineFinished):
            outcome.stop_reason = str(event.stop_reason)
    outcome.seconds = time.monotonic() - started
    return outcome


def test_loopback_url_keeps_requests_on_this_machine() -> None:
    assert loopback_url("rtsp://127.0.0.1:8554/cam") == "rtsp://127.0.0.1:8554/cam"
    assert loopback_url("/srv/media/clip.mp4") == "/srv/media/clip.mp4"
    for url in [
        "rtsp://10.0.0.5/a",
        "http://127.0.0.1@evil.example/",
        "https://[::1]/",
        "rtsp://127.0.0.1.nip.io/",
    ]:
        assert urlsplit(loopback_url(url)).netloc == f"127.0.0.1:{CLOSED_PORT}", url
    body = keep_on_loopback({"url": "http://169.254.169.254/", "vad": {"url": "rtsp://x/"}, "name": "n"})
    assert body == {"url": "http://127.0.0.1:9/fuzz", "vad": {"url": "rtsp://127.0.0.1:9/fuzz"}, "name": "n"}


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def argus_serve(data_dir: Path, log: Path) -> Iterator[str]:
    """`argus serve` on a free loopback port with a temp SQLite and one API key; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "ARGUS_DATA_DIR": str(data_dir),
        "ARGUS_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'argus.db'}",
        "ARGUS_API_KEYS": API_KEY,
        "ARGUS_LOG_LEVEL": "warning",
        "ARGUS_RECONNECT_MAX_DELAY": "2",
    }
    command = [sys.executable, "-m", "app", "serve", "--host", LOOPBACK, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_healthy(proc, url, log.read_text)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_errors(log: Path) -> str:
    """The server's tracebacks and errors, for a failure message (the end of them)."""
    lines = log.read_text(errors="replace").splitlines()
    keep = [ln for ln in lines if "cannot open" not in ln and "Connection to tcp://" not in ln]
    text = "\n".join(keep)
    start = text.find("Traceback")
    return text[start:][-6000:] if start >= 0 else text[-2000:]


def test_the_whole_api_conforms_to_its_openapi_document(
    tmp_path: Path, loopback_only: list[str | None]
) -> None:
    log = tmp_path / "argus.log"
    with argus_serve(tmp_path / "data", log) as base_url:
        outcome = run_schemathesis(base_url)
    print(outcome.summary())
    if outcome.failures or outcome.errors:
        print(f"server log ({log}):\n{server_errors(log)}")
    assert loopback_only, "no camera or webhook was created: the run did not get far"
    assert set(loopback_only) <= {LOOPBACK, None}, f"a fuzzed URL left the machine: {set(loopback_only)}"
    for phase in ("examples", "coverage", "fuzzing", "stateful"):  # each ran, at least once
        assert outcome.phases.get(phase, [0])[0] > 0, (phase, outcome.summary())
    assert not outcome.failures and not outcome.errors, outcome.report()
