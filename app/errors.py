"""ArgusError carries its HTTP status; one handler renders every error as {"detail": ..., "field": ...}.

Request validation errors have the same shape, `detail` and `field` naming the first problem, plus `errors`:
FastAPI's `[{loc, msg, type, input, ctx}]`, made JSON-safe (FastAPI echoes the offending input, and a NaN
there made the 422 itself fail as a 500). app.kit.openapi documents this one shape as ErrorBody.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from app.kit.echo import safe_errors, shown_message

log = logging.getLogger("argus.errors")

# The database is unreachable (stopped, partitioned, restarting): the request may succeed in a moment, so
# a 503 with Retry-After, never a 500 with a driver traceback (which can name the host). ConnectionError:
# asyncpg raises a refused connect unwrapped.
DATABASE_DOWN = (OperationalError, InterfaceError, DisconnectionError, ConnectionError)
RETRY_AFTER_S = 5


class ArgusError(Exception):
    def __init__(self, message: str, status_code: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.field = field

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.message}
        if self.field:
            body["field"] = self.field
        return body


class NotFound(ArgusError):
    def __init__(self, what: str, id_: Any) -> None:
        super().__init__(f"{what} {id_} not found", 404)


class Conflict(ArgusError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, 409, field)


class Invalid(ArgusError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, 422, field)


class Unauthorized(ArgusError):
    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, 401)


def install_error_handler(app: FastAPI) -> None:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ArgusError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        body = exc.body()
        body["detail"] = shown_message(body["detail"])  # messages may quote a URL or a long path segment
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def handle_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # inputs are echoed masked and cut, never whole or secret (issue 9: 20 MB and passwords came back)
        return JSONResponse(validation_body(json_safe(safe_errors(list(exc.errors())))), status_code=422)

    async def handle_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: database unavailable (%s)", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    app.add_exception_handler(ArgusError, handle)
    app.add_exception_handler(RequestValidationError, handle_validation)
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, handle_database_down)


def validation_body(errors: list[Any]) -> dict[str, Any]:
    """Request validation errors in the one error shape: `detail` and `field` from the first problem
    (like an ArgusError), every problem under `errors`."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    loc = [str(p) for p in first.get("loc") or ()]
    where = loc[1:] if len(loc) > 1 and loc[0] in _LOCATIONS else loc
    field = ".".join(where) or None
    msg = str(first.get("msg") or "invalid request")
    return {"detail": f"{field}: {msg}" if field else msg, "field": field, "errors": errors}


_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def json_safe(value: Any) -> Any:
    """Anything -> strict JSON: non-finite floats become "NaN"/"Infinity"/"-Infinity", exceptions and
    other objects their text; containers are walked."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return str(value)
    try:
        return json_safe(jsonable_encoder(value))
    except Exception:
        return str(value)
