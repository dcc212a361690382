"""FISCO logs are bound to their emitter: re-splitting the receipt hash's bytes is rejected.

A FISCO 3.x receipt hash concatenates output and logs without lengths, so the same hash fits
other splits. These tests build genuine signed blocks (our own sealer keys) and then present
their receipts re-split; the verifier must refuse each forged layout.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devnet.examples import FISCO_NUMBER, fisco_bundle, fisco_receipts, fisco_transactions
from verifier.errors import MalformedEvidence, ProofMismatch, VerificationError
from verifier.evidence import verify_bundle
from verifier.fisco.receipt import compute_receipt_hash
from verifier.hashing import CryptoSuite, keccak256

SUITE = CryptoSuite.KECCAK256_SECP256K1
BRIDGE = "b12d9e00" + "00" * 16
ATTACKER = "a77ac4e2" + "11" * 16
TOPIC0 = keccak256(b"CrossChainMessage(uint64,string,bytes)")


def _txs_with_attacker_call(index: int) -> list[dict[str, Any]]:
    """Four signed bridge calls, except that call ``index`` goes to the attacker's contract."""
    txs = fisco_transactions(SUITE, "chain-x", BRIDGE, 4)
    txs[index] = fisco_transactions(SUITE, "chain-x", ATTACKER, 4)[index]
    return txs


def _block_with_attacker_output(index: int = 1) -> dict[str, Any]:
    """A genuine block whose tx ``index`` called the attacker's contract, which returned
    bytes shaped like a bridge log (the bridge address as text, two topics, data)."""
    txs = _txs_with_attacker_call(index)
    receipts = fisco_receipts(keccak256, FISCO_NUMBER, BRIDGE, txs)
    crafted = BRIDGE.encode() + TOPIC0 + (999).to_bytes(32, "big") + b"mint 1000000 to mallory"
    receipts[index] |= {"logEntries": [], "output": "0x" + crafted.hex(), "to": txs[index]["to"]}
    receipts[index]["hash"] = "0x" + compute_receipt_hash(receipts[index], keccak256).hex()
    bundle = fisco_bundle(SUITE, "chain-x", txs, receipts, index=index)
    del bundle["log_index"]
    return bundle


def _resplit_as_bridge_log(bundle: dict[str, Any]) -> dict[str, Any]:
    forged = copy.deepcopy(bundle)
    crafted = bytes.fromhex(forged["receipt"]["output"][2:])
    forged["receipt"]["output"] = "0x"
    forged["receipt"]["logEntries"] = [
        {
            "address": crafted[:40].decode(),
            "topics": ["0x" + crafted[40:72].hex(), "0x" + crafted[72:104].hex()],
            "data": "0x" + crafted[104:].hex(),
        }
    ]
    forged["receipt"].pop("hash")
    forged["log_index"] = 0
    return forged


def test_genuine_receipt_verifies_without_a_log() -> None:
    """The attacker's real receipt is committed: as plain receipt evidence it verifies."""
    assert verify_bundle(_block_with_attacker_output()).log is None


def test_output_resplit_as_a_bridge_log_is_rejected() -> None:
    """The same bytes presented as a log "from" the bridge fail: the tx called another contract."""
    forged = _resplit_as_bridge_log(_block_with_attacker_output())
    with pytest.raises(VerificationError, match="not the called contract") as info:
        verify_bundle(forged)
    assert info.value.check == "log_binding"


def test_resplit_with_tx_of_another_position_is_rejected() -> None:
    """Pairing the forged receipt with a genuine bridge call elsewhere in the block fails."""
    bundle = _block_with_attacker_output(index=1)
    other = fisco_bundle_at(bundle, 0)
    forged = _resplit_as_bridge_log(bundle)
    forged["transaction"] = other["transaction"]
    forged["receipt"].pop("transactionHash")
    with pytest.raises(ProofMismatch) as info:
        verify_bundle(forged)
    assert info.value.check == "receipt_transaction"


def fisco_bundle_at(bundle: dict[str, Any], index: int) -> dict[str, Any]:
    """Rebuild the same block's bundle for another position (same txs and receipts)."""
    txs = _txs_with_attacker_call(1)
    receipts = fisco_receipts(keccak256, FISCO_NUMBER, BRIDGE, txs)
    receipts[1] = bundle["receipt"]
    return fisco_bundle(SUITE, "chain-x", txs, receipts, index=index)


def test_log_index_requires_the_transaction() -> None:
    """A FISCO bundle naming a log must carry the transaction that binds it."""
    txs = fisco_transactions(SUITE, "chain-x", BRIDGE, 3)
    bundle = fisco_bundle(
        SUITE, "chain-x", txs, fisco_receipts(keccak256, 42, BRIDGE, txs), index=0
    )
    assert verify_bundle(bundle).log is not None
    del bundle["transaction"]
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.check == "transaction"


@pytest.mark.parametrize("change", ["output", "two-logs", "version"])
def test_ambiguous_layouts_are_refused(change: str) -> None:
    """Output, a second log or a version-1 receipt leave the split open: no log is returned."""
    txs = fisco_transactions(SUITE, "chain-x", BRIDGE, 3)
    receipts = fisco_receipts(keccak256, 42, BRIDGE, txs)
    receipt = receipts[0]
    if change == "output":
        receipt["output"] = "0x01"
    elif change == "two-logs":
        receipt["logEntries"] = receipt["logEntries"] * 2
    else:
        receipt |= {"version": 1, "effectiveGasPrice": "0x0"}
    receipt["hash"] = "0x" + compute_receipt_hash(receipt, keccak256).hex()
    bundle = fisco_bundle(SUITE, "chain-x", txs, receipts, index=0)
    with pytest.raises(VerificationError) as info:
        verify_bundle(bundle)
    assert info.value.check == "log_binding"


def test_tampered_transaction_is_rejected() -> None:
    """Changing the bound transaction's target breaks its hash or its proof."""
    txs = fisco_transactions(SUITE, "chain-x", BRIDGE, 3)
    bundle = fisco_bundle(
        SUITE, "chain-x", txs, fisco_receipts(keccak256, 42, BRIDGE, txs), index=0
    )
    bundle["transaction"]["to"] = "0x" + ATTACKER
    bundle["transaction"].pop("hash")
    bundle["receipt"].pop("transactionHash")
    with pytest.raises(ProofMismatch) as info:
        verify_bundle(bundle)
    assert info.value.check == "transaction_proof"
