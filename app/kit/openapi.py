"""The OpenAPI document says every status a route answers, each error with the one body Argus sends.

Added once for the whole app from what each operation has, not repeated per route: a security
requirement can answer 401 (and 429 when a client sends too many bad keys), a path parameter names
something that may not exist (404), a body can be unreadable (400) or too large (413), any input can be
invalid (422). A route's own description of a status is kept; every error gets the ErrorBody schema,
because every error goes through app.errors (FastAPI's validation array is not sent anywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

_REF = "#/components/schemas/{model}"
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
DESCRIPTIONS = {
    "400": "The body could not be read (JSON must be UTF-8)",
    "401": "Missing or invalid API key (`Authorization: Bearer <key>`)",
    "404": "No such resource",
    "413": "The request body is larger than `ARGUS_MAX_BODY_BYTES`",
    "422": "A parameter or the body is invalid; `field` names it",
    "429": "Too many requests with a bad API key from this address; wait and retry",
}


Responses = dict[int | str, dict[str, Any]]
"""The type of a route's `responses=` (status -> OpenAPI response object)."""

NAME_TAKEN: Responses = {409: {"description": "The name is taken (`field` is `name`)"}}
"""`responses=` of routes that create or rename something with a unique name."""


class ValidationIssue(BaseModel):
    """One problem found while validating a request (FastAPI's error item, its `input` masked and cut)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field's path")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error Argus answers (4xx and 5xx) has this body."""

    detail: str = Field(description="What is wrong, for people", examples=["camera 7 not found"])
    field: str | None = Field(None, description="The input it is about (dotted path), when there is one")
    errors: list[ValidationIssue] | None = Field(
        None, description="Request validation only: every problem found (`detail` is the first)"
    )


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` add the shared error responses (once; FastAPI caches the document)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated document with error responses added to every operation (changed in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    error = ErrorBody.model_json_schema(ref_template=_REF)
    components.update(error.pop("$defs", {}))
    components["ErrorBody"] = error
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in _METHODS:
                _add_errors(operation)
    return schema


def _add_errors(operation: dict[str, Any]) -> None:
    params = operation.get("parameters", [])
    body = "requestBody" in operation
    codes = []
    if operation.get("security"):
        codes += ["401", "429"]
    if any(p.get("in") == "path" for p in params):
        codes.append("404")
    if body:
        codes += ["400", "413"]
    if params or body:
        codes.append("422")
    responses = operation.setdefault("responses", {})
    for code in codes:
        responses.setdefault(code, {"description": DESCRIPTIONS[code]})
    for code, response in responses.items():
        if code[0] in "45":
            if response.get("description") in (None, "", "Validation Error"):
                response["description"] = DESCRIPTIONS.get(code, "Error")
            response["content"] = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
