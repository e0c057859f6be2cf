"""Credentials never reach logs or responses: URL passwords, secret query values, Bearer tokens."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# `scheme://` and the rest of the URL up to whitespace or a quote. The userinfo runs to the LAST `@`: a
# password may hold an unencoded `/`, `#`, `?` or `@`, and masking a little too much is harmless.
_URL_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s\"'<>]+)")
# A query (or fragment) key that looks secret: password, pass, pwd, token, key, secret, auth, signature,
# as a part of the key (`api_key`, `X-Amz-Signature`, `access_token`), any case. Only after `?`, `&`,
# `;` or `#`, so prose is left alone. The value runs to the next `&`: an unencoded `#` is masked too.
SECRET_WORDS = ("pass", "pwd", "token", "key", "secret", "auth", "signature", "credential")
_KEY = rf"[^=&#;\s\"'<>]*(?:{'|'.join(SECRET_WORDS)})[^=&#;\s\"'<>]*|sig"
_QUERY_RE = re.compile(rf"(?P<name>[?&;#](?:{_KEY})=)[^&\s\"'<>]*", re.IGNORECASE)
_BEARER_RE = re.compile(r"(?P<name>\bbearer\s+)[^\s\"',;]+", re.IGNORECASE)
# A user name kept in front of a masked password: an ordinary login, not a token used as the user name.
_LOGIN_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # what could break a log line
# Cheap test before the full masking, run on every log record.
_HINT_RE = re.compile(rf"@|(?:{'|'.join(SECRET_WORDS)}|sig)[^=\s]*=|bearer\s", re.IGNORECASE)


def _mask_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:****" if colon and _LOGIN_RE.fullmatch(user) else "****"


def _mask_url_body(rest: str) -> str:
    """What follows `scheme://`: userinfo masked (`admin:****`, or `****` for a token as the user name or
    anything unusual), then every secret-looking query value."""
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        rest = f"{_mask_userinfo(userinfo)}@{rest}"
    return _QUERY_RE.sub(lambda m: f"{m['name']}****", rest)


def mask_url(url: str) -> str:
    """A URL fit to show: `rtsp://admin:secret@host/x?token=t` -> `rtsp://admin:****@host/x?token=****`.

    Every userinfo is masked whatever its form (a token as the user name, an unencoded `#` or `/` in the
    password), every secret-looking query value too, and control characters (a row stored before URLs
    were checked) are percent-encoded so they cannot forge a log line.
    """
    scheme, sep, rest = url.partition("://")
    masked = f"{scheme}{sep}{_mask_url_body(rest)}" if sep else _QUERY_RE.sub(r"\g<name>****", url)
    return _CONTROL_RE.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), masked)


def mask_text(text: str) -> str:
    """Mask every URL's userinfo and secret query values (as mask_url), any `?token=`-style value outside
    a URL, and `Bearer ****`, inside free text (error messages from FFmpeg, logs)."""
    text = _URL_RE.sub(lambda m: f"{m['scheme']}{_mask_url_body(m['rest'])}", text)
    text = _QUERY_RE.sub(lambda m: f"{m['name']}****", text)
    return _BEARER_RE.sub(lambda m: f"{m['name']}****", text)


def _may_hold_secret(text: str) -> bool:
    return _HINT_RE.search(text) is not None


def install_log_redaction() -> None:
    """Mask credentials in every log record, whoever logs it (FFmpeg errors, SQL parameters, tracebacks,
    uvicorn's request lines with `?token=<key>`).

    Done in the record factory, so it holds for every handler, including ones added later.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_argus_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_message(record)
        if record.exc_info and record.exc_info[1] is not None and _may_hold_secret(str(record.exc_info[1])):
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory._argus_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _redact_message(record: logging.LogRecord) -> None:
    """Mask each argument in place, keeping `args` a tuple (or mapping): formatters such as uvicorn's
    AccessFormatter unpack it, and collapsing it into the message made every access line with `?token=`
    a `--- Logging error --- TypeError` with a stack trace. Only a secret that spans the format string and
    its arguments collapses the record into its masked message."""
    hinted = _may_hold_secret(str(record.msg))
    if isinstance(record.args, tuple):
        masked = tuple(_masked_arg(a) for a in record.args)
        hinted = hinted or masked != record.args
        record.args = masked
    elif isinstance(record.args, Mapping):
        masked_map = {k: _masked_arg(v) for k, v in record.args.items()}
        hinted = hinted or masked_map != record.args
        record.args = masked_map
    if not hinted:
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it as it always did
        return
    if (text := mask_text(message)) != message:
        record.msg, record.args = text, ()


def _masked_arg(arg: object) -> object:
    """Numbers and other plain values stay as they are (`%d` still formats them)."""
    if arg is None or isinstance(arg, (int, float)):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    if not _may_hold_secret(text):
        return arg
    masked = mask_text(text)
    return arg if masked == text else masked
