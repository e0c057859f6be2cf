"""The README runs as written: its API tour, in order, against a fresh `argus demo`, and its PostgreSQL lines.

The commands are taken from README.md itself and run by bash with the real curl. `curl -s` exits 0 on a
404 or 422, so here curl fails on any HTTP error; a failing command is run again for up to a minute (a
reader goes at reading pace: a new camera's first frame, a finished segment), and then fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port
from tests.support.services import fresh_postgres_database
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()

STEP_HELPERS = r"""
set -uo pipefail
curl() {  # the README's curl, but an HTTP error fails the command
  command curl --fail-with-body "$@"; local rc=$?
  if [[ $rc == 28 && " $* " == *" -m "* ]]; then return 0; fi  # `-m N`: a live stream shown for N s
  return $rc
}
step() {
  local deadline=$((SECONDS + 60))
  echo "+ $1" >&2
  until eval "$1"; do
    if ((SECONDS > deadline)); then echo "README command failed for a minute: $1" >&2; exit 1; fi
    sleep 2
  done
}
"""


def bash_block(after_heading: str, text: str = README) -> str:
    """The first ```bash block after a heading line of the README."""
    start = text.index(after_heading)
    match = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert match, f"no bash block after {after_heading!r}"
    return re.sub(r"^ {2}", "", match.group(1), flags=re.M)  # a block inside a list item is indented


def commands(block: str) -> list[str]:
    """Logical commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def tour_script(port: int) -> str:
    steps = []
    for command in commands(bash_block("## API tour")):
        if command.startswith("export KEY="):
            continue  # the test exports the key the demo printed
        steps.append(f"step {shlex.quote(command.replace('127.0.0.1:8000', f'127.0.0.1:{port}'))}")
    return STEP_HELPERS + "\n".join(steps) + "\n"


@contextmanager
def argus(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "argus"), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return {**env, **values}


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll every 0.5 s (a real demo: no hurry); a refused connection is "not yet"."""
    return wait_until(check, timeout, interval=0.5, what=what, ignore=(httpx.HTTPError,))


def test_the_api_tour_runs_in_order_on_a_fresh_demo(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # a fresh demo as `make demo` runs it; segments of 3 s (not 60) so a finished one exists at reading pace
    env = clean_env(ARGUS_DATA_DIR=str(tmp_path / "data"), ARGUS_PORT=str(port), ARGUS_SEGMENT_S="3")
    with argus(["demo"], env, tmp_path, tmp_path / "demo.log") as demo:
        wait_for(lambda: demo.poll() is None and httpx.get(f"{base}/api/health").is_success, 90, "demo up")
        key = (tmp_path / "data" / "demo_api_key").read_text().strip()
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)

        def clipped_event() -> bool:  # "once it has shown its first event"
            items = http.get("/api/events", params={"type": "anomaly", "limit": 1}).json()["items"]
            return bool(items) and items[0]["clip_url"] is not None

        wait_for(clipped_event, 120, "the demo's first anomaly event with a clip")
        demo_cameras = http.get("/api/cameras").json()

        script = tmp_path / "tour.sh"
        script.write_text(tour_script(port))
        run = subprocess.run(
            ["bash", str(script)], cwd=tmp_path, env={**env, "KEY": key}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, f"{run.stderr[-4000:]}\n{run.stdout[-2000:]}"

        # the tour acted on its own camera only, and deleted it
        assert http.get("/api/cameras").json() == demo_cameras
        (webhook,) = [w for w in http.get("/api/webhooks").json() if w["name"] == "pager"]
        (rule,) = [r for r in http.get("/api/alert-rules").json() if r["name"] == "anything high"]
        assert rule["webhook_ids"] == [webhook["id"]]
        assert (tmp_path / "normal.png").read_bytes()[:4] == b"\x89PNG"
        for name in ("now.jpg", "event.jpg"):
            assert (tmp_path / name).read_bytes()[:2] == b"\xff\xd8", name
        for name in ("event.mp4", "segment.mp4", "span.mp4"):
            assert b"ftyp" in (tmp_path / name).read_bytes()[:64], name
        assert demo.poll() is None


@pytest.mark.postgres
def test_the_postgresql_lines_migrate_and_serve_the_same_database(tmp_path: Path) -> None:
    block = bash_block("- PostgreSQL:")
    assert "export ARGUS_DATABASE_URL=" in block  # both commands must see it
    port = free_port()
    with fresh_postgres_database() as url:
        script = re.sub(r"ARGUS_DATABASE_URL=\S+", f"ARGUS_DATABASE_URL={url}", block)
        env = clean_env(ARGUS_DATA_DIR=str(tmp_path / "data"), ARGUS_PORT=str(port), ARGUS_API_KEYS="k" * 16)
        (tmp_path / "pg.sh").write_text("set -e\n" + script)
        with subprocess.Popen(
            ["bash", str(tmp_path / "pg.sh")], cwd=tmp_path, env=env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        ) as proc:  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                wait_for(lambda: proc.poll() is None and httpx.get(f"{base}/api/health").is_success, 90, "up")
                auth = {"Authorization": f"Bearer {'k' * 16}"}
                event = {"type": "door_open", "severity": "low"}
                r = httpx.post(f"{base}/api/events", json=event, headers=auth)
                assert r.status_code == 202, r.text
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                out = proc.communicate(timeout=30)[0].decode()
        # the server wrote to PostgreSQL (the migrated database), not to a SQLite file under DATA_DIR
        assert "upgraded from empty (no tables)" in out, out
        assert not (tmp_path / "data" / "argus.db").exists()
        assert _pg_count(url) == 1


def _pg_count(url: str) -> int:
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    async def count() -> int:
        conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events WHERE type = 'door_open'"))
        finally:
            await conn.close()

    return asyncio.run(count())
