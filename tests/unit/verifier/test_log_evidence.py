"""Which logs count as evidence: the rules that force every boundary a hash does not fix.

Built from the project's own builders (devnet/examples.py): genuine blocks signed by our own
sealer keys, then changed the way an attacker or an unlucky honest party would change them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode

from devnet.examples import (
    FISCO_NUMBER,
    evm_example,
    fisco_bundle,
    fisco_receipts,
    fisco_transactions,
)
from verifier.errors import MalformedEvidence, ProofMismatch, VerificationError
from verifier.evidence import verify_bundle
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import compute_transaction_hash
from verifier.hashing import CryptoSuite, keccak256
from verifier.merkle.fisco import compute_merkle_proof

SUITE = CryptoSuite.KECCAK256_SECP256K1
GATEWAY = "9a7e" + "33" * 18
Tx = dict[str, Any]


def _bundle(
    index: int = 0,
    *,
    count: int = 4,
    tx_change: Callable[[Tx], None] | None = None,
    receipts_change: Callable[[list[dict[str, Any]]], None] | None = None,
    own_proof: bool = False,
) -> dict[str, Any]:
    """A signed block of ``count`` gateway calls; bundle the log of call ``index``. The
    transaction at ``index`` is changed by ``tx_change`` (its hash recomputed), the receipts
    by ``receipts_change`` (their hashes recomputed), before the block is built. The receipt
    proof is the node's (for the first equal leaf) unless ``own_proof``: then it is the one an
    adapter builds from all the block's receipts for ``index`` itself."""
    txs = fisco_transactions(SUITE, "chain-x", GATEWAY, count)
    if tx_change is not None:
        tx_change(txs[index])
        txs[index]["hash"] = (
            "0x" + compute_transaction_hash(txs[index], keccak256, nonce_encoding="hex").hex()
        )
    receipts = fisco_receipts(keccak256, FISCO_NUMBER, GATEWAY, txs)
    if receipts_change is not None:
        receipts_change(receipts)
        for r in receipts:
            r["hash"] = "0x" + compute_receipt_hash(r, keccak256).hex()
            r.pop("transactionHash", None)
    bundle = fisco_bundle(SUITE, "chain-x", txs, receipts, index=index)
    if own_proof:
        leaves = [bytes.fromhex(r["hash"][2:]) for r in receipts]
        bundle["proof"] = compute_merkle_proof(leaves, index, keccak256, as_node=False)
    return bundle


def _fails(bundle: dict[str, Any], check: str, text: str = "") -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_bundle(bundle)
    assert info.value.check == check, info.value
    assert text in str(info.value), info.value
    return info.value


def test_honest_call_verifies() -> None:
    evidence = verify_bundle(_bundle())
    assert evidence.receipt_status == 0
    assert evidence.event is not None
    assert evidence.event.args[0] == ("seq", 0)


# --- the transaction's boundaries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("nonce", ("1" * 21).encode().hex(), "transaction.nonce"),
        ("nonce", b"12a".hex(), "transaction.nonce"),
        ("nonce", "", "transaction.nonce"),
        ("to", "0x" + GATEWAY.upper(), "transaction.to"),
        ("to", GATEWAY, "transaction.to"),
        ("chainID", "chain1", "transaction.chainID"),
        ("groupID", "group0\x00", "transaction.groupID"),
        ("abi", "[]", "transaction.abi"),
    ],
)
def test_transaction_fields_outside_the_rules_are_refused(
    field: str, value: str, rule: str
) -> None:
    """Each field whose boundary the hash leaves open must be exactly what the rules allow;
    the pinned call is the genuine transaction's own (to as the gateway, input as sent)."""

    def change(tx: Tx) -> None:
        tx[field] = value

    bundle = _bundle(tx_change=change)
    bundle["trust"]["call"]["to"] = "0x" + GATEWAY
    _fails(bundle, "transaction_binding", rule)


def test_twenty_digit_nonce_is_accepted() -> None:
    def change(tx: Tx) -> None:
        tx["nonce"] = ("9" * 20).encode().hex()

    assert verify_bundle(_bundle(tx_change=change)).log is not None


