"""End to end: deploy/compose.yaml's services run as written, without a container engine.

Each service's command runs with this checkout's ``gateway`` on the file system its container
would get (its mounts laid out under a temporary root: the committed gateway.toml files, the
certificates and keys ``make-secrets.sh`` makes), with the compose host names replaced by
loopback ports (and ``server_name`` set to the peer's service name, which its certificate
names). So: Anvil and the devnode as compose starts them, ``gateway deploy`` creating the
contracts at the addresses the committed configurations name, ``gateway db migrate`` on two
PostgreSQL databases, both gateways with the image's CMD flags, a message each way
acknowledged through the example API token, and gw-a's audit export verified."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.unit.deploy.files import (
    DEPLOY,
    GATEWAY,
    dockerfile_stages,
    make_identities,
    rooted,
    under,
    yaml_docs,
)

pytestmark = pytest.mark.integration

SERVICES: dict[str, Any] = yaml_docs(DEPLOY / "compose.yaml")[0]["services"]
ADMIN_URL = os.environ.get(
    "GATEWAY_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONFIG = "/etc/gateway/gateway.toml"
OWN = {"gw-a": "gw-a", "gw-a-2": "gw-a", "gw-b": "gw-b", "deploy-anvil": "gw-a"}
OWN |= {"deploy-fisco": "gw-b", "migrate-a": "gw-a", "migrate-b": "gw-b"}
"""Service -> the gateway whose configuration it mounts."""
REPLICAS = ("gw-a", "gw-a-2", "gw-b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


@dataclass
class Stack:
    root: Path
    identities: Path
    db_prefix: str
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    named: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.root / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            self.procs.append(
                subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                    start_new_session=True,
                )
            )
        self.named[name] = self.procs[-1]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def env(self, service: str) -> dict[str, str]:
        """The service's compose environment, its store URL pointed at this test's database."""
        out = {}
        for key, value in SERVICES[service].get("environment", {}).items():
            text = re.sub(
                r"postgresql://gateway:\$\{GATEWAY_PG_PASSWORD:-[^}]*\}@postgres:5432/(\w+)",
                lambda m: ADMIN_URL.rsplit("/", 1)[0] + f"/{self.db_prefix}_{m[1]}",
                str(value),
            )
            out[key] = text
        return out

    def config(self, service: str) -> Path:
        """The service's mounts under root/<service>; its gateway.toml with loopback ports."""
        root = self.root / service
        if under(root, CONFIG).with_name("local.toml").exists():
            return under(root, CONFIG).with_name("local.toml")  # laid out already
        volumes = {
            src: self.identities / target.removeprefix("/out/")
            for src, target in (v.split(":")[:2] for v in SERVICES["secrets"]["volumes"])
            if not src.startswith(".")
        }
        for entry in SERVICES[service]["volumes"]:
            src, target = entry.split(":")[:2]
            dest = under(root, target)
            if src.startswith("."):
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(DEPLOY / src, dest)
            elif src in volumes:
                shutil.copytree(volumes[src], dest)
            else:
                dest.mkdir(parents=True)
        me = OWN[service]
        peer = "gw-b" if me == "gw-a" else "gw-a"
        own_ports = self.ports[service] if service in REPLICAS else self.ports[me]
        text = rooted(under(root, CONFIG).read_text(encoding="utf-8"), root)
        for chain in ("anvil", "fisco"):
            port = SERVICES[chain]["command"][SERVICES[chain]["command"].index("--port") + 1]
            local_url = f"http://127.0.0.1:{self.ports[chain]['rpc']}"
            text = text.replace(f"http://{chain}:{port}", local_url)
        for kind, port in (("grpc", 50051), ("api", 50052), ("metrics", 9464)):
            text = text.replace(f'"0.0.0.0:{port}"', f'"127.0.0.1:{own_ports[kind]}"')
        for replica in (r for r in REPLICAS if OWN[r] == peer):
            text = text.replace(f'"{replica}:50051"', f'"127.0.0.1:{self.ports[replica]["grpc"]}"')
        # The peer's certificate names its service names, not 127.0.0.1's replicas' order.
        text = re.sub(
            r"^(address(?:es)? = .*)$", rf'\1\nserver_name = "{peer}"', text, flags=re.MULTILINE
        )
        local = under(root, CONFIG).with_name("local.toml")
        local.write_text(text, encoding="utf-8")
        return local


def _databases(prefix: str, *, drop: bool) -> None:
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            for name in ("gw_a", "gw_b"):
                ident = sql.Identifier(f"{prefix}_{name}")
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
                if not drop:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    except psycopg.OperationalError as exc:
        if drop:
            return
        pytest.skip(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}")


