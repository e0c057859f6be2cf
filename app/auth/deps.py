"""ApiKeyDep for HTTP routes and `websocket_api_key` for /ws: Bearer header or ?token=.

Every bad key counts against its client address (FailedAuthThrottle): past 20 a second the address's bad
keys get 429 for a while. A valid key is accepted before the throttle is consulted.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from app.auth.keys import KeyVerifier
from app.auth.throttle import FailedAuthThrottle
from app.errors import ArgusError, Unauthorized
from app.runtime import runtime_of

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


class TooManyBadKeys(HTTPException):
    def __init__(self, wait_s: float) -> None:
        super().__init__(
            429,
            "too many requests with a bad API key from this address; retry later",
            headers={"Retry-After": str(math.ceil(wait_s))},
        )


def _verifier(conn: HTTPConnection) -> KeyVerifier:
    return runtime_of(conn).verifier


key_verifier = _verifier


def auth_throttle(conn: HTTPConnection) -> FailedAuthThrottle:
    state = conn.app.state
    throttle: FailedAuthThrottle | None = getattr(state, "auth_throttle", None)
    if throttle is None:
        throttle = state.auth_throttle = FailedAuthThrottle()
    return throttle


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


async def key_is_valid(conn: HTTPConnection, key: str | None) -> bool:
    """Verify `key`; a bad one (not a missing one) counts against the client's address."""
    if await _verifier(conn).verify(key):
        return True
    if key:
        auth_throttle(conn).failed(client_address(conn))
    return False


async def check_key(conn: HTTPConnection, key: str | None) -> None:
    """Raises 401 for a missing or bad key, 429 instead while the address is blocked for bad keys."""
    if await key_is_valid(conn, key):
        return
    wait = auth_throttle(conn).blocked_for(client_address(conn))
    if key and wait:
        raise TooManyBadKeys(wait)
    raise Unauthorized()


def bearer_key(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


async def require_api_key(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    key = creds.credentials if creds else None
    await check_key(request, key)
    assert key is not None
    return key


async def websocket_api_key(ws: WebSocket) -> str | None:
    """The key from `?token=` or `Authorization: Bearer`, if it is valid; None otherwise."""
    key = ws.query_params.get("token")
    header = ws.headers.get("authorization", "")
    if not key and header.lower().startswith("bearer "):
        key = header[7:].strip()
    return key if await key_is_valid(ws, key) else None


ApiKeyDep = Annotated[str, Depends(require_api_key)]


class NotAdmin(ArgusError):
    def __init__(self) -> None:
        super().__init__("this needs an admin key: one of ARGUS_API_KEYS (or use `argus apikey`)", 403)


async def require_admin_key(request: Request, key: ApiKeyDep) -> str:
    if not _verifier(request).is_admin(key):
        raise NotAdmin()
    return key


AdminKeyDep = Annotated[str, Depends(require_admin_key)]
"""A valid key that may also manage keys (403 for any other valid key)."""