def test_transaction_version_1_is_refused() -> None:
    def change(tx: Tx) -> None:
        tx.update(
            version=1,
            value="",
            gasPrice="",
            gasLimit=0,
            maxFeePerGas="",
            maxPriorityFeePerGas="",
        )

    _fails(_bundle(tx_change=change), "transaction_binding", "version 1")


def test_input_other_than_the_pinned_call_is_refused() -> None:
    bundle = _bundle()
    bundle["trust"]["call"]["input"] = "0x12345678"
    _fails(bundle, "transaction_binding", "transaction.input")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"to": "0x" + GATEWAY.upper(), "input": "0x12345678"}, "trust.call.to"),
        ({"to": "0x" + GATEWAY, "input": "0x1234"}, "trust.call.input"),
        ({"to": "0x" + GATEWAY, "input": "0x" + (b"f" * 40).hex()}, "trust.call.input"),
    ],
)
def test_pins_that_cannot_fix_the_boundaries_are_refused(call: dict[str, str], field: str) -> None:
    bundle = _bundle()
    bundle["trust"]["call"] = call
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.field == field


@pytest.mark.parametrize("key", ["chainID", "groupID", "call", "event"])
def test_log_evidence_needs_the_whole_binding(key: str) -> None:
    bundle = _bundle()
    del bundle["trust"][key]
    with pytest.raises(MalformedEvidence, match=f"trust.{key}"):
        verify_bundle(bundle)
    bundle = _bundle()
    del bundle["log_index"]
    del bundle["trust"][key]
    assert verify_bundle(bundle).log is None  # a plain receipt needs no binding


# --- the receipt's layout -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"contractAddress": "0x" + "12" * 20}, "contract address"),
        ({"gasUsed": "9" * 19 + "0" * 21}, "int64"),
        ({"gasUsed": str(1 << 63)}, "int64"),
    ],
)
def test_receipt_layouts_that_leave_the_split_open(change: dict[str, str], problem: str) -> None:
    def changed(receipts: list[dict[str, Any]]) -> None:
        receipts[0].update(change)

    _fails(_bundle(receipts_change=changed), "log_binding", problem)


def test_failed_fisco_receipt_is_refused() -> None:
    def changed(receipts: list[dict[str, Any]]) -> None:
        receipts[0]["status"] = 16

    _fails(_bundle(receipts_change=changed), "receipt_status", "status 16")


def test_failed_evm_receipt_with_a_log_is_refused() -> None:
    assert verify_bundle(evm_example()).receipt_status == 1
    _fails(evm_example(proven_status=0), "receipt_status", "status 0")


def test_two_logs_presented_as_one_are_refused_by_the_event() -> None:
    """A receipt with two logs from the gateway, presented as one log whose data carries the
    second log's bytes: same receipt hash, one log from the called contract; only the strict
    event decoding sees the trailing bytes."""

    def two_logs(receipts: list[dict[str, Any]]) -> None:
        receipts[0]["logEntries"] = receipts[0]["logEntries"] + receipts[2]["logEntries"]

    bundle = _bundle(receipts_change=two_logs)
    genuine = compute_receipt_hash(bundle["receipt"], keccak256)
    first, second = bundle["receipt"]["logEntries"]
    tail = second["address"].encode()
    tail += b"".join(bytes.fromhex(t[2:]) for t in second["topics"])
    tail += bytes.fromhex(second["data"][2:])
    merged = dict(first, data=first["data"] + tail.hex())
    bundle["receipt"]["logEntries"] = [merged]
    assert compute_receipt_hash(bundle["receipt"], keccak256) == genuine
    _fails(bundle, "event", "bytes after the encoding")


# --- evidence honest parties cannot lose ----------------------------------------------------


def _twins(first: int, second: int) -> Callable[[list[dict[str, Any]]], None]:
    """Receipt ``second`` becomes identical to receipt ``first`` (an attacker's contract that
    returns the seal's log bytes with the same gasUsed makes such a twin)."""

    def change(receipts: list[dict[str, Any]]) -> None:
        receipts[second] = copy.deepcopy(receipts[first])

    return change


