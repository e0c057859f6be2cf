"""/api/models: the pool's models with their runtime stats; register and unregister models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.deps import ApiKeyDep, RuntimeDep
from app.errors import Invalid
from app.inference.manifest import ManifestError, ModelSpec
from app.inference.pool import ResourcePool
from app.inference.schemas import ModelRead, ModelRegister

router = APIRouter(prefix="/api/models", tags=["models"])


def get_pool(rt: RuntimeDep) -> ResourcePool:
    return rt.parts["pool"]  # type: ignore[no-any-return]


PoolDep = Annotated[ResourcePool, Depends(get_pool)]


@router.get("", summary="Registered models: provider, calls, batch sizes, latency, cameras using them")
async def list_models(pool: PoolDep, _: ApiKeyDep) -> list[ModelRead]:
    return [ModelRead.model_validate(s) for s in pool.stats()]


@router.get("/{name}", summary="One model and its stats")
async def get_model(name: str, pool: PoolDep, _: ApiKeyDep) -> ModelRead:
    return ModelRead.model_validate(pool.stats(name)[0])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an ONNX model from a path on the server, with its manifest",
    responses={409: {"description": "the name is taken"}, 422: {"description": "bad manifest or model file"}},
)
async def register_model(body: ModelRegister, pool: PoolDep, _: ApiKeyDep) -> ModelRead:
    prefix = "" if body.manifest_path is not None else "manifest."
    try:
        if body.manifest_path is not None:
            spec = await asyncio.to_thread(ModelSpec.from_file, Path(body.manifest_path))
        else:
            spec = ModelSpec.parse(body.manifest)
            if not spec.path.is_absolute():
                raise ManifestError("give the model's absolute path on the server", "path")
        await pool.add(spec)
    except ManifestError as exc:
        field = exc.field if exc.field == "manifest_path" else f"{prefix}{exc.field or ''}".rstrip(".")
        raise Invalid(exc.message, field or None) from None
    return ModelRead.model_validate(pool.stats(spec.name)[0])


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unload and forget a model",
    responses={404: {"description": "unknown model"}, 409: {"description": "cameras still use it"}},
)
async def delete_model(name: str, pool: PoolDep, _: ApiKeyDep) -> Response:
    await pool.unregister(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
