"""/api/health: public liveness with a DB ping, failing writes, and a summary of cameras and models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import APIRouter
from sqlalchemy import text

from app import __version__
from app.deps import RuntimeDep
from app.runtime import Runtime

router = APIRouter(tags=["health"])


class Reports(Protocol):
    def stats(self) -> Mapping[str, Any]: ...


class Writes(Protocol):
    @property
    def write_error(self) -> str | None: ...


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
    body["cameras"] = rt.manager.summary()
    body["models"] = rt.pool.summary()
    parts: dict[str, Reports | None] = {
        "event_logger": rt.event_logger,
        "ingest": rt.ingest,
        "alerts": rt.alerts,
        "recorder": rt.recorder,
        "clips": rt.clips,
        "mqtt": rt.mqtt,
        "event_stream": rt.event_stream,
        "forward": rt.forwarder,
        "restream": rt.restream,
    }
    for name, part in parts.items():
        if part is not None:
            body[name] = part.stats()
    body["storage"] = rt.retention.stats()
    body["bus"] = rt.bus.stats()
    return body


def write_problems(rt: Runtime) -> list[str]:
    """A database that answers SELECT 1 may still refuse every write (corrupt file, read-only, disk
    full): each writer reports the error of its last failed write until one succeeds again."""
    problems = []
    writers: list[tuple[Writes, str]] = [
        (rt.event_logger, "event writes"),
        (rt.ingest, "ingest"),
        (rt.alerts, "alert writes"),
        (rt.retention, "media storage"),
    ]
    for part, what in writers:
        if error := part.write_error:
            problems.append(f"{what} failing: {error}")
    return problems