@pytest.mark.parametrize(("first", "second"), [(0, 1), (0, 2), (2, 7), (2, 6)])
def test_twin_receipt_keeps_the_genuine_one_provable(first: int, second: int) -> None:
    """The gateway's call at ``first`` and an attacker's twin at ``second``: the node proves
    the first of the equal leaves; a proof built for the transaction's own index verifies."""
    bundle = _bundle(index=first, count=8, receipts_change=_twins(first, second))
    assert verify_bundle(bundle).log is not None
    # The twin's own transaction (another call) proven at its own position is not a log of
    # the pinned call either: its input differs.
    twin = _bundle(index=second, count=8, receipts_change=_twins(first, second), own_proof=True)
    twin["trust"]["call"] = bundle["trust"]["call"]
    _fails(twin, "transaction_binding", "transaction.input")


def test_later_twin_needs_a_proof_for_its_own_index() -> None:
    """Genuine seal at 4, an attacker's earlier twin at 1: the node's proof (for the first
    equal leaf) does not reach position 4; the adapter's proof for index 4 does."""
    bundle = _bundle(index=4, count=8, receipts_change=_twins(4, 1))
    _fails(bundle, "receipt_transaction")
    bundle = _bundle(index=4, count=8, receipts_change=_twins(4, 1), own_proof=True)
    assert verify_bundle(bundle).log is not None


def test_sibling_twin_is_accepted_with_the_nodes_proof() -> None:
    """Twins at 2 and 3 share a pair: the node's path (for 2) fits both positions."""
    bundle = _bundle(index=3, count=8, receipts_change=_twins(2, 3))
    assert verify_bundle(bundle).log is not None


def test_receipt_from_another_position_still_fails() -> None:
    """Equal leaves widen the positions only where the pair really is equal."""
    bundle = _bundle(index=1, count=8)
    other = _bundle(index=2, count=8)
    bundle["proof"] = other["proof"]
    bundle["receipt"] = other["receipt"]
    with pytest.raises(ProofMismatch) as info:
        verify_bundle(bundle)
    assert info.value.check == "receipt_transaction"


def test_short_to_hidden_in_a_pinned_payload_is_refused() -> None:
    """From an attacker's review: a pin that carries a sender's payload may hide "0x" + 38 hex
    digits, the text of a short `to` that one executor variant reads as a 19-byte address.
    Executed: nonce = N ‖ "0x" ‖ T ‖ I[:j], to = that text, input = the rest; presented: nonce N,
    to T, input I, and A's returned bytes as one log of T. Both hashes hold; P refuses the pin."""
    attacker = bytes.fromhex("a77ac0de" + "5e" * 15) + b"\x00"
    send = keccak256(b"send(string,bytes)")[:4]
    payload = b"ref=0x" + attacker[:19].hex().encode() + b";"
    pinned = send + abi_encode(["string", "bytes"], ["anvil-demo", payload])
    j = pinned.index(b"0x")
    nonce = b"8675309"
    topic0 = keccak256(b"CrossChainMessage(uint64,string,bytes)")
    data = abi_encode(["string", "bytes"], ["victim-chain", b"mint 1000000 to mallory"])
    blob = GATEWAY.encode() + topic0 + (424242).to_bytes(32, "big") + data

    def executed_tx(tx: Tx) -> None:
        tx.update(
            nonce=(nonce + b"0x" + GATEWAY.encode() + pinned[:j]).hex(),
            to=pinned[j : j + 40].decode(),
            input="0x" + pinned[j + 40 :].hex(),
        )

    def executed_receipt(receipts: list[dict[str, Any]]) -> None:
        receipts[1].update(output="0x" + blob.hex(), logEntries=[])

    bundle = _bundle(1, tx_change=executed_tx, receipts_change=executed_receipt)
    tx_hash = compute_transaction_hash(bundle["transaction"], keccak256, nonce_encoding="hex")
    receipt_hash = compute_receipt_hash(bundle["receipt"], keccak256)
    bundle["transaction"].update(nonce=nonce.hex(), to="0x" + GATEWAY, input="0x" + pinned.hex())
    bundle["receipt"].update(
        output="0x",
        logEntries=[
            {
                "address": GATEWAY,
                "topics": ["0x" + blob[40:72].hex(), "0x" + blob[72:104].hex()],
                "data": "0x" + data.hex(),
            }
        ],
    )
    assert compute_transaction_hash(bundle["transaction"], keccak256, nonce_encoding="hex") == (
        tx_hash
    )
    assert compute_receipt_hash(bundle["receipt"], keccak256) == receipt_hash
    bundle["trust"]["call"] = {"to": "0x" + GATEWAY, "input": "0x" + pinned.hex()}
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.field == "trust.call.input"


