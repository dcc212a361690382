"""The FISCO transaction re-split forgery, performed on our own devnode, is rejected.

A FISCO BCOS 3.x transaction hash is the plain concatenation
``be_i32(version) ‖ chainID ‖ groupID ‖ be_i64(blockLimit) ‖ nonce ‖ to ‖ input ‖ abi`` and a
receipt hash concatenates output and logs, neither with lengths. Each test below sends ordinary
transactions to a contract ``A`` that returns (or reverts with) bytes shaped like a log of the
victim gateway, then presents the genuine transaction and receipt re-split so that they claim
a ``seal()`` call to the victim and one log from it. The tests first assert that both re-split
hashes equal the genuine ones (so every proof and signature still holds) and then that the
verifier refuses the bundle, naming the rule that forces the boundary.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode

from devnet.fisco.node import DevNode
from tests.integration.devnet.client import RpcClient, evidence_bundle, selector, uint
from verifier.errors import MalformedEvidence, VerificationError
from verifier.evidence import verify_bundle
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import compute_transaction_hash
from verifier.hashing import keccak256

pytestmark = pytest.mark.integration

VICTIM = "5e5e" + "a1" * 18
"""The victim gateway's address (40 lowercase hex digits); it needs no code at all."""
SEAL = selector("seal()")
TOPIC0 = keccak256(b"CrossChainMessage(uint64,string,bytes)")


def _log_bytes(address40: str, seq: int) -> bytes:
    """What the receipt hash covers for one log: address text ‖ topics ‖ data."""
    data = abi_encode(["string", "bytes"], ["victim-chain", b"mint 1000000 to mallory"])
    return address40.encode() + TOPIC0 + uint(seq) + data


def _log_shaped(client: RpcClient, owner_of_log: str | None, seq: int) -> str:
    """Deploy LogShaped loaded with a log of ``owner_of_log`` (None: of the contract itself)."""
    address = str(client.deploy("LogShaped")).lower()
    emitter = address[2:] if owner_of_log is None else owner_of_log
    load = selector("load(bytes)") + abi_encode(["bytes"], [_log_bytes(emitter, seq)])
    assert client.send(address, load)["status"] == 0
    return address


@pytest.fixture(name="attacker", scope="module")
def _attacker(client: RpcClient) -> str:
    """Contract A: returns the victim's log bytes, whatever it is called with."""
    return _log_shaped(client, VICTIM, 7)[2:]


def _genuine(node: DevNode, client: RpcClient, receipt: dict[str, Any]) -> dict[str, Any]:
    """The honest bundle of ``receipt``'s transaction, pinned to a ``seal()`` of the victim."""
    call = {"to": "0x" + VICTIM, "input": "0x" + SEAL.hex()}
    return evidence_bundle(node, client, receipt["transactionHash"], call=call)


def _forge(bundle: dict[str, Any], tx_fields: dict[str, Any]) -> dict[str, Any]:
    """Re-split the genuine transaction into ``tx_fields`` and the genuine receipt's output
    into no output plus one log; assert that both hashes are unchanged."""
    forged = copy.deepcopy(bundle)
    tx = forged["transaction"]
    genuine_tx_hash = compute_transaction_hash(tx, keccak256, nonce_encoding="hex")
    tx.update(tx_fields)
    assert compute_transaction_hash(tx, keccak256, nonce_encoding="hex") == genuine_tx_hash
    receipt = forged["receipt"]
    genuine_receipt_hash = compute_receipt_hash(receipt, keccak256)
    blob = bytes.fromhex(receipt["output"][2:])
    receipt["output"] = "0x"
    receipt["logEntries"] = [
        {
            "address": blob[:40].decode(),
            "topics": ["0x" + blob[40:72].hex(), "0x" + blob[72:104].hex()],
            "data": "0x" + blob[104:].hex(),
        }
    ]
    assert compute_receipt_hash(receipt, keccak256) == genuine_receipt_hash
    forged["log_index"] = 0
    return forged


def _hex_text(text: bytes) -> str:
    return text.hex()  # the JSON nonce form of >= 3.3 nodes: hex of the raw bytes


def _refused(bundle: dict[str, Any], check: str, rule: str) -> None:
    with pytest.raises(VerificationError) as info:
        verify_bundle(bundle)
    assert info.value.check == check, info.value
    assert rule in str(info.value), info.value


def test_victim_in_calldata_with_0x(node: DevNode, client: RpcClient, attacker: str) -> None:
    """nonce' = nonce ‖ "0x"+A, to' = "0x"+victim, input' = seal(): the nonce rule refuses."""
    receipt = client.send("0x" + attacker, b"0x" + VICTIM.encode() + SEAL, nonce="12345")
    assert receipt["status"] == 0
    bundle = _genuine(node, client, receipt)
    assert verify_bundle(bundle).log is None  # the genuine receipt itself is fine
    forged = _forge(
        bundle,
        {
            "nonce": _hex_text(b"12345" + b"0x" + attacker.encode()),
            "to": "0x" + VICTIM,
            "input": "0x" + SEAL.hex(),
        },
    )
    _refused(forged, "transaction_binding", "transaction.nonce")


