"""``gateway devnet evm``: prints URL, chain id and dev accounts, answers, stops on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devnet.anvil import AnvilError, anvil_binary

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")


@pytest.fixture(autouse=True)
def _needs_anvil() -> None:
    """Skip when the pinned Anvil is not installed (make setup installs it)."""
    try:
        anvil_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))


def _rpc(url: str, method: str) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["result"]


def test_devnet_evm_runs_and_stops() -> None:
    """It prints the URL, chain id and labelled dev keys, serves eth_chainId, exits 0 on
    SIGTERM and stops Anvil with it."""
    with subprocess.Popen(
        [GATEWAY, "devnet", "evm", "--port", "0", "--chain-id", "4242", "--accounts", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(10)]
        assert lines[0] == "starting Anvil...\n"
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", lines[1])
        assert url is not None, lines
        assert lines[2] == "chain id: 4242\n"
        assert "PUBLIC test keys" in lines[4]
        accounts = [
            re.fullmatch(r"  account \d: (0x[0-9a-fA-F]{40})  private key (0x[0-9a-f]{64})\n", x)
            for x in lines[5:8]
        ]
        assert all(accounts), lines
        assert accounts[0] is not None
        assert accounts[0][1] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # checksummed
        assert "chain_id = 4242" in lines[8]
        assert _rpc(url[1], "eth_chainId") == hex(4242)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read().endswith("Anvil stopped\n")
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    with pytest.raises(OSError, match="refused"):
        _rpc(url[1], "eth_chainId")


def test_devnet_evm_bad_option() -> None:
    """A bad option is one line on stderr and exit 2, before Anvil starts."""
    done = subprocess.run(
        [GATEWAY, "devnet", "evm", "--block-time", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "error: --block-time must be > 0\n"
