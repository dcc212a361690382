"""getLogs parameters and matching as the node's filter system (v3.9.0 FilterRequest)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.devnet.client import RpcClient, selector, uint
from verifier.hashing import keccak256

pytestmark = pytest.mark.integration
TOPIC0 = "0x" + keccak256(b"ValueSet(address,uint256,uint256)").hex()


@pytest.fixture(name="logged", scope="module")
def _logged(client: RpcClient, store_address: str) -> dict[str, Any]:
    """The receipt of a Store.set(88) call (one ValueSet log)."""
    result: dict[str, Any] = client.send(store_address, selector("set(uint256)") + uint(88))
    return result


def _query(logged: dict[str, Any], **over: Any) -> dict[str, Any]:
    number = hex(logged["blockNumber"])
    return {"fromBlock": number, "toBlock": number, "address": [], "topics": []} | over


def _logs(client: RpcClient, query: Any) -> Any:
    return client.request("getLogs", ["group0", query])


def test_required_keys(client: RpcClient, logged: dict[str, Any]) -> None:
    """fromBlock, toBlock, address and topics are required, in that order."""
    for key in ("fromBlock", "toBlock", "address", "topics"):
        query = _query(logged)
        del query[key]
        assert _logs(client, query)["error"] == {"code": -32602, "message": f"{key} is null"}
    assert _logs(client, None)["error"]["message"] == "fromBlock is null"


def test_block_numbers(client: RpcClient, logged: dict[str, Any]) -> None:
    """Blocks are tags or 0x-hex quantities; an int or decimal string is invalid."""
    error = _logs(client, _query(logged, fromBlock=1))["error"]
    assert error == {"code": -32602, "message": "Invalid Block Number: 1"}
    error = _logs(client, _query(logged, toBlock="12"))["error"]
    assert error["message"] == "Invalid Block Number: 12"
    assert len(_logs(client, _query(logged, toBlock="latest"))["result"]) >= 1
    reversed_range = _query(logged, fromBlock=hex(logged["blockNumber"] + 1))
    assert _logs(client, reversed_range)["error"]["message"] == "invalid block range params"
    assert _logs(client, _query(logged, toBlock=hex(10**9)))["result"]  # clamped to the head


def test_blockhash(client: RpcClient, logged: dict[str, Any]) -> None:
    """The lowercase ``blockhash`` key selects one block; an unknown one is an error."""
    block_hash = client.call("getBlockHashByNumber", logged["blockNumber"])
    logs = _logs(client, _query(logged, fromBlock="earliest", blockhash=block_hash))["result"]
    assert [log["transactionHash"] for log in logs] == [logged["transactionHash"]]
    unknown = _query(logged, blockhash="0x" + "ab" * 32)
    assert _logs(client, unknown)["error"] == {"code": -32602, "message": "unknown block"}


def test_matching(client: RpcClient, logged: dict[str, Any], store_address: str) -> None:
    """Addresses and topics are compared as exact 0x-prefixed lowercase strings."""
    assert len(_logs(client, _query(logged, address=store_address))["result"]) == 1
    assert _logs(client, _query(logged, address=store_address[2:]))["result"] == []
    topics = [TOPIC0, None, ["0x" + uint(1).hex(), "0x" + uint(88).hex()]]
    assert len(_logs(client, _query(logged, topics=topics))["result"]) == 1
    assert _logs(client, _query(logged, topics=[TOPIC0.upper()]))["result"] == []
    too_many = _query(logged, topics=[None] * 5)
    assert _logs(client, too_many)["error"]["message"] == "exceed max topics"
