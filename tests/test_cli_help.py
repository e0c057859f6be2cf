"""`argus <command> --help` explains every option (a bare `--host HOST` line tells a newcomer nothing)."""

from __future__ import annotations

import re

import pytest

from app.__main__ import main

COMMANDS = [
    ("serve",),
    ("demo",),
    ("migrate",),
    ("apikey", "create"),
    ("apikey", "revoke"),
    ("models", "install"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_option_has_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    options = text.split("options:", 1)[1]
    # each option line "  --name VALUE   what it does"; a help text that wraps continues on its own line
    entries = re.findall(r"^  (-{1,2}\S+(?: [A-Z_]+)?)(.*)$", options, re.M)
    assert entries, text
    for flag, rest in entries:
        wrapped = re.search(rf"^  {re.escape(flag)}\n {{10,}}\S", options, re.M)
        assert rest.strip() or wrapped, f"{' '.join(command)}: {flag} has no help\n{text}"


def test_serve_help_names_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "ARGUS_HOST" in out and "127.0.0.1" in out and "ARGUS_PORT" in out and "8000" in out
