"""URL and network settings are checked at start: a bad one fails naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vlm_base_url", "http://127.0.0.1:11434/v1\r\nX-Injected: yes"),
        ("vlm_base_url", "ftp://models.example/v1"),
        ("vlm_base_url", "127.0.0.1:11434"),
        ("public_url", "https://argus.example.com/\nforged"),
        ("public_url", "javascript://alert(1)"),
    ],
)
def test_a_bad_service_url_fails_naming_it(tmp_path: Path, field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(tmp_path, **{field: value})
    assert f"ARGUS_{field.upper()}" in str(info.value)


def test_good_service_urls_and_empty_ones_load(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, vlm_base_url="http://127.0.0.1:11434/v1", public_url="")
    assert settings.vlm_base_url == "http://127.0.0.1:11434/v1"


def test_deny_networks(tmp_path: Path) -> None:
    default = make_settings(tmp_path)
    assert [str(n) for n in default.webhook_denied_networks] == [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::/32",
    ]
    with pytest.raises(ValidationError, match="CIDR"):
        make_settings(tmp_path, webhook_deny_networks="10.0.0.0/8,not-a-net")


def test_media_dir_defaults_under_data_dir(tmp_path: Path) -> None:
    assert make_settings(tmp_path / "data").resolved_media_dir == (tmp_path / "data" / "media").resolve()
    assert make_settings(tmp_path, media_dir=tmp_path / "m").resolved_media_dir == (tmp_path / "m").resolve()
