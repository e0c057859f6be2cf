"""Every setting is documented: .env.example and the README table list exactly the Settings fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    assert loaded.database_url == f"sqlite+aiosqlite:///{loaded.data_dir / 'argus.db'}"
    assert loaded.live_fps == 5.0


class TestDatabaseUrlFollowsDataDir:
    def test_only_data_dir_set_puts_the_sqlite_file_inside_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ARGUS_DATABASE_URL", raising=False)
        monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path / "volume"))
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'volume' / 'argus.db'}"

    def test_an_explicit_url_is_kept(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path / "volume"))
        monkeypatch.setenv("ARGUS_DATABASE_URL", "postgresql+asyncpg://argus@db:5432/argus")
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.database_url == "postgresql+asyncpg://argus@db:5432/argus"


class TestEmptyMeansUnset:
    """.env.example writes every key, many empty: an empty value is the documented default."""

    def test_a_copied_env_example_gives_every_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in Settings.model_fields:
            monkeypatch.delenv(f"ARGUS_{name.upper()}", raising=False)
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
        loaded = Settings()  # reads ./.env, as .env.example's comment tells
        defaults = Settings(_env_file=None)  # type: ignore[call-arg]
        assert loaded.model_dump() == defaults.model_dump()
        assert loaded.resolved_models_dir == tmp_path / "data" / "models"
        assert loaded.resolved_media_dir == tmp_path / "data" / "media"
        assert loaded.models_dir is None and loaded.media_dir is None and loaded.mqtt_ca_file is None

    def test_an_empty_variable_is_the_default(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        for name in ("data_dir", "models_dir", "media_dir", "log_level", "port", "webhook_deny_networks"):
            monkeypatch.setenv(f"ARGUS_{name.upper()}", " ")
        loaded = Settings(_env_file=None)  # type: ignore[call-arg]
        assert loaded.data_dir == tmp_path / "data"
        assert loaded.resolved_models_dir == tmp_path / "data" / "models"
        assert (loaded.log_level, loaded.port) == ("info", 8000)
        assert loaded.webhook_deny_networks == Settings.model_fields["webhook_deny_networks"].default

    def test_an_empty_discovery_prefix_still_turns_discovery_off(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ARGUS_MQTT_DISCOVERY_PREFIX", "")
        assert Settings(_env_file=None).mqtt_discovery_prefix == ""  # type: ignore[call-arg]
