"""BodyLimit: request bodies larger than a cap are refused with 413 before anything parses them.

A declared `Content-Length` over the cap is answered at once, the body never read; a body without one
(chunked) is counted as it streams and stopped at the cap. Without it a 29 MB JSON body was parsed for
seconds (+270 MB RSS) before its 422, and health stalled meanwhile.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the cap. An HTTPException, so FastAPI's body
    reader passes it on (it turns other errors into a 400) and the app answers it as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large_message(max_bytes), headers={"Connection": "close"})


def too_large_message(max_bytes: int) -> str:
    return f"request body is larger than {max_bytes} bytes (ARGUS_MAX_BODY_BYTES)"


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when it has none (or an unreadable one: the server
    refuses those itself)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:  # read outside FastAPI's handlers; answered here unless a response began
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"detail": too_large_message(self.max_bytes)}
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
