"""The dashboard: `/` (the page) and `/static/*` (its scripts and styles), files from app/web.

Starlette's StaticFiles does the path work (no escape from app/web, a bad or over-long name is a 404).
app/web holds only the page's own files, never Python, so everything in it may be served. No auth: the
page holds no data; it asks for an API key and sends it with every API and WebSocket call.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parent / "web"
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate (ETag): an upgraded server's page is seen at once


class PageFiles(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


def install_dashboard(app: FastAPI) -> None:
    app.mount("/static", PageFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers=NO_CACHE)
