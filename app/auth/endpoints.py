"""/api/api-keys: list, create and revoke stored API keys, with an admin key (one of ARGUS_API_KEYS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.auth.deps import AdminKeyDep, key_verifier
from app.auth.repository import ApiKeyRepository
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.deps import SessionDep
from app.errors import NotFound
from app.kit.db import after_commit
from app.kit.schemas import DbId

router = APIRouter(prefix="/api/api-keys", tags=["api keys"])
_ADMIN: dict[int | str, dict[str, Any]] = {403: {"description": "A valid key that is not an admin key"}}


@router.get("", summary="List stored API keys (name, prefix, created, last used)", responses=_ADMIN)
async def list_keys(session: SessionDep, _: AdminKeyDep) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(row) for row in await ApiKeyRepository(session).list()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a key (the answer is the only time it is shown)",
    responses=_ADMIN,
)
async def create_key(body: ApiKeyCreate, session: SessionDep, _: AdminKeyDep) -> ApiKeyCreated:
    row, key = await ApiKeyRepository(session).add(body.name)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a key (it stays listed as revoked; revoking again changes nothing)",
    responses=_ADMIN,
)
async def revoke_key(key_id: DbId, request: Request, session: SessionDep, _: AdminKeyDep) -> Response:
    repo = ApiKeyRepository(session)
    row = await repo.get(key_id)
    if row is None:
        raise NotFound("API key", key_id)
    await repo.revoke(row)
    verifier = key_verifier(request)

    async def forget() -> None:  # after the commit, or the cached check could be re-cached as valid
        verifier.forget(key_id)

    after_commit(session, forget)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
