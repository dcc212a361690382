"""``gateway config validate FILE``: exit codes, every problem with its path, the summary,
``--json``; real files (TLS material from relay.tls) and the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import gateway
from relay.tls import fingerprint, issue_cert, make_ca, write_cert_file, write_key_file

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")
EXAMPLE = Path(gateway.__file__).resolve().parent / "examples" / "gateway.toml"
NODE = "ab" * 64


def _runnable(tmp_path: Path) -> tuple[Path, str]:
    """A runnable two-gateway configuration of gw-a: serves anvil-a, fisco-b is remote via
    gw-b (pinned by its certificate file). Returns the file and gw-b's fingerprint."""
    ca = make_ca("gw-a CA")
    cert, key = issue_cert(*ca, "gw-a")
    write_cert_file(tmp_path / "ca.crt", ca[0])
    write_cert_file(tmp_path / "gateway.crt", cert)
    write_key_file(tmp_path / "gateway.key", key)
    peer_ca = make_ca("gw-b CA")
    peer_cert, _ = issue_cert(*peer_ca, "gw-b")
    (tmp_path / "peers").mkdir()
    write_cert_file(tmp_path / "peers" / "gw-b.crt", peer_cert)
    write_cert_file(tmp_path / "peers" / "gw-b-ca.crt", peer_ca[0])
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
name = "gw-a"
listen = "127.0.0.1:50071"

[gateway.tls]
cert = "gateway.crt"
key = "gateway.key"
ca = "ca.crt"

[chains.anvil-a]
family = "evm"
endpoints = ["http://127.0.0.1:8545", "http://127.0.0.1:8546", "http://127.0.0.1:8547"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
relayer_key = {{ env = "ANVIL_RELAYER_KEY" }}

[chains.fisco-b]
family = "fisco-bcos-3"
served = false
gateway = "0x{"22" * 20}"
sealers = [{{ node_id = "{NODE}" }}]

[peers.gw-b]
address = "127.0.0.1:50072"
cert = "peers/gw-b.crt"
ca = "peers/gw-b-ca.crt"
chains = ["fisco-b"]

[api]
listen = "127.0.0.1:50072"
tokens = [{{ name = "dev", sha256 = "{"ef" * 32}", role = "developer" }}]
""",
        encoding="utf-8",
    )
    return path, fingerprint(peer_cert)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, "config", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_file_exits_0_with_summary_and_table(tmp_path: Path) -> None:
    """A runnable file: exit 0, a one-line summary first, then the chains and routes tables."""
    path, _ = _runnable(tmp_path)
    proc = _run(str(path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f"OK {path}: gateway gw-a on 127.0.0.1:50071; served: anvil-a; remote: fisco-b; "
        "peers: gw-b (127.0.0.1:50072); 2 routes"
    )
    table = proc.stdout
    assert "2 of 3 endpoints agree, 1 confirmations" in table
    assert "remote, via gw-b" in table
    assert "1 sealers (weight 1), keccak256-secp256k1" in table
    assert proc.stderr == ""


def test_valid_file_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with the identity, chains, pinned peers and routes."""
    path, peer_sha = _runnable(tmp_path)
    assert gateway.main(["config", "validate", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "valid": True,
        "file": str(path),
        "gateway": "gw-a",
        "listen": "127.0.0.1:50071",
        "data_dir": str(tmp_path / "data"),
        "served_chains": ["anvil-a"],
        "remote_chains": ["fisco-b"],
        "peers": {
            "gw-b": {"address": "127.0.0.1:50072", "chains": ["fisco-b"], "cert_sha256": peer_sha}
        },
        "routes": [{"from": "anvil-a", "to": "fisco-b"}, {"from": "fisco-b", "to": "anvil-a"}],
        "api": {"tokens": 1, "client_certs": 0},
    }


def test_bad_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    """Several mistakes at once: exit 2, each on its own line with its path, no traceback."""
    path, _ = _runnable(tmp_path)
    text = path.read_text()
    text = text.replace('listen = "127.0.0.1:50071"', 'listen = "127.0.0.1"\nlisten_port = 1')
    text = text.replace("confirmations = 1", "confirmations = 1\ntrust_quorum = 1")
    text = text.replace('cert = "peers/gw-b.crt"', 'cert = "peers/missing.crt"')
    path.write_text(text)
    proc = _run(str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == f"error: {path}: 4 problems"
    assert lines[1:] == [
        "  gateway.listen: not host:port (IPv6 in brackets: [::1]:50051): '127.0.0.1'",
        "  gateway.listen_port: unknown key (did you mean 'listen'?)",
        "  chains.anvil-a.trust_quorum: must be more than half of the 3 endpoints "
        "(k > n/2: at least 2), not 1",
        f"  peers.gw-b.cert: file not found: {tmp_path / 'peers' / 'missing.crt'}",
    ]
    assert "Traceback" not in proc.stderr


def test_loadable_but_not_runnable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/gateway.toml is enough for gateway deploy but not for run: exit 2 listing what
    is missing; --json gives the same problems as objects."""
    assert gateway.main(["config", "validate", str(EXAMPLE), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert [p["path"] for p in result["problems"]] == [
        "gateway",
        "chains.anvil-local.gateway",
        "chains.fisco-local.gateway",
    ]
    assert all(p["message"] for p in result["problems"])


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file and a file that is not TOML are exit 2 with one readable line."""
    assert gateway.main(["config", "validate", str(tmp_path / "none.toml")]) == 2
    assert "cannot read: No such file or directory" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[gateway\n")
    assert gateway.main(["config", "validate", str(tmp_path / "bad.toml")]) == 2
    assert "not TOML:" in capsys.readouterr().err