@pytest.mark.parametrize(("run", "refused"), [(20, False), (21, True)])
def test_pinned_input_hex_runs(run: int, refused: bool) -> None:
    """P: at most 20 consecutive hex digits, so a `to` hidden in the pin leaves at least 10
    address bytes the attacker does not choose (2^80 grinding)."""
    bundle = _bundle()
    bundle["trust"]["call"]["input"] = "0x" + (b"\x12\x34\x56\x78" + b"7" * run + b"g").hex()
    if refused:
        with pytest.raises(MalformedEvidence, match="more than 20"):
            verify_bundle(bundle)
    else:
        _fails(bundle, "transaction_binding", "transaction.input")


def test_log_address_must_be_the_exact_hashed_text() -> None:
    """The log's address is hashed as text: uppercase text of the gateway is another byte
    string, so it is refused even though it names the same 20 bytes."""

    def upper(receipts: list[dict[str, Any]]) -> None:
        receipts[0]["logEntries"][0]["address"] = GATEWAY.upper()

    _fails(_bundle(receipts_change=upper), "log_binding", "not the called contract")


# --- found by mutation testing of verifier/evidence.py --------------------------------------


def test_decimal_nonce_form_verifies_under_a_hex_printing_header() -> None:
    """The header says 3.3 (hex nonce); a node binary <= 3.2 prints the decimal text: the
    second form is tried when the first does not reproduce the proven hash."""
    bundle = _bundle()
    assert verify_bundle(bundle).log is not None
    bundle["transaction"]["nonce"] = bytes.fromhex(bundle["transaction"]["nonce"]).decode()
    assert bundle["transaction"]["nonce"].isdecimal()
    assert verify_bundle(bundle).log is not None


def test_gas_used_at_the_int64_bound_is_accepted() -> None:
    def changed(receipts: list[dict[str, Any]]) -> None:
        receipts[0]["gasUsed"] = str((1 << 63) - 1)

    assert verify_bundle(_bundle(receipts_change=changed)).log is not None


def test_evm_event_is_decoded_when_trusted_and_absent_otherwise() -> None:
    bundle = evm_example()
    evidence = verify_bundle(bundle)
    assert evidence.event is not None
    assert dict(evidence.event.args)["dstChain"] == "fisco-demo"
    del bundle["trust"]["event"]
    assert verify_bundle(bundle).event is None


def test_plain_receipts_carry_no_event() -> None:
    bundle = _bundle()
    del bundle["log_index"]
    evidence = verify_bundle(bundle)
    assert (evidence.log, evidence.event, evidence.receipt_status) == (None, None, 0)


@pytest.mark.parametrize("family", ["evm", "fisco"])
def test_log_index_one_past_the_last_log_is_malformed(family: str) -> None:
    bundle = evm_example() if family == "evm" else _bundle()
    logs = bundle["receipt"]["logs" if family == "evm" else "logEntries"]
    bundle["log_index"] = len(logs)
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.check == "log_index"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"chainID": ""}, "trust.chainID"),
        ({"groupID": ""}, "trust.groupID"),
    ],
)
def test_empty_trusted_ids_are_malformed(change: dict[str, str], field: str) -> None:
    bundle = _bundle()
    bundle["trust"].update(change)
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.field == field


@pytest.mark.parametrize("sealers", ["empty", "duplicate"])
def test_malformed_trusted_sealer_sets(sealers: str) -> None:
    bundle = _bundle()
    listed = bundle["trust"]["sealers"]
    bundle["trust"]["sealers"] = [] if sealers == "empty" else [*listed, listed[0]]
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert (info.value.field or "").startswith("trust.sealers")


def test_a_wrong_receipt_hash_claim_is_refused() -> None:
    """The receipt's stated hash is not trusted, but it must agree with the recomputed one."""
    bundle = _bundle()
    bundle["receipt"]["hash"] = "0x" + "00" * 32
    _fails(bundle, "receipt_hash")