def _run(stack: Stack, service: str) -> subprocess.CompletedProcess[str]:
    argv = list(SERVICES[service]["command"])
    argv[argv.index("--config") + 1] = str(stack.config(service))
    return subprocess.run(
        [str(GATEWAY), *argv],
        env={**os.environ, **stack.env(service)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, answer.read().decode()
    except OSError as exc:
        return getattr(exc, "code", 0), str(exc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    secrets = SERVICES["secrets"]["command"]
    made = Stack(root, make_identities(root / "out", *secrets[1:]), f"compose_e2e_{os.getpid()}")
    _databases(made.db_prefix, drop=False)
    made.ports = {
        "anvil": {"rpc": _free_port()},
        "fisco": {"rpc": _free_port()},
        **{g: {k: _free_port() for k in ("grpc", "api", "metrics")} for g in REPLICAS},
    }
    try:
        for chain in ("anvil", "fisco"):
            argv = list(SERVICES[chain]["command"])
            argv[argv.index("--port") + 1] = str(made.ports[chain]["rpc"])
            argv[argv.index("--host") + 1] = "127.0.0.1"
            made.start(chain, [str(GATEWAY), "devnet", *argv], {})
        for chain in ("anvil", "fisco"):
            _wait_port(made.ports[chain]["rpc"], 60)
        yield made
    finally:
        made.stop()
        _databases(made.db_prefix, drop=True)


@pytest.fixture(scope="module")
def running(stack: Stack) -> Stack:
    """The one-shot services, then both gateways with the image's CMD flags; ready when both
    /readyz answer 200."""
    for service in ("deploy-anvil", "deploy-fisco", "migrate-a", "migrate-b"):
        done = _run(stack, service)
        assert done.returncode == 0, f"{service}: {done.stdout}\n{done.stderr}"
        (stack.root / f"{service}.out").write_text(done.stdout, encoding="utf-8")
    cmd = dockerfile_stages(DEPLOY / "Dockerfile")[1][-1].exec_form("CMD")
    for name in REPLICAS:
        argv = list(cmd)
        argv[argv.index("--config") + 1] = str(stack.config(name))
        stack.start(name, [str(GATEWAY), *argv], stack.env(name))
    deadline = time.monotonic() + 60
    for name in REPLICAS:
        while _readyz(stack, name)[0] != 200:
            log = (stack.root / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            assert time.monotonic() < deadline, f"{name} not ready: {log[-2000:]}"
            time.sleep(0.5)
    return stack


def _readyz(stack: Stack, name: str) -> tuple[int, str]:
    return _http(f"http://127.0.0.1:{stack.ports[name]['metrics']}/readyz")


def test_deploy_creates_the_contracts_the_configs_name(running: Stack) -> None:
    """deploy-anvil and deploy-fisco print the addresses gw-a's and gw-b's configs hold."""
    for service, chain in (("deploy-anvil", "anvil-local"), ("deploy-fisco", "fisco-local")):
        out = (running.root / f"{service}.out").read_text(encoding="utf-8")
        printed = re.search(rf"gateway on {chain}: (0x[0-9a-fA-F]{{40}})", out)
        assert printed is not None, out
        for name in ("gw-a", "gw-b"):
            text = (DEPLOY / "compose" / name / "gateway.toml").read_text(encoding="utf-8")
            section = text.split(f"[chains.{chain}]", 1)[1]
            configured = re.search(r'gateway = "(0x[0-9a-fA-F]{40})"', section)
            assert configured is not None
            assert configured[1].lower() == printed[1].lower()


def _api_env(stack: Stack, name: str, token: str) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_TOKEN": token,
        "GATEWAY_ADDRESS": f"127.0.0.1:{stack.ports[name]['api']}",
        "GATEWAY_CA": str(stack.identities / OWN[name] / "public" / "ca.crt"),
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("gateway", "src", "dst"),
    [("gw-a", "anvil-local", "fisco-local"), ("gw-b", "fisco-local", "anvil-local")],
)
def test_a_message_each_way_is_acknowledged(
    running: Stack, gateway: str, src: str, dst: str
) -> None:
    """Through the example token on each gateway's API (gw-a's first replica: a standby
    serves the API too and the message is relayed by whichever replica is active)."""
    _send_and_follow(running, gateway, src, dst)


def _send_and_follow(stack: Stack, gateway: str, src: str, dst: str) -> None:
    """`gateway send` to the example developer token's API, then `gateway status` until the
    source gateway shows it acknowledged (the receiver has no code: a FAILED result, still
    delivered and acknowledged once)."""
    env = _api_env(stack, gateway, "compose-example-developer-token")
    sent = _cli(
        env,
        "send",
        "--from",
        src,
        "--to",
        dst,
        "--receiver",
        "0x" + "11" * 20,
        "--payload",
        "compose",
        "--json",
    )
    assert sent.returncode == 0, sent.stderr
    message = json.loads(sent.stdout)["id"]
    deadline = time.monotonic() + 90
    state = None
    while time.monotonic() < deadline:
        status = _cli(env, "status", message, "--json")
        if status.returncode != 0:
            assert "not observed yet" in status.stderr, status.stderr  # its block is not final
            time.sleep(1)
            continue
        state = json.loads(status.stdout)["state"]
        if state == "acknowledged":
            break
        time.sleep(1)
    assert state == "acknowledged"


def test_audit_export_verifies_and_metrics_show_the_leader(running: Stack) -> None:
    """gw-a's audit export (auditor token) verifies with its audit.pub; the replicas' /metrics
    report exactly one of them as the leader."""
    env = _api_env(running, "gw-a", "compose-example-auditor-token")
    export = running.root / "audit-a.jsonl"
    done = _cli(env, "audit", "export", "--out", str(export))
    assert done.returncode == 0, done.stderr
    key = running.identities / "gw-a" / "public" / "audit.pub"
    verified = _cli(env, "audit", "verify", str(export), "--key", str(key))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    leaders = 0
    for name in ("gw-a", "gw-a-2"):
        status, page = _http(f"http://127.0.0.1:{running.ports[name]['metrics']}/metrics")
        assert status == 200
        found = re.search(r"^gateway_leader\{replica=\"[^\"]+\"\} ([01])\.0$", page, re.MULTILINE)
        assert found is not None
        leaders += int(found[1])
    assert leaders == 1


def test_one_replica_of_gw_a_is_active_the_other_stands_by(running: Stack) -> None:
    """gw-a and gw-a-2 share gw-a's configuration and database: /readyz says `active` on one
    and `standby` on the other; gw-b is active."""
    bodies = sorted(_readyz(running, name)[1].strip() for name in ("gw-a", "gw-a-2"))
    assert bodies == ["active", "standby"]
    assert _readyz(running, "gw-b")[1].strip() == "active"


def test_the_standby_takes_over_when_the_active_replica_stops(running: Stack) -> None:
    """SIGTERM to gw-a's active replica (docker compose stop): the standby reports `active`
    within the lease; then a message each way through it is acknowledged (gw-b fails over
    to the address in [peers.gw-a] addresses that answers)."""
    active = next(n for n in ("gw-a", "gw-a-2") if _readyz(running, n)[1].strip() == "active")
    other = "gw-a-2" if active == "gw-a" else "gw-a"
    proc = running.named[active]
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(45) == 0
    deadline = time.monotonic() + 45
    while _readyz(running, other)[1].strip() != "active":
        assert time.monotonic() < deadline, f"{other} did not take over"
        time.sleep(0.5)
    _send_and_follow(running, other, "anvil-local", "fisco-local")
    _send_and_follow(running, "gw-b", "fisco-local", "anvil-local")


def test_restore_from_pg_dump_continues_and_the_audit_chain_verifies(running: Stack) -> None:
    """docs/operations.md 2.5 on gw-a: pg_dump while running, every replica stopped, the
    database dropped and restored with pg_restore, `gateway db status` exits 0, one replica
    started again relays a new message, and its audit export verifies."""
    base = ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{running.db_prefix}_gw_a"
    dump = running.root / "gw-a.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", url], check=True, timeout=120)
    for name in ("gw-a", "gw-a-2"):
        proc = running.named[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(45) == 0
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        ident = sql.Identifier(f"{running.db_prefix}_gw_a")
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={url}", str(dump)], check=True, timeout=120
    )
    config = running.config("gw-a")
    env = {**os.environ, **running.env("gw-a")}
    status = _cli(env, "db", "status", "--config", str(config))
    assert status.returncode == 0, status.stdout + status.stderr
    cmd = dockerfile_stages(DEPLOY / "Dockerfile")[1][-1].exec_form("CMD")
    argv = list(cmd)
    argv[argv.index("--config") + 1] = str(config)
    running.start("gw-a-restored", [str(GATEWAY), *argv], running.env("gw-a"))
    deadline = time.monotonic() + 60
    while _readyz(running, "gw-a")[1].strip() != "active":
        assert time.monotonic() < deadline, "the restored gw-a did not become active"
        time.sleep(0.5)
    _send_and_follow(running, "gw-a", "anvil-local", "fisco-local")
    auditor = _api_env(running, "gw-a", "compose-example-auditor-token")
    export = running.root / "audit-a-restored.jsonl"
    done = _cli(auditor, "audit", "export", "--out", str(export))
    assert done.returncode == 0, done.stderr
    key = running.identities / "gw-a" / "public" / "audit.pub"
    verified = _cli(auditor, "audit", "verify", str(export), "--key", str(key))
    assert verified.returncode == 0, verified.stdout + verified.stderr
