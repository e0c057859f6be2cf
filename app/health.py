"""/api/health: public liveness with a DB ping, failing writes, and a summary of cameras and models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from app import __version__
from app.deps import RuntimeDep
from app.lifespan import Runtime

router = APIRouter(tags=["health"])


@router.get("/api/health", summary="Liveness, database reachability and a runtime summary")
async def health(rt: RuntimeDep) -> dict[str, Any]:
    db_ok = True
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        db_ok = False
    reasons = [] if db_ok else ["database: not reachable"]
    reasons += write_problems(rt)
    status = "degraded" if reasons else "ok"
    body: dict[str, Any] = {"status": status, "version": __version__, "database": db_ok}
    if reasons:
        body["reasons"] = reasons
    manager = rt.parts.get("manager")
    if manager is not None:
        body["cameras"] = manager.summary()
    pool = rt.parts.get("pool")
    if pool is not None:
        body["models"] = pool.summary()
    for name in (
        "event_logger",
        "ingest",
        "alerts",
        "recorder",
        "clips",
        "mqtt",
        "event_stream",
        "forward",
        "restream",
    ):
        part = rt.parts.get(name)
        if part is not None:
            body[name] = part.stats()
    retention = rt.parts.get("retention")
    if retention is not None:
        body["storage"] = retention.stats()
    body["bus"] = rt.bus.stats()
    return body


def write_problems(rt: Runtime) -> list[str]:
    """A database that answers SELECT 1 may still refuse every write (corrupt file, read-only, disk
    full): each writer reports the error of its last failed write until one succeeds again."""
    problems = []
    for name, what in (
        ("event_logger", "event writes"),
        ("ingest", "ingest"),
        ("alerts", "alert writes"),
        ("retention", "media storage"),
    ):
        error = getattr(rt.parts.get(name), "write_error", None)
        if error:
            problems.append(f"{what} failing: {error}")
    return problems
