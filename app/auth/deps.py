"""ApiKeyDep for HTTP routes and `websocket_api_key` for /ws: Bearer header or ?token=."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.keys import KeyVerifier
from app.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def _verifier(conn: Request | WebSocket) -> KeyVerifier:
    return conn.app.state.verifier  # type: ignore[no-any-return]


async def require_api_key(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    key = creds.credentials if creds else None
    if not await _verifier(request).verify(key):
        raise Unauthorized()
    assert key is not None
    return key


async def websocket_api_key(ws: WebSocket) -> str | None:
    """The key from `?token=` or `Authorization: Bearer`, if it is valid; None otherwise."""
    key = ws.query_params.get("token")
    header = ws.headers.get("authorization", "")
    if not key and header.lower().startswith("bearer "):
        key = header[7:].strip()
    return key if await _verifier(ws).verify(key) else None


ApiKeyDep = Annotated[str, Depends(require_api_key)]
