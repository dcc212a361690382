"""deploy/Dockerfile: pinned bases, a non-root final stage without build tools that holds what
the gateway reads at run time, and an ENTRYPOINT + CMD and HEALTHCHECK that really work with
this checkout's ``gateway`` (run outside a container: no container engine here)."""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway
from tests.unit.deploy.files import DEPLOY, GATEWAY, REPO, Stage, dockerfile_stages

ARGS, STAGES = dockerfile_stages(DEPLOY / "Dockerfile")
FINAL = STAGES[-1]
STAGE_NAMES = {s.name for s in STAGES}
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+(?:-[a-z0-9.-]+)?(?:@sha256:[0-9a-f]{64})?$")


def _stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "clang", "apt-get", "apk", "pip install")


def test_every_base_image_is_pinned_to_an_exact_version() -> None:
    """FROM names an earlier stage or an image with an exact x.y.z tag (optionally a digest)."""
    for stage in STAGES:
        if stage.base in STAGE_NAMES:
            continue
        assert PINNED.match(stage.base), f"stage {stage.name}: {stage.base} is not pinned"
        assert "latest" not in stage.base


def test_the_final_stage_is_the_gateway_runtime_as_a_fixed_non_root_uid() -> None:
    """The default build target runs as a numeric uid other than 0 (Kubernetes' runAsNonRoot
    can only check a numeric one), the uid the k8s manifests run as."""
    assert FINAL.name == "runtime"
    user = FINAL.last("USER")
    assert user is not None
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    deployment = (DEPLOY / "k8s" / "statefulset.yaml").read_text(encoding="utf-8")
    assert f"runAsUser: {uid}" in deployment


def test_no_build_tools_or_package_installs_in_the_final_stage() -> None:
    """The final stage copies a ready venv: no compiler, package manager or pip run there, and
    nothing from the node stage."""
    for keyword, arg in FINAL.instructions:
        if keyword == "RUN":
            for tool in BUILD_TOOLS:
                assert tool not in arg, f"final stage runs {tool}: {arg}"
        if keyword == "COPY" and arg.startswith("--from="):
            source = arg.split()[0].removeprefix("--from=")
            assert source == "builder", f"final stage copies from {source}"


def _copy_sources(stage: Stage) -> Iterator[str]:
    for keyword, arg in stage.instructions:
        if keyword == "COPY" and not arg.startswith("--from="):
            yield from arg.split()[:-1]


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
            ignored = not negated
    return ignored


def test_the_image_holds_every_package_and_the_files_read_at_run_time() -> None:
    """Each COPY source exists and is not excluded by .dockerignore; the builder copies every
    package pyproject installs, the gateway module, and contracts/artifacts.json, which
    adapters/gateway_abi.py reads beside the code (hence /app and an editable install)."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [src for stage in STAGES for src in _copy_sources(stage)]
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    builder = _stage("builder")
    copied = set(_copy_sources(builder))
    for package in packages:
        assert package in copied, f"package {package} is not copied into the image"
    modules = pyproject["tool"]["setuptools"]["py-modules"]
    for needed in (
        "pyproject.toml",
        "README.md",
        "contracts/artifacts.json",
        *(f"{m}.py" for m in modules),
    ):
        assert needed in copied, f"{needed} is not copied into the image"
    assert re.search(r"pip install (-c \S+ )?-e /app ", builder.last("RUN") or "")


def test_entrypoint_and_cmd_are_the_real_gateway_command_line() -> None:
    """ENTRYPOINT is the console script pyproject installs; the gateway's own parser accepts
    CMD's every flag and picks `gateway run` with the config path compose and k8s mount."""
    entrypoint, cmd = FINAL.exec_form("ENTRYPOINT"), FINAL.exec_form("CMD")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert entrypoint == ["gateway"]
    assert "gateway" in pyproject["project"]["scripts"]
    args = gateway.build_parser().parse_args(cmd)
    assert args.handler.__name__ == "cmd_run"
    assert str(args.config) == "/etc/gateway/gateway.toml"
    assert args.log_format == "json"
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert f":{args.config}:ro" in compose


def test_the_cmd_flags_run_with_this_checkouts_gateway() -> None:
    """`gateway run --help` exits 0 and lists every flag CMD passes."""
    cmd = FINAL.exec_form("CMD")
    done = subprocess.run(
        [str(GATEWAY), cmd[0], "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for flag in (a for a in cmd[1:] if a.startswith("--")):
        assert flag in done.stdout


def test_the_devnet_stage_runs_the_devnet_command_with_the_pinned_anvil() -> None:
    """The devnet image's ENTRYPOINT is `gateway devnet`, with Anvil from the npm package
    that package.json pins (copied from node_modules, not downloaded)."""
    devnet = _stage("devnet")
    assert devnet.exec_form("ENTRYPOINT") == ["gateway", "devnet"]
    anvil = _stage("anvil")
    assert "npm ci" in (anvil.last("RUN") or "")
    package = json.loads((REPO / "package.json").read_text(encoding="utf-8"))
    assert "@foundry-rs/anvil" in package["dependencies"]
    assert any(
        "GATEWAY_ANVIL=/usr/local/bin/anvil" in arg
        for kw, arg in devnet.instructions
        if kw == "ENV"
    )


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/livez" else 404)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_asks_livez_on_the_metrics_port(
    status: int, healthy: bool, tmp_path: Path
) -> None:
    """The HEALTHCHECK's command, run as written against a local /livez answering `status`,
    exits 0 only for 200; its port is the one [metrics] listen uses in compose and k8s."""
    healthcheck = FINAL.last("HEALTHCHECK") or ""
    argv = json.loads(healthcheck.split(" CMD ", 1)[1])
    port_text = re.search(r"127\.0\.0\.1:(\d+)/livez", argv[-1])
    assert port_text is not None
    port = int(port_text[1])
    for config in (
        DEPLOY / "compose" / "gw-a" / "gateway.toml",
        DEPLOY / "compose" / "gw-b" / "gateway.toml",
    ):
        assert tomllib.loads(config.read_text(encoding="utf-8"))["metrics"]["listen"].endswith(
            f":{port}"
        )
    handler = type("Probe", (_Probe,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = argv[-1].replace(f"127.0.0.1:{port}/", f"127.0.0.1:{server.server_port}/")
        done = subprocess.run(
            [sys.executable if argv[0] == "python" else argv[0], "-c", code],
            capture_output=True,
            timeout=30,
            check=False,
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) is healthy


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*(\S+)", text)
        if match:
            out[_normalized(match[1])] = match[2]
    return out


def test_constraints_pin_every_image_dependency_as_pyproject_does() -> None:
    """deploy/constraints.txt (pip install -c in the builder) names every runtime and devnet
    dependency with the version pyproject.toml pins, so the image gets the tested versions."""
    constraints = _pins((DEPLOY / "constraints.txt").read_text(encoding="utf-8").splitlines())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [
        *pyproject["project"]["dependencies"],
        *pyproject["project"]["optional-dependencies"]["devnet"],
    ]
    for requirement in wanted:
        name = _normalized(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        assert name in constraints, f"{name} is not in deploy/constraints.txt"
        pinned = _pins([requirement])
        if pinned:
            assert constraints[name] == pinned[name], (
                f"{name}: pyproject {pinned[name]}, constraints {constraints[name]}"
            )
    builder = _stage("builder")
    assert "-c /tmp/constraints.txt" in (builder.last("RUN") or "")
    assert "-c /tmp/constraints.txt" in (_stage("builder-devnet").last("RUN") or "")
