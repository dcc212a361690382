"""Result shapes match the real node's examples field by field (../shared/vectors)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devnet.fisco.node import DevNode
from tests.conftest import VectorLoader
from tests.integration.devnet.client import RpcClient, selector, uint
from tests.integration.devnet.shapes import assert_same_shape
from verifier.hashing import keccak256

pytestmark = pytest.mark.integration
DOC = "fisco/fisco_doc_examples.json"


@pytest.fixture(name="sent", scope="module")
def _sent(client: RpcClient, store_address: str) -> dict[str, Any]:
    """The sendTransaction result of a Store.set(42) call."""
    result: dict[str, Any] = client.send(store_address, selector("set(uint256)") + uint(42))
    return result


def test_send_transaction_shape(sent: dict[str, Any], shared_vector: VectorLoader) -> None:
    """sendTransaction returns the node's receipt object (with to/from/extraData)."""
    real = shared_vector(DOC)["keccak_chain"]
    assert_same_shape({**sent, "logEntries": []}, real["send_transaction_receipt"])
    assert_same_shape(sent["logEntries"], real["receipt_with_log"]["logEntries"])


def test_receipt_shapes(
    client: RpcClient, sent: dict[str, Any], shared_vector: VectorLoader
) -> None:
    """getTransactionReceipt with and without proof; logEntries like the node's."""
    real = shared_vector(DOC)["keccak_chain"]
    with_proof = client.call("getTransactionReceipt", sent["transactionHash"], True)
    assert_same_shape(
        with_proof, real["receipt"] | {"logEntries": real["receipt_with_log"]["logEntries"]}
    )
    assert with_proof["receiptProof"] == []
    assert with_proof["transactionProof"] == []
    plain = client.call("getTransactionReceipt", sent["transactionHash"], False)
    assert "txReceiptProof" not in plain
    assert plain["transactionProof"] is None


def test_transaction_shape(
    client: RpcClient, sent: dict[str, Any], shared_vector: VectorLoader
) -> None:
    """getTransaction(requireProof) matches the node's tx object with txProof."""
    real = shared_vector(DOC)["keccak_chain"]["transaction"]
    tx = client.call("getTransaction", sent["transactionHash"], True)
    assert_same_shape(tx, real)
    assert tx["transactionProof"] == []
    assert bytes.fromhex(tx["nonce"]).decode().isdigit()  # hex of the decimal nonce string
    assert "txProof" not in client.call("getTransaction", sent["transactionHash"], False)


def test_deploy_receipt_shape(client: RpcClient, shared_vector: VectorLoader) -> None:
    """A deploy receipt has contractAddress with 0x and an EIP-55 checksum address."""
    real = shared_vector(DOC)["sm_chain"]["deploy_receipt_block2"]
    address = client.deploy("Reverter")
    block = client.call("getBlockByNumber", client.call("getBlockNumber"), False, True)
    receipt = client.call("getTransactionReceipt", block["transactions"][0], True)
    assert_same_shape(receipt, real)
    assert receipt["contractAddress"] == address
    assert receipt["to"] == ""
    assert receipt["checksumContractAddress"].lower() == address
    assert json.loads(client.call("getABI", address))[0]["name"] == "fail"


def test_revert_shape(client: RpcClient, shared_vector: VectorLoader) -> None:
    """A revert gives status 16, the Error(string) output, message "" and hash "0x"."""
    real = shared_vector(DOC)["keccak_chain"]["reverted_receipt"]
    address = client.deploy("Reverter")
    result = client.send(address, selector("fail(uint256)") + uint(1))
    assert_same_shape(result, real)
    assert (result["status"], result["hash"], result["message"]) == (16, "0x", "")
    assert result["output"].startswith("0x08c379a0")
    stored = client.call("getTransactionReceipt", result["transactionHash"], False)
    assert stored["hash"] != "0x"
    assert stored["status"] == 16


