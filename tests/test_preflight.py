"""`argus serve` that cannot start says why in one line on stderr (the file or masked URL, and what to
do) and exits non-zero: no traceback. Each case runs the real command as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.migrate import upgrade
from tests.support.server import free_port
from tests.support.services import fresh_postgres_database

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "S3cretPW"


def serve(
    env: dict[str, str], prefix: list[str] | None = None, command: tuple[str, ...] = ("serve",)
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "app", *command]
    if command == ("serve",):
        cmd += ["--port", str(free_port())]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    full_env.update({"ARGUS_API_KEYS": "test-key-0123456789", **env})
    return subprocess.run(
        [*(prefix or []), *cmd], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=90
    )


def one_line_failure(result: subprocess.CompletedProcess[str], *must_name: str) -> str:
    assert result.returncode != 0, "argus serve started"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, no traceback
    line = lines[0]
    assert line.startswith(("argus: cannot start: ", "argus: migrate failed: "))
    for what in must_name:
        assert what in line, line
    assert PASSWORD not in line
    return line


def sqlite_env(data_dir: Path) -> dict[str, str]:
    return {"ARGUS_DATA_DIR": str(data_dir)}


def test_invalid_setting(tmp_path: Path) -> None:
    line = one_line_failure(
        serve({"ARGUS_DATA_DIR": str(tmp_path), "ARGUS_LIVE_FPS": "fast"}), "ARGUS_LIVE_FPS"
    )
    assert "not valid" in line


class TestSqlite:
    def test_garbage_file(self, tmp_path: Path) -> None:
        db = tmp_path / "data" / "argus.db"
        db.parent.mkdir()
        db.write_bytes(os.urandom(8192))
        line = one_line_failure(serve(sqlite_env(db.parent)), str(db))
        assert "not a usable Argus database" in line and "move it away" in line

    def test_migrate_on_a_garbage_file(self, tmp_path: Path) -> None:
        db = tmp_path / "argus.db"
        db.write_bytes(os.urandom(8192))
        result = serve({"ARGUS_DATA_DIR": str(tmp_path)}, command=("migrate",))
        assert "not a usable Argus database" in one_line_failure(result, str(db))

    def test_truncated_file(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        db = data_dir / "argus.db"
        upgrade(f"sqlite+aiosqlite:///{db}")
        db.write_bytes(db.read_bytes()[: 5 * 4096])  # cut short, as by a full disk or a bad copy
        line = one_line_failure(serve(sqlite_env(data_dir)), str(db))
        assert "restore it from a backup" in line

    def test_read_only_data_dir(self, tmp_path: Path) -> None:
        # a real read-only file system: the folder bind-mounted read-only in a private mount namespace
        if not shutil.which("unshare"):
            pytest.skip("unshare is not installed")
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {data_dir} {data_dir}"], capture_output=True
        )
        if probe.returncode != 0:
            pytest.skip("no privilege to make a read-only mount here")
        ro = f'mount --bind {data_dir} {data_dir} && mount -o remount,ro,bind {data_dir} && exec "$@"'
        result = serve(sqlite_env(data_dir), prefix=["unshare", "-m", "sh", "-c", ro, "sh"])
        line = one_line_failure(result, str(data_dir))
        assert "not writable" in line and "ARGUS_DATA_DIR" in line


class TestPostgres:
    def test_unreachable(self, tmp_path: Path) -> None:
        url = f"postgresql+asyncpg://argus:{PASSWORD}@127.0.0.1:{free_port()}/argus"
        result = serve({"ARGUS_DATA_DIR": str(tmp_path), "ARGUS_DATABASE_URL": url})
        line = one_line_failure(result, "postgresql+asyncpg://argus:***@127.0.0.1")
        assert "cannot reach PostgreSQL" in line

    @pytest.mark.postgres
    def test_schema_out_of_date(self, tmp_path: Path) -> None:
        with fresh_postgres_database() as url:
            upgrade(url, "0001")  # an older Argus left it here
            with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
            result = serve({"ARGUS_DATA_DIR": str(tmp_path), "ARGUS_DATABASE_URL": with_password})
        line = one_line_failure(result, "argus migrate", ":***@")
        assert "out of date" in line
