"""MQTT for tests: the shared Mosquitto on 127.0.0.1:1883, a private `mosquitto` process that a test may
stop and restart, and a subscriber that records what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.support.server import free_port
from tests.support.services import IN_CI, reachable, require_service
from tests.support.waiting import eventually, wait_until

SHARED_HOST, SHARED_PORT = "127.0.0.1", 1883


def require_shared_broker() -> None:
    require_service("Mosquitto (MQTT)", SHARED_HOST, SHARED_PORT)


def unique_prefix() -> str:
    return f"argus_test_{uuid.uuid4().hex[:10]}"


class Mosquitto:
    """A private broker on a free port with persistence, so a restart keeps persistent sessions (like a
    production broker). `stop()` is a clean SIGTERM (state saved), `start()` brings it back on the port."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None, tls: bool = False) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            message = "the mosquitto binary is not installed (apt-get install mosquitto)"
            pytest.fail(f"{message}; CI=true") if IN_CI else pytest.skip(message)
        self.binary = binary
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {self.dir}/"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot read pytest's tmp dirs
        if users:
            passwd = self.dir / "passwd"
            passwd.touch()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.ca_file: Path | None = None
        if tls:  # a CA of its own and a server certificate for 127.0.0.1: `ca_file` is what clients trust
            self.ca_file = make_certificates(self.dir)
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.dir / 'server.crt'}",
                f"keyfile {self.dir / 'server.key'}",
            ]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        log = (self.dir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        proc = self._proc

        def up() -> bool:
            assert proc.poll() is None, (self.dir / "mosquitto.log").read_text()[-2000:]
            return reachable("127.0.0.1", self.port)

        wait_until(up, 10, interval=0.02, what="mosquitto start")
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def make_certificates(directory: Path) -> Path:
    """A throwaway CA and a server certificate for IP 127.0.0.1 signed by it (openssl); returns the CA."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=argus test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return directory / "ca.crt"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """Records every message on `topics`; reconnects on its own. With `session` (a client id), its
    subscription is persistent: the broker keeps QoS 1 messages for it while it is away."""

    def __init__(self, port: int, topics: list[str], session: str | None = None) -> None:
        self.port = port
        self.topics = topics
        self.session = session
        self.messages: list[Received] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.session or f"test-{uuid.uuid4().hex[:8]}",
                    clean_session=self.session is None,
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        self.messages.append(Received(str(message.topic), payload, message.retain))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> bytes | None:
        found = self.on(topic)
        return found[-1] if found else None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        await eventually(predicate, timeout, interval=0.02, what=f"MQTT: {what or 'condition'}")


@contextlib.asynccontextmanager
async def subscribed(port: int, *topics: str, session: str | None = None) -> AsyncIterator[Subscriber]:
    async with Subscriber(port, list(topics), session) as sub:
        yield sub


async def clear_retained(port: int, topics: list[str]) -> None:
    """Empty retained messages: the shared broker persists, so tests leave nothing behind."""
    if not topics:
        return
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)