def test_block_shapes(client: RpcClient, sent: dict[str, Any], shared_vector: VectorLoader) -> None:
    """Blocks: genesis in full, a header by hash, the defaults (onlyHeader/onlyTxHash true)."""
    real = shared_vector(DOC)["sm_chain"]
    genesis = client.call("getBlockByNumber", 0, False, False)
    assert_same_shape(genesis, real["genesis_block"])
    number = sent["blockNumber"]
    block_hash = client.call("getBlockHashByNumber", number)
    header = client.call("getBlockByHash", block_hash, True, True)
    assert_same_shape(header, real["block2_header"])
    defaults = RpcClient(client.url).request("getBlockByNumber", ["group0", "", number])["result"]
    assert defaults == header
    full = client.call("getBlockByNumber", number, False, False)
    assert full["transactions"][0]["hash"] == sent["transactionHash"]
    hashes = client.call("getBlockByNumber", number, False, True)["transactions"]
    assert hashes == [sent["transactionHash"]]
    assert client.call("getBlockHashByNumber", 10**9) == "0x" + "00" * 32


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("call", None),
        ("getSystemConfigByKey", ["tx_count_limit"]),
        ("getSealerList", []),
        ("getConsensusStatus", []),
        ("getGroupInfo", []),
        ("getGroupList", []),
        ("getBlockHashByNumber", [0]),
    ],
)
def test_doc_shapes(
    client: RpcClient, store_address: str, shared_vector: VectorLoader, method: str, params: Any
) -> None:
    """Each method in ``shapes`` answers with the real node's shape."""
    real = shared_vector(DOC)["shapes"][method]
    if params is None:
        params = [store_address, "0x" + selector("get()").hex()]
    ours = client.call(method, *params)
    assert_same_shape(ours, real)
    if method == "getGroupInfo":
        assert_same_shape(
            json.loads(ours["nodeList"][0]["iniConfig"]),
            json.loads(real["nodeList"][0]["iniConfig"]),
        )


def test_other_methods(node: DevNode, client: RpcClient, store_address: str) -> None:
    """The remaining methods answer with the documented types."""
    assert isinstance(client.call("getBlockNumber"), int)
    assert client.call("getObserverList") == []
    assert isinstance(client.call("getPbftView"), int)
    assert client.call("getPendingTxSize") == 0
    total = client.call("getTotalTransactionCount")
    assert set(total) == {"blockNumber", "transactionCount", "failedTransactionCount"}
    sync = client.call("getSyncStatus")
    assert sync.endswith("\n")
    assert json.loads(sync)["blockNumber"] == client.call("getBlockNumber")
    code = client.call("getCode", store_address)
    assert code.startswith("0x6080")
    assert len(code) > 100
    assert client.call("getCode", "0x" + "11" * 20) == ""
    peers = RpcClient(node.url).request("getPeers", [])["result"]
    assert peers["p2pNodeID"] == node.sealer_keys[0].node_id
    assert client.request("getGroupPeers", ["group0"])["result"] == sorted(
        k.node_id for k in node.sealer_keys
    )
    infos = client.request("getGroupInfoList", [])["result"]
    assert infos == [client.request("getGroupInfo", ["group0"])["result"]]
    node_info = client.call("getGroupNodeInfo")  # node name "" is no node of the group
    assert node_info is None
    local = node.sealer_keys[0].node_id
    assert client.request("getGroupNodeInfo", ["group0", local])["result"]["nodeID"] == local


def test_get_logs(client: RpcClient, store_address: str) -> None:
    """getLogs returns eth-style logs filtered by address and topic."""
    result = client.send(store_address, selector("set(uint256)") + uint(77))
    topic0 = "0x" + keccak256(b"ValueSet(address,uint256,uint256)").hex()
    query = {
        "fromBlock": hex(result["blockNumber"]),
        "toBlock": "latest",
        "address": store_address,
        "topics": [topic0, None, "0x" + uint(77).hex()],
    }
    logs = client.request("getLogs", ["group0", query])["result"]
    assert len(logs) == 1
    log = logs[0]
    assert log["transactionHash"] == result["transactionHash"]
    assert log["removed"] is False
    assert log["address"] == store_address
    assert log["blockNumber"] == hex(result["blockNumber"])
