"""/api/health: public liveness with a DB ping and a summary of cameras and models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from app import __version__
from app.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/api/health", summary="Liveness, database reachability and a runtime summary")
async def health(rt: RuntimeDep) -> dict[str, Any]:
    db_ok = True
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        db_ok = False
    status = "ok" if db_ok else "degraded"
    body: dict[str, Any] = {"status": status, "version": __version__, "database": db_ok}
    manager = rt.parts.get("manager")
    if manager is not None:
        body["cameras"] = manager.summary()
    pool = rt.parts.get("pool")
    if pool is not None:
        body["models"] = pool.summary()
    for name in ("event_logger", "alerts"):
        part = rt.parts.get(name)
        if part is not None:
            body[name] = part.stats()
    body["bus"] = rt.bus.stats()
    return body
