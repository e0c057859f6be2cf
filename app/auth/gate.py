"""BodyAuthGate: a request that carries a body shows a valid API key before its body is read.

FastAPI reads and parses the body before it runs dependencies, so a key checked as a dependency came
after the parse: a 29 MB body with no key was parsed for 2.9 s just to answer 401. Every route that takes
a body needs a key (only health, docs, the page and its static files are public, and none takes a body),
so the rule needs no route table: a body means a key, checked here from the headers alone.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.deps import bearer_key, check_key
from app.errors import ArgusError
from app.runtime import has_runtime


def has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


class BodyAuthGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if not has_runtime(conn):  # no lifespan (yet): the routes answer 503/401
            await self.app(scope, receive, send)
            return
        try:
            await check_key(conn, bearer_key(conn))
        except ArgusError as exc:
            headers = {"WWW-Authenticate": "Bearer", "Connection": "close"}
            await JSONResponse(exc.body(), exc.status_code, headers)(scope, receive, send)
            return
        except HTTPException as exc:
            headers = {**(exc.headers or {}), "Connection": "close"}
            await JSONResponse({"detail": exc.detail}, exc.status_code, headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)
