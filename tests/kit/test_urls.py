"""URL and media-path checks: control characters, schemes, media confinement, denied networks."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from app.kit.urls import (
    MEDIA_UNUSABLE,
    UrlError,
    camera_url_kind,
    contains_control_chars,
    is_denied,
    literal_ip,
    parse_networks,
    validate_camera_url,
    validate_service_url,
    validate_webhook_url,
)

DENY = parse_networks("169.254.0.0/16,fe80::/10,fd00:ec2::/32")


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return folder


@pytest.mark.parametrize(
    "char", ["\r", "\n", "\t", " ", "\x00", "\x7f", "\x85", "\u00a0", "\u2028", "\u200b"]
)
def test_control_characters_and_whitespace_are_found(char: str) -> None:
    assert contains_control_chars(f"rtsp://h/a{char}b")
    with pytest.raises(UrlError, match="control characters or whitespace"):
        camera_url_kind(f"rtsp://h/a{char}b")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtsp://h/x", "rtsp"),
        ("RTSPS://h:322/x", "rtsp"),
        ("http://cam/mjpeg", "http"),
        ("rtsp://admin:pa#ss@h/x", "rtsp"),  # an unencoded # in a password: FFmpeg takes it
        ("clip.mp4", "file"),
        ("file:///m/clip.mp4", "file"),
    ],
)
def test_camera_url_kind(url: str, kind: str) -> None:
    assert camera_url_kind(url) == kind


@pytest.mark.parametrize("url", ["ftp://h/x", "rtsp://", "rtsp:///x", "javascript://x", "rtsp://[::1/x"])
def test_bad_stream_urls(url: str) -> None:
    with pytest.raises(UrlError):
        camera_url_kind(url)


class TestMediaFiles:
    def test_a_video_inside_the_media_dir_is_its_resolved_path(self, media: Path) -> None:
        assert validate_camera_url("clip.mp4", media) == str(media.resolve() / "clip.mp4")
        assert validate_camera_url(str(media / "clip.mp4"), media) == str(media.resolve() / "clip.mp4")
        assert validate_camera_url(f"file://{media}/clip.mp4", media) == str(media.resolve() / "clip.mp4")

    def test_stream_urls_pass_as_given(self, media: Path) -> None:
        assert validate_camera_url("rtsp://u:p@h/x?a=1", media) == "rtsp://u:p@h/x?a=1"

    def test_every_refusal_says_the_same(self, media: Path, tmp_path: Path) -> None:
        outside = tmp_path / "outside.mp4"
        outside.write_bytes(b"video")
        (media / "escape.mp4").symlink_to(outside)
        (media / "dir.mp4").mkdir()
        os.mkfifo(media / "pipe.mp4")
        (media / "empty.mp4").touch()
        (media / "notes.txt").write_text("x")
        cases = [
            "/etc/passwd",
            "/etc/shadow",
            "/proc/self/environ",
            "/dev/zero",
            str(outside),
            "../outside.mp4",
            "escape.mp4",
            "dir.mp4",
            "pipe.mp4",
            "empty.mp4",
            "notes.txt",
            "missing.mp4",
            "/" + "a" * 300 + ".mp4",  # ENAMETOOLONG
            "a" * 300 + ".mp4",
            "file://otherhost/clip.mp4",
            "file:///m/a%0Ab.mp4",
        ]
        for url in cases:
            with pytest.raises(UrlError) as info:
                validate_camera_url(url, media)
            assert str(info.value) == MEDIA_UNUSABLE, url[:80]

    def test_a_missing_media_dir_refuses_everything(self, tmp_path: Path) -> None:
        with pytest.raises(UrlError, match="ARGUS_MEDIA_DIR"):
            validate_camera_url("clip.mp4", tmp_path / "nowhere")


class TestWebhookUrls:
    @pytest.mark.parametrize(
        "url",
        [
            "ftp://h/x",
            "http://",
            "http:///x",
            "http://h:99999/",
            "http://h/a\r\nX-Injected: yes",
            "http://h/" + "a" * 2100,
            "file:///etc/passwd",
        ],
    )
    def test_invalid(self, url: str) -> None:
        with pytest.raises(UrlError):
            validate_webhook_url(url)

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data",
            "http://2852039166/",  # 169.254.169.254 as one integer
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1%25eth0]/",
        ],
    )
    def test_denied_literal_hosts(self, url: str) -> None:
        with pytest.raises(UrlError, match="denied network"):
            validate_webhook_url(url, DENY)

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8123/api/webhook/x", "http://192.168.1.5/", "https://hooks.example.com/a"]
    )
    def test_loopback_lan_and_names_are_allowed_by_default(self, url: str) -> None:
        assert validate_webhook_url(url, DENY) == url


def test_literal_ip_spellings() -> None:
    assert literal_ip("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_ip("127.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_ip("[::1]") == ipaddress.ip_address("::1")
    assert literal_ip("example.com") is None and literal_ip("deadbeef") is None


def test_ipv4_mapped_addresses_are_denied_like_their_ipv4() -> None:
    assert is_denied(ipaddress.ip_address("::ffff:169.254.1.1"), DENY)
    assert not is_denied(ipaddress.ip_address("::ffff:10.0.0.1"), DENY)


def test_parse_networks_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks("127.0.0.0/8, 10.0.0.0/33")


def test_service_urls() -> None:
    assert validate_service_url("", "ARGUS_VLM_BASE_URL") == ""
    assert validate_service_url("http://127.0.0.1:11434/v1", "ARGUS_VLM_BASE_URL")
    with pytest.raises(UrlError, match="ARGUS_VLM_BASE_URL"):
        validate_service_url("http://h/v1\r\nX: y", "ARGUS_VLM_BASE_URL")
