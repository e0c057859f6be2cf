"""Every setting is documented: .env.example and the README table list exactly the Settings fields."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def env_keys(text: str) -> set[str]:
    return set(re.findall(r"^(ARGUS_[A-Z0-9_]+)=", text, re.M))


def test_env_example_lists_every_setting() -> None:
    expected = {f"ARGUS_{name.upper()}" for name in Settings.model_fields}
    assert env_keys((ROOT / ".env.example").read_text()) == expected


def test_readme_table_lists_every_setting() -> None:
    expected = {f"ARGUS_{name.upper()}" for name in Settings.model_fields}
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"^\| `(ARGUS_[A-Z0-9_]+)`", readme, re.M)) == expected


def test_env_example_defaults_load(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    loaded = Settings(_env_file=env)  # type: ignore[call-arg]
    assert loaded.database_url == Settings.model_fields["database_url"].default
    assert loaded.live_fps == 5.0
