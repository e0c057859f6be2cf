"""An unreachable database answers 503 with Retry-After (not a 500 naming the host) until it returns."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.main import create_app
from tests.conftest import AUTH, make_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


async def test_an_unreachable_database_is_a_503_until_it_returns(
    clean_postgres_url: str, tmp_path: Path
) -> None:
    # given a server whose PostgreSQL sits behind a proxy we can cut
    proxy = await TcpProxy.start(make_url(clean_postgres_url).port or 5432)
    url = make_url(clean_postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    app = create_app(make_settings(tmp_path / "data", database_url=url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
            assert (await client.get("/api/cameras")).status_code == 200

            # when the database becomes unreachable
            await proxy.cut()
            r = await client.get("/api/cameras")

            # then the client is told to retry, and nothing names the database's address
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            assert "database" in r.json()["detail"]
            assert str(proxy.port) not in r.text and "127.0.0.1" not in r.text

            # and once it returns, requests succeed again without a restart
            await proxy.restore()
            assert (await client.get("/api/cameras")).status_code == 200
        await proxy.cut()  # the lifespan's last writes are done; stop the listener
