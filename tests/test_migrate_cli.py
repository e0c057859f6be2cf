"""`argus migrate` says what it did: from which revision to which, or that there was nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from app.migrate import alembic_config, upgrade
from tests.support.services import fresh_postgres_database
from tests.test_preflight import PASSWORD, serve

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def migrate_line(env: dict[str, str]) -> str:
    result = serve(env, command=("migrate",))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


def test_sqlite_empty_then_again_then_from_an_old_revision(tmp_path: Path) -> None:
    env = {"ARGUS_DATA_DIR": str(tmp_path / "data")}
    db = tmp_path / "data" / "argus.db"
    line = migrate_line(env)
    assert line.endswith(f"{db}: upgraded from empty (no tables) to {HEAD} (the latest revision)"), line
    line = migrate_line(env)
    assert line.endswith(f"already at the latest revision {HEAD}, nothing to do"), line
    old = tmp_path / "old"
    upgrade(f"sqlite+aiosqlite:///{old / 'argus.db'}", "0001")
    line = migrate_line({"ARGUS_DATA_DIR": str(old)})
    assert line.endswith(f"upgraded from 0001 to {HEAD} (the latest revision)"), line


@pytest.mark.postgres
def test_postgres_names_the_masked_url(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
        env = {"ARGUS_DATA_DIR": str(tmp_path), "ARGUS_DATABASE_URL": with_password}
        line = migrate_line(env)
        assert f"upgraded from empty (no tables) to {HEAD}" in line and ":***@" in line
        assert PASSWORD not in line
        assert "nothing to do" in migrate_line(env)
