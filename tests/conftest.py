"""Shared fixtures: settings on a temp SQLite, an app with its lifespan, a real server, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.support.server import running_server
from tests.support.services import fresh_postgres_database

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

pytest_plugins = ["tests.fixtures.rtsp", "tests.fixtures.database", "tests.fixtures.coco"]


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
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in-process, with the lifespan run around it (real DB, real runtime)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
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
