"""A devnode receipt, packed as an evidence bundle, verifies with `gateway verify`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devnet.fisco.node import DevNode
from tests.integration.devnet.client import RpcClient, evidence_bundle, selector, uint
from verifier.errors import QuorumNotReached
from verifier.evidence import verify_bundle
from verifier.hashing import keccak256

pytestmark = pytest.mark.integration


def _bundle(node: DevNode, client: RpcClient, tx_hash: str) -> dict[str, Any]:
    return evidence_bundle(node, client, tx_hash) | {"log_index": 0}


def _send_call(dst: str, payload: bytes) -> bytes:
    """ABI calldata of Messenger.send(string,bytes)."""

    def dyn(b: bytes) -> bytes:
        return uint(len(b)) + b + b"\0" * (-len(b) % 32)

    head = dyn(dst.encode())
    return selector("send(string,bytes)") + uint(64) + uint(64 + len(head)) + head + dyn(payload)


def test_devnode_receipt_bundle_verifies(
    node: DevNode, client: RpcClient, store_address: str, tmp_path: Path
) -> None:
    """A Messenger event in a block of 8 transactions verifies end to end, log decoded."""
    messenger = client.deploy("Messenger").lower()
    txs = [client.tx_hex(store_address, selector("set(uint256)") + uint(v)) for v in range(7)]
    txs.insert(5, client.tx_hex(messenger, _send_call("anvil-demo", b"cross-chain payload")))
    node.pause()
    try:
        with ThreadPoolExecutor(max_workers=len(txs)) as pool:
            futures = [
                pool.submit(RpcClient(node.url).call, "sendTransaction", tx, False) for tx in txs
            ]
            while client.call("getPendingTxSize") < len(txs):
                time.sleep(0.01)
            node.resume()
            receipts = [f.result(timeout=60) for f in futures]
    finally:
        node.resume()
    assert len({r["blockNumber"] for r in receipts}) == 1
    bundle = _bundle(node, client, receipts[5]["transactionHash"])
    assert len(bundle["proof"]) > 1
    evidence = verify_bundle(bundle)
    assert evidence.log is not None
    assert evidence.log.topics[0] == keccak256(b"CrossChainMessage(uint64,string,bytes)")
    assert "0x" + evidence.log.address.hex() == messenger.lower()
    assert b"cross-chain payload" in evidence.log.data

    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    gateway = Path(sys.executable).parent / "gateway"
    proc = subprocess.run(
        [str(gateway), "verify", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["block_hash"] == bundle["block"]["hash"]


def test_devnode_bundle_with_other_sealers_is_rejected(
    node: DevNode, client: RpcClient, store_address: str
) -> None:
    """The same evidence judged against another chain's sealer set fails: the signatures are
    valid but none is from a trusted sealer, so the trusted weight is 0."""
    receipt = client.send(store_address, selector("set(uint256)") + uint(99))
    bundle = _bundle(node, client, receipt["transactionHash"])
    bundle["trust"]["sealers"] = [{"node_id": "ab" * 64, "weight": 1}]
    with pytest.raises(QuorumNotReached, match="have 0, need 1"):
        verify_bundle(bundle)
