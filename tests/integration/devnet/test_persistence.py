"""Determinism from the seed, and a restart with a data dir keeps the whole chain."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from devnet.fisco.keys import sealer_keys
from devnet.fisco.node import DevNodeOptions, DevNodeThread
from tests.integration.devnet.client import RpcClient, selector, uint

pytestmark = pytest.mark.integration


def _fixed_clock() -> itertools.count[int]:
    return itertools.count(1_700_000_000_000, 1000)


def _run_script(options: DevNodeOptions) -> list[str]:
    """Deploy Store and send three fixed transactions; return every block hash."""
    with DevNodeThread(options) as node:
        client = RpcClient(node.url)
        address = client.deploy_with_nonce("Store", "1")
        for i in range(3):
            client.send(address, selector("set(uint256)") + uint(i), nonce=f"n{i}", block_limit=500)
        return [
            client.call("getBlockHashByNumber", n) for n in range(client.call("getBlockNumber") + 1)
        ]


def test_same_seed_same_keys_and_hashes() -> None:
    """Two nodes with the same seed, clock and transactions produce identical chains."""
    assert sealer_keys("a", 4) == sealer_keys("a", 4)
    assert sealer_keys("a", 4) != sealer_keys("b", 4)
    runs = []
    for _ in range(2):
        options = DevNodeOptions(
            port=0, block_interval_ms=10, seed="det", clock=_fixed_clock().__next__
        )
        runs.append(_run_script(options))
    assert runs[0] == runs[1]
    assert len(runs[0]) == 5


def test_restart_keeps_chain(tmp_path: Path) -> None:
    """Blocks, receipts, proofs and contract state survive a restart with --data-dir."""
    options = DevNodeOptions(port=0, block_interval_ms=10, seed="persist", data_dir=tmp_path)
    with DevNodeThread(options) as node:
        client = RpcClient(node.url)
        address = client.deploy("Store")
        sent = client.send(address, selector("set(uint256)") + uint(99))
        before = {
            "number": client.call("getBlockNumber"),
            "block": client.call("getBlockByNumber", sent["blockNumber"], False, True),
            "receipt": client.call("getTransactionReceipt", sent["transactionHash"], True),
            "tx": client.call("getTransaction", sent["transactionHash"], True),
            "total": client.call("getTotalTransactionCount"),
        }
    with DevNodeThread(options) as node:
        client = RpcClient(node.url)
        assert client.call("getBlockNumber") == before["number"]
        assert client.call("getBlockByNumber", sent["blockNumber"], False, True) == before["block"]
        assert (
            client.call("getTransactionReceipt", sent["transactionHash"], True) == before["receipt"]
        )
        assert client.call("getTransaction", sent["transactionHash"], True) == before["tx"]
        assert client.call("getTotalTransactionCount") == before["total"]
        output = client.call("call", address, "0x" + selector("get()").hex())["output"]
        assert int(output, 16) == 99
        again = client.send(address, selector("set(uint256)") + uint(100))
        assert again["blockNumber"] == before["number"] + 1
        parent = client.call("getBlockByNumber", again["blockNumber"], True, True)["parentInfo"]
        assert parent[0]["blockHash"] == before["block"]["hash"]


def test_data_dir_of_other_chain_refused(tmp_path: Path) -> None:
    """A data dir created with another seed is not silently reused."""
    with DevNodeThread(DevNodeOptions(port=0, seed="one", data_dir=tmp_path)):
        pass
    with (
        pytest.raises(Exception, match="different chain"),
        DevNodeThread(DevNodeOptions(port=0, seed="two", data_dir=tmp_path)),
    ):
        pass
