"""docs/operations.md: every `gateway ...` command line in its shell blocks and systemd unit is
accepted by the real CLI parser, so the document cannot drift from the commands."""

from __future__ import annotations

import re
import shlex

import pytest

import gateway
from tests.unit.deploy.files import REPO

DOC = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(sh|ini)\n(.*?)```", re.DOTALL)
PLACEHOLDER = re.compile(r"<[^>]+>")


def _command_lines() -> list[str]:
    """Shell lines (continuations joined) and ExecStart* values that run `gateway`."""
    lines: list[str] = []
    for kind, body in BLOCK.findall(DOC):
        for raw in body.replace("\\\n", " ").splitlines():
            line = raw.strip()
            if kind == "ini":
                if not line.startswith("ExecStart"):
                    continue
                line = line.split("=", 1)[1]
            program = line.split(" ", 1)[0]
            if program == "gateway" or program.endswith("/gateway"):
                lines.append(line)
    return lines


COMMANDS = _command_lines()


def test_the_document_has_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("line", COMMANDS)
def test_gateway_command_parses(line: str) -> None:
    """The line without its comment and program name parses; placeholders like <x> are
    replaced by a word."""
    text = PLACEHOLDER.sub("X", line.split(" # ", 1)[0].split("    #", 1)[0])
    argv = shlex.split(text)
    if argv[1:] == ["--version"]:
        with pytest.raises(SystemExit) as exited:
            gateway.build_parser().parse_args(argv[1:])
        assert exited.value.code == 0
        return
    args = gateway.build_parser().parse_args(argv[1:])
    assert callable(getattr(args, "handler", None)), line