def test_bare_victim_in_calldata(node: DevNode, client: RpcClient, attacker: str) -> None:
    """The victim's bare 40 hex digits (which a node accepts as `to`) after the nonce."""
    receipt = client.send("0x" + attacker, VICTIM.encode() + SEAL, nonce="23456")
    bundle = _genuine(node, client, receipt)
    forged = _forge(
        bundle,
        {
            "nonce": _hex_text(b"23456" + b"0x" + attacker.encode()),
            "to": VICTIM,
            "input": "0x" + SEAL.hex(),
        },
    )
    _refused(forged, "transaction_binding", "transaction.nonce")


def test_group_id_shift(node: DevNode, client: RpcClient, attacker: str) -> None:
    """groupID' = groupID ‖ blockLimit ‖ nonce ‖ "0x"+A, with blockLimit', a digits-only nonce'
    and to' taken from the calldata: every field but groupID looks honest."""
    block_limit = 0x240  # its 8 bytes are valid UTF-8, so groupID' is a printable JSON string
    shifted_limit, shifted_nonce = 0x241, b"777"
    calldata = shifted_limit.to_bytes(8, "big") + shifted_nonce + b"0x" + VICTIM.encode() + SEAL
    receipt = client.send("0x" + attacker, calldata, nonce="34567", block_limit=block_limit)
    bundle = _genuine(node, client, receipt)
    group = b"group0" + block_limit.to_bytes(8, "big") + b"34567" + b"0x" + attacker.encode()
    forged = _forge(
        bundle,
        {
            "groupID": group.decode(),
            "blockLimit": shifted_limit,
            "nonce": _hex_text(shifted_nonce),
            "to": "0x" + VICTIM,
            "input": "0x" + SEAL.hex(),
        },
    )
    _refused(forged, "transaction_binding", "transaction.groupID")


def test_nonce_hiding_the_victim(node: DevNode, client: RpcClient, attacker: str) -> None:
    """A real nonce "1"+"0x"+victim (nodes accept any nonce text) re-split as nonce' = "1",
    to' = victim: the digits rule holds, so only the pinned input stops it; and a pin that
    itself holds an address's text is refused as a pin."""
    nonce = b"1" + b"0x" + VICTIM.encode()
    receipt = client.send("0x" + attacker, SEAL, nonce=nonce.decode())
    bundle = _genuine(node, client, receipt)
    fields = {
        "nonce": _hex_text(b"1"),
        "to": "0x" + VICTIM,
        "input": "0x" + (b"0x" + attacker.encode() + SEAL).hex(),
    }
    forged = _forge(bundle, fields)
    _refused(forged, "transaction_binding", "transaction.input")
    forged["trust"]["call"]["input"] = fields["input"]  # pinning what the attacker presents
    with pytest.raises(MalformedEvidence, match=r"trust\.call\.input"):
        verify_bundle(forged)


def test_failed_receipt_is_never_a_log(node: DevNode, client: RpcClient) -> None:
    """A revert whose revert data is log-shaped, naming the called contract itself, re-splits
    into "no output + one log" with the same hash: the status rule refuses it."""
    reverter = _log_shaped(client, None, 9)
    call = selector("revertWithBlob()")
    receipt = client.send(reverter, call, nonce="45678")
    assert receipt["status"] != 0, receipt
    bundle = _genuine(node, client, receipt)
    bundle["trust"]["call"] = {"to": reverter, "input": "0x" + call.hex()}
    forged = _forge(bundle, {})
    assert forged["receipt"]["logEntries"][0]["address"] == reverter[2:]
    _refused(forged, "receipt_status", "status")


def test_honest_seal_like_call_verifies_in_both_nonce_forms(
    node: DevNode, client: RpcClient
) -> None:
    """An honest single-log call with a decimal nonce and canonical `to` verifies, whether the
    node printed the nonce as hex of its bytes (>= 3.3) or as its decimal text (<= 3.2)."""
    messenger = client.deploy("Messenger").lower()
    calldata = selector("send(string,bytes)") + abi_encode(
        ["string", "bytes"], ["anvil-demo", b"honest payload"]
    )
    receipt = client.send(messenger, calldata, nonce="9876543210")
    bundle = _genuine(node, client, receipt)
    bundle["log_index"] = 0
    bundle["trust"]["call"] = {"to": messenger, "input": "0x" + calldata.hex()}
    evidence = verify_bundle(bundle)
    assert evidence.event is not None
    assert dict(evidence.event.args)["payload"] == b"honest payload"
    assert bytes.fromhex(bundle["transaction"]["nonce"]) == b"9876543210"
    bundle["transaction"]["nonce"] = "9876543210"
    assert verify_bundle(bundle).event == evidence.event
