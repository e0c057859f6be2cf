"""Checks for every URL and local path a client or an operator hands Argus to connect to.

A URL is text that ends up in a request line (RTSP, HTTP) or a log line: a CR/LF there injects headers
or forges log lines, so control characters and whitespace are refused wherever a URL enters. Local
files as cameras are a demo/test feature and are confined to the media directory; every reason a file
is refused gives the same message, so the API never tells whether a path exists.

Pure apart from `media_file` (a stat under the media directory); no DNS here (see `netguard`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CameraKind = Literal["rtsp", "http", "file"]

URL_MAX = 2048
CAMERA_SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
WEBHOOK_SCHEMES = ("http", "https")
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".flv", ".mpg", ".mpeg", ".mjpeg",
     ".mjpg", ".h264", ".264", ".h265", ".265", ".hevc"}
)  # fmt: skip
MEDIA_UNUSABLE = (
    "not a stream URL (rtsp, rtsps, http, https) nor a readable video file inside ARGUS_MEDIA_DIR"
)
# Unicode categories refused in URLs: controls (C0, DEL, C1), format characters (zero-width, bidi
# overrides), and every kind of space and line/paragraph separator.
_REFUSED = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


class UrlError(ValueError):
    """A URL or media path Argus will not use; the message is safe to return to the client."""


def contains_control_chars(text: str) -> bool:
    """True when `text` holds a control, format or whitespace character (CR, LF, TAB, NUL, NBSP, ...)."""
    return any(unicodedata.category(c) in _REFUSED for c in text)


def check_url_text(url: str, field: str = "url", max_length: int = URL_MAX) -> str:
    """Length and characters only: the checks every URL field shares."""
    if not url:
        raise UrlError(f"{field} must not be empty")
    if len(url) > max_length:
        raise UrlError(f"{field} must be at most {max_length} characters")
    if contains_control_chars(url):
        raise UrlError(f"{field} must not contain control characters or whitespace")
    return url


def _split(url: str, field: str, strict_port: bool) -> SplitResult:
    try:
        parts = urlsplit(url)
        if strict_port:
            parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UrlError(f"{field} is not a valid URL") from None
    return parts


def check_network_url(
    url: str, schemes: Iterable[str], field: str = "url", *, strict_port: bool = True
) -> SplitResult:
    """An absolute URL with one of `schemes` and a host; its parts. `strict_port=False` lets a camera
    password hold an unencoded `#` or `/` (FFmpeg takes it; Python's parser sees a bad port)."""
    check_url_text(url, field)
    parts = _split(url, field, strict_port)
    allowed = tuple(schemes)
    if parts.scheme.lower() not in allowed:
        raise UrlError(f"{field} must be a {', '.join(s + '://' for s in allowed)} URL")
    if not parts.hostname:
        raise UrlError(f"{field} needs a host")
    return parts


def camera_url_kind(url: str) -> CameraKind:
    """Classify a camera URL without touching the filesystem: a stream (checked here) or a local file
    (to be checked with `media_file`). UrlError for anything else."""
    check_url_text(url)
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in CAMERA_SCHEMES:
        check_network_url(url, tuple(CAMERA_SCHEMES), strict_port=False)
        return CAMERA_SCHEMES[scheme]  # type: ignore[return-value]
    if scheme and scheme != "file":
        raise UrlError(f"unsupported scheme {scheme!r}: use rtsp, rtsps, http, https or a media file")
    return "file"


def _file_path(url: str) -> str:
    """`file:///x/a%20b.mp4` -> `/x/a b.mp4` (how a file name with spaces is written); a path as is."""
    if not url.lower().startswith("file:"):
        return url
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UrlError(MEDIA_UNUSABLE)
    path = unquote(parts.path)
    if "\x00" in path or any(unicodedata.category(c) == "Cc" for c in path):
        raise UrlError(MEDIA_UNUSABLE)
    return path


def media_file(path: str | Path, media_dir: Path) -> Path:
    """The resolved path of a regular, non-empty video file inside `media_dir` (relative paths are taken
    from there); UrlError(MEDIA_UNUSABLE) for every other case, whatever the reason: missing, outside
    (also through a symlink), a device, pipe or directory, unreadable, a name too long (ENAMETOOLONG)."""
    try:
        root = media_dir.expanduser().resolve(strict=True)
        full = (root / Path(path)).resolve(strict=True)
        if not full.is_relative_to(root) or full.suffix.lower() not in VIDEO_SUFFIXES:
            raise UrlError(MEDIA_UNUSABLE)
        info = full.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0 or not os.access(full, os.R_OK):
            raise UrlError(MEDIA_UNUSABLE)
    except (OSError, RuntimeError, ValueError):  # UrlError is a ValueError: re-raised as the same message
        raise UrlError(MEDIA_UNUSABLE) from None
    return full


def validate_camera_url(url: str, media_dir: Path) -> str:
    """The URL to store for a camera: an rtsp(s)/http(s) URL as given, or a media file's resolved path.

    UrlError (a ValueError with a client-safe message) for control characters, whitespace, an unknown
    scheme, a missing host, or any local path that is not a regular video file inside `media_dir`.
    """
    if camera_url_kind(url) != "file":
        return url
    return str(media_file(_file_path(url), media_dir))


def validate_webhook_url(url: str, deny: Sequence[IPNetwork] = (), field: str = "url") -> str:
    """An http(s) URL with a host, no control characters, at most URL_MAX long; with `deny`, a literal
    IP host (any spelling: `http://2852039166/` is 169.254.169.254) inside a denied network is refused.
    Hostnames are checked when delivering, against the address actually connected to."""
    parts = check_network_url(url, WEBHOOK_SCHEMES, field)
    ip = literal_ip(parts.hostname or "")
    if ip is not None and is_denied(ip, deny):
        raise UrlError(f"{field} points into a denied network (ARGUS_WEBHOOK_DENY_NETWORKS)")
    return url


def validate_service_url(url: str, field: str) -> str:
    """An operator's base URL setting (VLM endpoint, public URL): empty, or http(s) with a host."""
    if not url:
        return url
    check_network_url(url, WEBHOOK_SCHEMES, field)
    return url


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"169.254.0.0/16, fe80::/10"` -> networks; ValueError naming the bad entry."""
    out: list[IPNetwork] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network in CIDR form (e.g. 169.254.0.0/16)") from None
    return tuple(out)


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver accepts (`127.1`, `0x7f000001`,
    `2130706433`, `::ffff:127.0.0.1`, a zone id); None for a hostname."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or any(c not in "0123456789abcdefxABCDEFX." for c in host):
        return None
    try:  # inet_aton takes the legacy forms getaddrinfo() accepts: decimal, hex, octal, short dotted
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_denied(ip: IPAddress, deny: Sequence[IPNetwork]) -> bool:
    """True when `ip` (or the IPv4 address inside an IPv4-mapped/compatible IPv6 one) is in `deny`."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
    return any(c in net for c in candidates for net in deny if c.version == net.version)
