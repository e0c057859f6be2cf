"""The Runtime: one typed field per part the lifespan builds, and app.deps that loads no domain code."""

from __future__ import annotations

import subprocess
import sys

from fastapi import FastAPI

from app.runtime import Runtime


async def test_the_lifespan_fills_every_part(running_app: FastAPI) -> None:
    rt: Runtime = running_app.state.runtime
    names = rt.part_names()
    for name in ("pool", "clips", "event_logger", "alerts", "ingest", "hub", "manager", "recorder"):
        assert name in names
    assert rt.vlm is None and rt.mqtt is None and rt.forwarder is None  # not configured: not built
    assert "vlm" not in names
    # a deleted camera's files and restream go with it: each part that keeps them is asked
    hooks = rt.camera_deleted_hooks()
    assert rt.clips.camera_deleted in hooks and rt.restream.camera_deleted in hooks


def test_app_deps_loads_no_domain_code() -> None:
    code = "import sys, app.deps; print(' '.join(sorted(m for m in sys.modules if m.startswith('app.'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for domain in ("app.lifespan", "app.cameras", "app.inference", "app.live", "app.events", "app.alerts"):
        assert not any(m == domain or m.startswith(domain + ".") for m in loaded.split()), loaded
