"""Start-up checks before `argus serve` binds its port: each failure becomes one line that names the
folder, file or (masked) URL and says what to do, instead of a traceback from inside the lifespan."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url

from app.config import Settings
from app.kit.db import create_engine
from app.lifespan import SchemaOutOfDate, prepare_database

CONNECT_TIMEOUT_S = 15.0


class StartupError(Exception):
    """A reason Argus cannot start, already phrased for the operator (one line)."""


async def check(settings: Settings) -> None:
    """The data folder is writable and the database opens, is Argus's and is at the latest schema
    (an embedded SQLite is upgraded here, as the lifespan would)."""
    check_data_dir(settings.data_dir)
    await check_database(settings)


def check_data_dir(data_dir: Path) -> None:
    probe = data_dir / f".argus-write-test-{uuid.uuid4().hex}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"data directory {data_dir} is not writable ({exc.strerror or exc}): make it writable by the "
            "user running argus, or set ARGUS_DATA_DIR to a folder that is"
        ) from None


async def check_database(settings: Settings) -> None:
    try:
        engine = create_engine(settings.database_url)
    except OSError as exc:  # SQLite: its folder could not be created
        raise StartupError(describe_database_error(settings.database_url, exc)) from None
    except Exception as exc:  # an unparseable URL or a driver that is not installed
        raise StartupError(
            f"ARGUS_DATABASE_URL {masked(settings.database_url)} is not usable ({_one_line(exc)}): use "
            "sqlite+aiosqlite:///path/argus.db or postgresql+asyncpg://user:pass@host:5432/db"
        ) from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await prepare_database(settings, engine)
    except SchemaOutOfDate as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:
        raise StartupError(describe_database_error(settings.database_url, exc)) from None
    finally:
        await engine.dispose()


def describe_database_error(url: str, exc: BaseException) -> str:
    parsed = make_url(url)
    reason = _one_line(exc)
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_message(Path(parsed.database or ":memory:").expanduser(), reason)
    where = masked(url)
    if isinstance(exc, CommandError):
        return (
            f"the database at {where} has a schema this Argus does not know ({reason}): run the Argus "
            "version that wrote it, or restore a backup"
        )
    if isinstance(exc, TimeoutError):
        return f"PostgreSQL at {where} did not answer within {CONNECT_TIMEOUT_S:g} s: check the host and port"
    lowered = reason.lower()
    if "password" in lowered or "authentication" in lowered or "role" in lowered:
        return f"PostgreSQL at {where} refused the login ({reason}): fix ARGUS_DATABASE_URL"
    if "does not exist" in lowered:
        return f"PostgreSQL at {where}: {reason}: create the database, then run `argus migrate`"
    if isinstance(exc, OSError | socket.gaierror) or "connect" in lowered:
        return f"cannot reach PostgreSQL at {where} ({reason}): start it, or fix ARGUS_DATABASE_URL"
    return f"PostgreSQL at {where} cannot be used ({reason}): check the server log and ARGUS_DATABASE_URL"


def _sqlite_message(path: Path, reason: str) -> str:
    lowered = reason.lower()
    if "not a database" in lowered or "malformed" in lowered or "can't locate revision" in lowered:
        return (
            f"SQLite file {path} is not a usable Argus database ({reason}): restore it from a backup, "
            "or move it away to start with an empty database"
        )
    if "readonly" in lowered or "read-only" in lowered or not _writable(path):
        return (
            f"SQLite file {path} cannot be written ({reason}): make the file and its folder writable by "
            "the user running argus"
        )
    if "unable to open" in lowered:
        return f"cannot open SQLite file {path} ({reason}): check that its folder exists and is writable"
    return f"SQLite file {path} cannot be used ({reason}): restore it from a backup or move it away"


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK)


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _one_line(exc: BaseException) -> str:
    """The innermost driver message, first line only (SQL and parameters left out)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0]}"[:300] if lines else type(orig).__name__
