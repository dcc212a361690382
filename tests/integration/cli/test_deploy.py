"""``gateway deploy`` against Anvil and an in-process devnode, with the examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

import gateway
from adapters.fisco.transaction import account_address
from devnet.anvil import Anvil, AnvilError, start_anvil
from devnet.fisco.node import DevNode, DevNodeOptions, DevNodeThread
from relay.config import load_config
from tests.integration.devnet.client import RpcClient, artifact, selector
from verifier.hashing import CryptoSuite

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")
FISCO_RELAYER = "0x" + "5a" * 32
FISCO_OWNER = "0x" + "6b" * 32


@pytest.fixture(name="anvil", scope="module")
def _anvil() -> Iterator[Anvil]:
    """Anvil on a free port (instant mining), or a skip when it is not installed."""
    try:
        chain = start_anvil(port=0, accounts=3)
    except AnvilError as exc:
        pytest.skip(str(exc))
    try:
        yield chain
    finally:
        chain.stop()
        if chain.process.stdout is not None:  # the output pump's pipe (filterwarnings=error)
            chain.process.stdout.close()


@pytest.fixture(name="node", scope="module")
def _node() -> Iterator[DevNode]:
    """An in-process devnode with 20 ms blocks."""
    with DevNodeThread(DevNodeOptions(port=0, block_interval_ms=20, seed="deploy-tests")) as node:
        yield node


def _config(tmp_path: Path, anvil_url: str, node: DevNode | None, extra: str = "") -> Path:
    sealers = (
        ""
        if node is None
        else ", ".join(f'{{ node_id = "{k.node_id}" }}' for k in node.sealer_keys)
    )
    fisco_url = "http://127.0.0.1:1" if node is None else node.url
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""# test config
[chains.anvil-test]
family = "evm"
endpoints = ["{anvil_url}"]
chain_id = 31337
{"" if "finality" in extra else "confirmations = 1"}
relayer_key = {{ env = "T_ANVIL_RELAYER" }}
sender_key = {{ env = "T_UNSET_SENDER" }}
max_payload = 1000
{extra}
[chains.fisco-test]
family = "fisco-bcos-3"
endpoints = ["{fisco_url}"]
sealers = [{sealers or '{ node_id = "' + "ab" * 64 + '" }'}]
relayer_key = {{ env = "T_FISCO_RELAYER" }}
owner_key = {{ env = "T_FISCO_OWNER" }}
max_payload = 2000
"""
    )
    return path


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relayer keys in the environment, as the config names them."""
    monkeypatch.setenv("T_FISCO_RELAYER", FISCO_RELAYER)
    monkeypatch.setenv("T_FISCO_OWNER", FISCO_OWNER)


def _addresses(out: str) -> dict[str, str]:
    return dict(
        re.findall(r"^(gateway on [\w-]+|ping_pong|notary): (0x[0-9a-fA-F]{40})$", out, re.M)
    )


def test_deploy_evm(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On Anvil: gateway, relayer, both destinations and the examples; --write records it."""
    relayer = anvil.accounts[1]
    monkeypatch.setenv("T_ANVIL_RELAYER", relayer.private_key)
    path = _config(tmp_path, anvil.url, None)
    assert (
        gateway.main(
            ["deploy", "--config", str(path), "--chain", "anvil-test", "--examples", "--write"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert re.findall(r"^\[(\d)/7\] ", out, re.M) == [str(i) for i in range(1, 8)]
    assert "warning: no owner_key: the relayer key will own the contract" in out
    found = _addresses(out)
    assert set(found) == {"gateway on anvil-test", "ping_pong", "notary"}
    address = Web3.to_checksum_address(found["gateway on anvil-test"])
    assert load_config(path).chains["anvil-test"].gateway == bytes.fromhex(address[2:])
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    contract = w3.eth.contract(address=address, abi=artifact("CrossChainGateway")["abi"])
    relayer_address = Web3.to_checksum_address(relayer.address)
    assert contract.functions.isRelayer(relayer_address).call() is True
    assert contract.functions.owner().call() == relayer_address
    assert contract.functions.chainName().call() == "anvil-test"
    assert contract.functions.timestampUnitsPerSecond().call() == 1
    assert contract.functions.maxPayload("fisco-test").call() == 2000
    assert contract.functions.maxPayload("anvil-test").call() == 1000
    assert contract.functions.receiverGas().call() == 500_000
    pong = w3.eth.contract(
        address=Web3.to_checksum_address(found["ping_pong"]), abi=artifact("PingPong")["abi"]
    )
    assert pong.functions.gateway().call() == address
    assert relayer.private_key[2:] not in out


def test_deploy_fisco(node: DevNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On the devnode: deployed by owner_key, the relayer registered, timestamps in ms."""
    path = _config(tmp_path, "http://127.0.0.1:1", node)
    assert (
        gateway.main(["deploy", "--config", str(path), "--chain", "fisco-test", "--examples"]) == 0
    )
    out = capsys.readouterr().out
    assert "no owner_key" not in out  # fisco-test sets one
    assert "warning" not in out
    address = _addresses(out)["gateway on fisco-test"]
    assert f'[chains.fisco-test]\ngateway = "{address}"' in out
    assert load_config(path).chains["fisco-test"].gateway is None  # no --write
    client = RpcClient(node.url)
    suite = CryptoSuite.KECCAK256_SECP256K1
    relayer = account_address(bytes.fromhex(FISCO_RELAYER[2:]), suite)
    owner = account_address(bytes.fromhex(FISCO_OWNER[2:]), suite)
    assert f"from {owner} (owner)" in out

    def call(signature: str, arg: bytes = b"") -> str:
        result = client.call("call", address, "0x" + (selector(signature) + arg).hex())
        assert result["status"] == 0
        return str(result["output"])

    assert int(call("isRelayer(address)", bytes(12) + bytes.fromhex(relayer[2:])), 16) == 1
    assert int(call("isRelayer(address)", bytes(12) + bytes.fromhex(owner[2:])), 16) == 0
    assert call("owner()")[-40:] == owner[2:]
    assert int(call("timestampUnitsPerSecond()"), 16) == 1000


def test_deploy_fisco_sealer_mismatch_warns(
    node: DevNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sealers that differ from the node's are a warning: the trust root would not verify."""
    path = _config(tmp_path, "http://127.0.0.1:1", node)
    text = path.read_text()
    first = node.sealer_keys[0].node_id
    path.write_text(text.replace(first, "ab" * 64))
    assert gateway.main(["deploy", "--config", str(path), "--chain", "fisco-test"]) == 0
    assert "warning: " in capsys.readouterr().out


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, "deploy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_unreachable_chain(tmp_path: Path) -> None:
    """An unreachable chain: exit 1 and one line naming the chain and the endpoint."""
    path = _config(tmp_path, "http://127.0.0.1:1", None)
    done = _run(["--config", str(path), "--chain", "fisco-test"], {})
    assert done.returncode == 1
    assert done.stderr == (
        "error: cannot reach fisco-test at http://127.0.0.1:1: [Errno 111] Connection refused\n"
    )
    done = _run(
        ["--config", str(path), "--chain", "anvil-test"], {"T_ANVIL_RELAYER": "0x" + "11" * 32}
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach anvil-test: http://127.0.0.1:1: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_wrong_config(tmp_path: Path) -> None:
    """A wrong config: exit 2, every problem listed with its path, no traceback."""
    path = _config(tmp_path, "http://127.0.0.1:1", None, extra='finality = "latest"\nbogus = 1\n')
    done = _run(["--config", str(path), "--chain", "anvil-test"], {})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {path}: 2 problems",
        "  chains.anvil-test.finality: must be 'safe' or 'finalized', not 'latest'",
        "  chains.anvil-test.bogus: unknown key",
    ]
    done = _run(["--config", str(tmp_path / "g.toml"), "--chain", "nope"], {})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 2
    assert "Traceback" not in done.stderr


def test_unknown_chain_and_missing_key(tmp_path: Path) -> None:
    """A chain not in the file, and an unset key variable, are configuration errors (exit 2)."""
    path = _config(tmp_path, "http://127.0.0.1:1", None)
    done = _run(["--config", str(path), "--chain", "nope"], {})
    assert done.returncode == 2
    assert "chains.nope: no such chain (configured: anvil-test, fisco-test)" in done.stderr
    env = {k: v for k, v in os.environ.items() if k != "T_ANVIL_RELAYER"}
    done = subprocess.run(
        [GATEWAY, "deploy", "--config", str(path), "--chain", "anvil-test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert (
        "chains.anvil-test.relayer_key: environment variable T_ANVIL_RELAYER: is not set"
        in done.stderr
    )


def test_unfunded_key(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A deployer without funds is one clear line and exit 1, the key never shown."""
    key = "0x" + "77" * 32
    monkeypatch.setenv("T_ANVIL_RELAYER", key)
    path = _config(tmp_path, anvil.url, None)
    assert gateway.main(["deploy", "--config", str(path), "--chain", "anvil-test"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: the deploying account 0x")
    assert "has no funds on anvil-test" in captured.err
    assert key[2:] not in captured.err + captured.out


def test_wrong_chain_id(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An endpoint serving another chain id is refused before anything is sent."""
    monkeypatch.setenv("T_ANVIL_RELAYER", anvil.accounts[2].private_key)
    path = _config(tmp_path, anvil.url, None)
    path.write_text(path.read_text().replace("chain_id = 31337", "chain_id = 1"))
    assert gateway.main(["deploy", "--config", str(path), "--chain", "anvil-test"]) == 1
    assert "serves chain id 31337, but chains.anvil-test.chain_id is 1" in capsys.readouterr().err
