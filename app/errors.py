"""ArgusError carries its HTTP status; one handler renders every error as {"detail": ..., "field": ...}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    app.add_exception_handler(ArgusError, handle)
