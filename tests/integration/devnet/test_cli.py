"""``devnet.fisco.cli``: prints URL, ids and sealers, answers, stops on SIGINT; port in use -> 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.devnet.client import RpcClient

pytestmark = pytest.mark.integration


GATEWAY = [str(Path(sys.executable).parent / "gateway"), "devnet", "fisco"]
MODULE = [sys.executable, "-m", "devnet.fisco.cli"]


@pytest.mark.parametrize(
    ("command", "stop"),
    [(GATEWAY, signal.SIGTERM), (MODULE, signal.SIGINT)],
    ids=["gateway-devnet-fisco-sigterm", "module-sigint"],
)
def test_cli_runs_and_stops(command: list[str], stop: signal.Signals) -> None:
    """The CLI serves JSON-RPC on the printed URL and exits 0 on SIGINT or SIGTERM."""
    with subprocess.Popen(
        [*command, "--port", "0", "--sealers", "4", "--seed", "cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        url = lines[0].split()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert lines[1].strip() == "chain id: chain0"
        assert lines[2].strip() == "group id: group0"
        assert all(len(line.split()[-1]) == 128 for line in lines[3:7])
        assert RpcClient(url).call("getBlockNumber") == 0
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0


def test_cli_port_in_use() -> None:
    """A busy port is bad usage: exit code 2 and a one-line message."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "devnet.fisco.cli", "--port", str(port)],
            capture_output=True,
            check=False,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "port in use" in done.stderr
