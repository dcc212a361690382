"""A devnode receipt, packed as an evidence bundle, verifies with `gateway verify`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet.fisco.node import DevNode
from tests.integration.devnet.client import RpcClient, selector, send_block, uint
from verifier.errors import UnknownSigner
from verifier.evidence import verify_bundle
from verifier.hashing import keccak256

pytestmark = pytest.mark.integration


def _bundle(node: DevNode, client: RpcClient, tx_hash: str) -> dict[str, Any]:
    receipt = client.call("getTransactionReceipt", tx_hash, True)
    block = client.call("getBlockByNumber", receipt["blockNumber"], True, True)
    return {
        "format": "interop-evidence/1",
        "family": "fisco-bcos-3",
        "chain_id": "devnode",
        "crypto": "keccak256-secp256k1",
        "block": block,
        "receipt": receipt,
        "proof": receipt["txReceiptProof"],
        "log_index": 0,
        "trust": {
            "sealers": [{"node_id": k.public_key.hex(), "weight": 1} for k in node.sealer_keys]
        },
    }


def test_devnode_receipt_bundle_verifies(
    node: DevNode, client: RpcClient, store_address: str, tmp_path: Path
) -> None:
    """A ValueSet event from a 7-transaction devnode block verifies end to end, log decoded."""
    receipts = send_block(node, client, store_address, [11, 12, 13, 14, 15, 16, 17])
    target = receipts[4]
    bundle = _bundle(node, client, target["transactionHash"])
    assert len(bundle["proof"]) > 1
    evidence = verify_bundle(bundle)
    assert evidence.log is not None
    assert evidence.log.topics[0] == keccak256(b"ValueSet(address,uint256,uint256)")
    assert evidence.log.topics[2] == uint(15)
    assert "0x" + evidence.log.address.hex() == store_address.lower()

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
    """The same evidence judged against another chain's sealer set fails the signer check."""
    receipt = client.send(store_address, selector("set(uint256)") + uint(99))
    bundle = _bundle(node, client, receipt["transactionHash"])
    bundle["trust"]["sealers"] = [{"node_id": "ab" * 64, "weight": 1}]
    with pytest.raises(UnknownSigner, match="not in the trusted"):
        verify_bundle(bundle)
