"""`gateway verify` and `gateway demo` behave as documented on valid, tampered and bad input."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gateway
from cli import config, demo, deploy, devnet, init, verify
from relay.tls import make_ca, write_cert_file

EXAMPLES = Path(gateway.__file__).resolve().parent / "docs" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, doc: object, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_examples_exist() -> None:
    """The shipped examples cover both families and both FISCO crypto suites."""
    docs = [_load(p) for p in EXAMPLE_FILES]
    assert {(d["family"], d["crypto"]) for d in docs} == {
        ("evm", "keccak256-secp256k1"),
        ("fisco-bcos-3", "keccak256-secp256k1"),
        ("fisco-bcos-3", "sm3-sm2"),
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_verify_example_json(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example verifies: exit 0 and a JSON result with the decoded log."""
    assert gateway.main(["verify", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    doc = _load(path)
    assert result["valid"] is True
    assert result["reason"] is None
    assert result["family"] == doc["family"]
    assert result["block_hash"] == doc["block"]["hash"]
    assert result["log"]["topics"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_verify_tampered_example_exits_1(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-byte change to the receipt's log data makes verify exit 1 naming the check."""
    doc = _load(path)
    logs = doc["receipt"].get("logs") or doc["receipt"]["logEntries"]
    data = bytearray.fromhex(logs[0]["data"][2:])
    data[-1] ^= 0x01
    logs[0]["data"] = "0x" + data.hex()
    assert gateway.main(["verify", str(_write(tmp_path, doc))]) == 1
    out = capsys.readouterr().out.strip()
    assert out.startswith("INVALID [")
    assert len(out.splitlines()) == 1


def test_verify_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-` reads the bundle from standard input."""
    raw = EXAMPLE_FILES[0].read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert gateway.main(["verify", "-"]) == 0
    assert capsys.readouterr().out.startswith("VALID ")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"format": "interop-evidence/9"}',
        b"{}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["bad-json", "not-utf8", "array", "unknown-format", "empty-object", "nested-100k"],
)
def test_verify_unusable_input_exits_2(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unreadable or non-bundle input exits 2 with a one-line error, never a traceback."""
    path = tmp_path / "x.json"
    path.write_bytes(content)
    assert gateway.main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_verify_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is reported as unreadable."""
    assert gateway.main(["verify", str(tmp_path / "nope.json"), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False
    assert "cannot read" in result["reason"]


def test_verify_failure_json_names_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json on a failed check gives valid=false, the check and a reason."""
    doc = _load(next(p for p in EXAMPLE_FILES if "evm" in p.name))
    doc["trust"]["block_hash"] = "0x" + "00" * 32
    assert gateway.main(["verify", str(_write(tmp_path, doc)), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "valid": False,
        "family": "evm",
        "block_number": None,
        "block_hash": None,
        "check": "header_trust",
        "reason": result["reason"],
    }
    assert "trusted 0x0000" in result["reason"]


def test_verify_examples_and_rejects_tampering(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway verify --examples` verifies every example and shows each tampered copy
    rejected; without a bundle or --examples, verify is a usage error."""
    assert gateway.main(["verify"]) == 2
    assert gateway.main(["verify", "--examples"]) == 0
    out = capsys.readouterr().out
    assert out.count("  valid: ") == len(EXAMPLE_FILES)
    assert out.count("tampered copy (one receipt byte changed) rejected") == len(EXAMPLE_FILES)


def test_console_script_runs_as_a_user_would() -> None:
    """The installed `gateway` command verifies an example in a separate process."""
    script = Path(sys.executable).parent / "gateway"
    proc = subprocess.run(
        [str(script), "verify", str(EXAMPLE_FILES[0])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("VALID ")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version; a bare group command prints its help, exit 2."""
    with pytest.raises(SystemExit) as info:
        gateway.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("gateway 0.1.0")
    assert gateway.main(["devnet"]) == 2
    assert "fisco" in capsys.readouterr().out
    assert gateway.main([]) == 2
    assert "verify" in capsys.readouterr().out


def test_help_lists_every_command_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway --help` lists each command group with its one-line description."""
    with pytest.raises(SystemExit) as info:
        gateway.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command, line in [
        ("verify", "verify an evidence bundle"),
        ("demo", "run the demo on the embedded default"),
        ("init", "create a gateway's folder"),
        ("config", "check a gateway configuration file"),
        ("devnet", "run a local development chain"),
        ("deploy", "deploy the gateway contract to a configured chain"),
    ]:
        assert any(row.split()[:1] == [command] and line in row for row in out.splitlines()), (
            command
        )
    assert gateway.main(["config"]) == 2
    assert "validate" in capsys.readouterr().out


def test_each_command_module_registers_itself() -> None:
    """Every cli/ module adds its commands through register(subparsers) alone."""
    for module, commands in [
        (verify, {"verify"}),
        (demo, {"demo"}),
        (init, {"init"}),
        (config, {"config"}),
        (devnet, {"devnet"}),
        (deploy, {"deploy"}),
    ]:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        module.register(sub)
        assert set(sub.choices) == commands, module.__name__


def test_exit_codes_are_reexported() -> None:
    """gateway.EXIT_* stay importable (tests/fuzz uses them)."""
    assert (gateway.EXIT_OK, gateway.EXIT_INVALID, gateway.EXIT_USAGE) == (0, 1, 2)


def test_python_gateway_py_runs() -> None:
    """`python gateway.py` works from another folder, as the console script does."""
    proc = subprocess.run(
        [sys.executable, str(Path(gateway.__file__).resolve()), "verify", str(EXAMPLE_FILES[0])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("VALID ")


def test_deploy_refuses_a_remote_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway deploy` on a served = false chain exits 2 before any connection: its own
    gateway deploys it."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:1"]
chain_id = 1
confirmations = 1
relayer_key = {{ env = "NOT_SET_ANYWHERE" }}

[chains.evm-b]
family = "evm"
served = false
endpoints = ["http://127.0.0.1:1"]
chain_id = 2
confirmations = 1
gateway = "0x{"11" * 20}"

[peers.gw-b]
address = "127.0.0.1:50051"
cert_sha256 = "{"ab" * 32}"
ca = "peer-ca.crt"
chains = ["evm-b"]
"""
    )
    write_cert_file(tmp_path / "peer-ca.crt", make_ca("peer CA")[0])
    assert gateway.main(["deploy", "--config", str(path), "--chain", "evm-b"]) == 2
    assert "chains.evm-b.served: is false: a remote chain has no keys here" in (
        capsys.readouterr().err
    )
