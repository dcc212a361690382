"""A small synchronous JSON-RPC client and transaction helper for the devnode tests."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adapters.fisco.transaction import build_transaction, sign_transaction, transaction_hex
from devnet.fisco.node import DevNode
from verifier.hashing import CryptoSuite, keccak256

ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "artifacts.json"
SUITE = CryptoSuite.KECCAK256_SECP256K1
CLIENT_KEY = keccak256(b"devnode test client key")
TIMEOUT_S = 30.0


def artifact(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ARTIFACTS.read_text())["contracts"][name]
    return data


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def uint(value: int) -> bytes:
    return value.to_bytes(32, "big")


class RpcClient:
    def __init__(self, url: str, group: str = "group0") -> None:
        self.url = url
        self.group = group
        self._id = 0

    def raw(self, body: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            assert response.status == 200
            result: dict[str, Any] = json.loads(response.read())
            return result

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._id += 1
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": self._id}
        return self.raw(json.dumps(body).encode())

    def call(self, method: str, *params: Any) -> Any:
        """Call with ``[group, "", *params]`` and return ``result`` (asserting no error)."""
        response = self.request(method, [self.group, "", *params])
        assert "error" not in response, response
        return response["result"]

    def tx_hex(
        self,
        to: str,
        data: bytes,
        *,
        abi: str = "",
        nonce: str | None = None,
        block_limit: int | None = None,
        chain_id: str = "chain0",
        group_id: str = "group0",
        key: bytes = CLIENT_KEY,
    ) -> str:
        limit = block_limit if block_limit is not None else self.call("getBlockNumber") + 500
        tx = build_transaction(
            chain_id=chain_id,
            group_id=group_id,
            block_limit=limit,
            to=to,
            input=data,
            abi=abi,
            nonce=nonce,
        )
        return transaction_hex(sign_transaction(tx, key, SUITE))

    def send(self, to: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "sendTransaction", self.tx_hex(to, data, **kwargs), False
        )
        return result

    def deploy(self, name: str) -> str:
        return self.deploy_with_nonce(name, None)

    def deploy_with_nonce(self, name: str, nonce: str | None) -> str:
        art = artifact(name)
        code = bytes.fromhex(art["bytecode"][2:])
        kwargs: dict[str, Any] = {} if nonce is None else {"nonce": nonce, "block_limit": 500}
        receipt = self.send("", code, abi=json.dumps(art["abi"]), **kwargs)
        assert receipt["status"] == 0, receipt
        return str(receipt["contractAddress"])


MESSENGER_EVENT: dict[str, Any] = next(
    e for e in artifact("Messenger")["abi"] if e["type"] == "event"
)


def evidence_bundle(
    node: DevNode, client: RpcClient, tx_hash: str, *, call: dict[str, str] | None = None
) -> dict[str, Any]:
    """The evidence bundle of ``tx_hash`` as an adapter fetches it from the devnode, with the
    devnode's sealers, ids and the Messenger event as trust; the pinned call is ``call``, or
    the transaction's own ``to`` and ``input``. No ``log_index``: callers add it."""
    receipt = client.call("getTransactionReceipt", tx_hash, True)
    transaction = client.call("getTransaction", tx_hash, True)
    return {
        "format": "interop-evidence/1",
        "family": "fisco-bcos-3",
        "chain_id": "devnode",
        "crypto": "keccak256-secp256k1",
        "block": client.call("getBlockByNumber", receipt["blockNumber"], True, True),
        "receipt": receipt,
        "proof": receipt["txReceiptProof"],
        "transaction": transaction,
        "trust": {
            "sealers": [{"node_id": k.public_key.hex(), "weight": 1} for k in node.sealer_keys],
            "chainID": "chain0",
            "groupID": "group0",
            "call": call or {"to": transaction["to"], "input": transaction["input"]},
            "event": MESSENGER_EVENT,
        },
    }


def send_block(
    node: DevNode, client: RpcClient, to: str, values: list[int]
) -> list[dict[str, Any]]:
    """Send one ``set(v)`` per value while sealing is paused, so all land in one block."""
    node.pause()
    try:
        txs = [client.tx_hex(to, selector("set(uint256)") + uint(v)) for v in values]
        with ThreadPoolExecutor(max_workers=min(len(txs), 64)) as pool:
            futures = [
                pool.submit(RpcClient(node.url).call, "sendTransaction", tx, False) for tx in txs
            ]
            _wait_pending(client, len(txs))
            node.resume()
            receipts = [f.result(timeout=60) for f in futures]
    finally:
        node.resume()
    numbers = {r["blockNumber"] for r in receipts}
    assert len(numbers) == 1, f"expected one block, got {numbers}"
    return receipts


def _wait_pending(client: RpcClient, count: int) -> None:
    deadline = time.monotonic() + 30
    while client.call("getPendingTxSize") < count:
        assert time.monotonic() < deadline, "transactions did not reach the pool"
        time.sleep(0.01)
