"""422 bodies show refused input masked and cut, and never the value of a secret field."""

from __future__ import annotations

from app.kit.echo import CUT, HIDDEN, MAX_STRING, MAX_TOTAL, safe_errors, shown

URL = "rtsp://admin:S3cretPW@10.0.0.5:554/stream1"


def test_strings_are_masked_then_cut() -> None:
    assert shown(URL) == "rtsp://admin:****@10.0.0.5:554/stream1"
    assert shown("http://h/x?a=1&token=abc") == "http://h/x?a=1&token=****"
    long = shown("x" * 20_000_000)
    assert len(long) == MAX_STRING + len(CUT) and long.endswith(CUT)
    # masked before the cut: a password past the cut point cannot survive half-masked
    cut = shown("y" * (MAX_STRING - 20) + " " + URL)
    assert "S3cret" not in cut


def test_containers_hide_secret_keys_and_stay_small() -> None:
    body = {"url": URL, "secret": "hunter22", "api_key": "k", "vad": {"options": {"deep": {"deeper": 1}}}}
    out = shown(body)
    assert out["url"] == "rtsp://admin:****@10.0.0.5:554/stream1"
    assert out["secret"] == HIDDEN and out["api_key"] == HIDDEN
    assert out["vad"] == {"options": {"deep": CUT}}
    wide = shown({f"k{i}": "v" * 150 for i in range(1000)})
    assert len(wide) <= 21 and sum(len(v) for v in wide.values()) <= MAX_TOTAL + 100
    assert shown(list(range(100)))[-1] == f"{CUT} 80 more"


def test_secret_fields_lose_their_input_and_messages_are_masked() -> None:
    errors = [
        {"loc": ("body", "secret"), "msg": "too short", "input": "abc", "ctx": {"min_length": 8}},
        {"loc": ("body", "name"), "msg": f"bad {URL}", "input": {"url": URL}},
        {"loc": ("body", "url"), "msg": "x", "input": URL, "ctx": {"error": ValueError(URL)}},
    ]
    secret, missing, bad_url = safe_errors(errors)
    assert "input" not in secret and "ctx" not in secret and secret["msg"] == "too short"
    assert "S3cret" not in str(missing) and "S3cret" not in str(bad_url)
    assert errors[0]["input"] == "abc"  # the originals are left alone
