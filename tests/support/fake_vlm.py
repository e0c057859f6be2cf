"""A fake OpenAI-compatible chat-completions server on 127.0.0.1: real HTTP, scriptable answers.

Runs on the test's own event loop (asyncio.start_server, minimal HTTP/1.1, one request per connection).
Script it with `answer` (the assistant's text), `status` and `delay` (seconds before answering, to
provoke client timeouts), or `gate` (an asyncio.Event every answer waits for). Every request is kept
in `requests` (path, headers, parsed JSON body).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    def image_urls(self) -> list[str]:
        """Every image_url sent in the messages."""
        urls = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                urls += [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        return urls


@dataclass
class FakeVlm:
    answer: str = '{"description": "A person walks across the yard.", "severity": "medium"}'
    status: int = 200
    delay: float = 0.0
    gate: asyncio.Event | None = None
    requests: list[FakeRequest] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeVlm:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()  # let held answers finish so their connections close
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
            }
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = json.loads(raw) if raw else None
            self.requests.append(FakeRequest(method, path, headers, body))
            self.received.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)  # scripted slowness of the "model", not synchronisation
            status, payload = self._reply(method, path)
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reply(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}
        if self.status != 200:
            return self.status, {"error": {"message": "scripted failure"}}
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": "fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
            ],
        }


@contextlib.asynccontextmanager
async def fake_vlm(**script: Any) -> AsyncIterator[FakeVlm]:
    server = await FakeVlm(**script).start()
    try:
        yield server
    finally:
        await server.stop()
