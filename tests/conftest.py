"""Shared fixtures: settings on a temp SQLite, an app with its lifespan, a real server, PostgreSQL, the RTSP
server and the COCO detector. Helpers live in tests/support; fixtures that start real servers are here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.inference.install import install_known
from app.main import create_app
from app.migrate import upgrade
from tests.support.coco import COCO_MODEL, require_coco
from tests.support.rtsp import RtspServer, require_gstreamer
from tests.support.server import running_server
from tests.support.services import fresh_postgres_database, truncate_all_sync

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'argus.db'}",
        "api_keys": API_KEY,
        "log_level": "warning",
        "reconnect_max_delay": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on `settings` with its lifespan running; `running_app.state.runtime` is its Runtime."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app_client(running_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in-process, with the lifespan run around it (real DB, real runtime)."""
    transport = httpx.ASGITransport(app=running_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
        yield client


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 for WebSocket, browser and subprocess-free end-to-end tests."""
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    """The session's PostgreSQL database at head (migrating per test would cost seconds each)."""
    with ThreadPoolExecutor(1) as ex:  # Alembic's env runs its own event loop
        ex.submit(upgrade, postgres_url).result()
    return postgres_url


@pytest.fixture
def clean_postgres_url(migrated_postgres_url: str) -> str:
    """The migrated PostgreSQL database with every table emptied for this test."""
    truncate_all_sync(migrated_postgres_url)
    return migrated_postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on each supported database: a temp SQLite file, then the session's migrated PostgreSQL
    emptied for this test (skipped locally when PostgreSQL is down, a failure under CI=true)."""
    if request.param == "sqlite":
        return make_settings(tmp_path / "data")
    url: str = request.getfixturevalue("clean_postgres_url")
    return make_settings(tmp_path / "data", database_url=url)


@pytest.fixture
async def api_app(db_settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on db_settings with its lifespan running; `api_app.state.runtime` is its Runtime."""
    app = create_app(db_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api_client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Like app_client, once per database: API tests written on it run on SQLite and PostgreSQL."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
        yield client


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """Two mounts of 640x360 H.264 at 15 FPS with a moving ball (small, so tests stay cheap)."""
    require_gstreamer()
    with RtspServer(mounts=2) as server:
        yield server


@pytest.fixture
def rtsp_factory() -> Iterator[type[RtspServer]]:
    """For tests that need their own size, pattern or clip; every server made is stopped afterwards."""
    require_gstreamer()
    made: list[RtspServer] = []

    class Tracked(RtspServer):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def coco_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with the converted yolov3-tiny (about 0.7 s once; 35 MB). Tests must not write here:
    point ARGUS_MODELS_DIR at a copy (`coco_models_copy`) when the server will add its own manifests."""
    require_coco()
    models = tmp_path_factory.mktemp("coco-models")
    install_known(models, COCO_MODEL)
    return models


@pytest.fixture
def coco_models_copy(coco_models_dir: Path, tmp_path: Path) -> Path:
    """A fresh models dir whose yolov3-tiny files are hard links to the session's (no 35 MB copy)."""
    models = tmp_path / "models"
    models.mkdir()
    for f in coco_models_dir.iterdir():
        (models / f.name).hardlink_to(f)
    return models
