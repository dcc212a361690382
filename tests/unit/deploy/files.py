"""Shared helpers of the deploy/ tests: reading deploy/'s files and building, in a temporary
folder, the file system a container sees (its mounts), so that the gateway's own strict
configuration check runs on exactly the configuration a container gets.

Secrets are never shipped: the TLS and audit keys are made here by
``deploy/compose/make-secrets.sh`` (``gateway init``), as the compose stack makes them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent
GATEWAY = VENV_BIN / "gateway"


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def make_identities(out: Path, *names: str) -> Path:
    """Run make-secrets.sh for ``names`` into ``out`` (files owned by this test's user)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["GATEWAY_UID"] = str(os.getuid())
    script = DEPLOY / "compose" / "make-secrets.sh"
    subprocess.run(
        ["sh", str(script), str(out), *names], check=True, env=env, capture_output=True, timeout=60
    )
    return out


_ABSOLUTE = re.compile(r'"(/[^"]*)"')


def rooted(toml_text: str, root: Path) -> str:
    """The TOML text with every absolute path string moved under ``root`` (URLs are untouched:
    they do not start with '/')."""
    return _ABSOLUTE.sub(lambda m: json.dumps(f"{root}{m[1]}"), toml_text)


def under(root: Path, container_path: str) -> Path:
    return root / container_path.lstrip("/")


@dataclass
class Stage:
    """One stage of a Dockerfile."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        values = [arg for kw, arg in self.instructions if kw == keyword]
        return values[-1] if values else None

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT/CMD in JSON (exec) form; raises if absent or in shell form."""
        value = self.last(keyword)
        assert value is not None, f"stage {self.name} has no {keyword}"
        parsed = json.loads(value)
        assert isinstance(parsed, list)
        assert all(isinstance(x, str) for x in parsed)
        return parsed


def dockerfile_stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(the global ARG defaults, the stages in order) of a Dockerfile; continuation lines
    joined, comments dropped, ${ARG} in FROM resolved."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical: list[str] = []
    buffer = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = shlex.split(rest)
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, base))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages
