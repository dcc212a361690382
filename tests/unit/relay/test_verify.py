"""FactVerifier on synthetic EVM blocks (real headers, receipt tries and proofs built here) with
a fake trust store: order of checks, what is rejected with which check, and what is retryable.
The same attacks on real chains are in tests/integration/relay/test_verify_attacks.py."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
from eth_abi.abi import encode

from adapters.evm.proofs import build_block_receipts
from relay import verify as relay_verify
from relay.trust import EvidenceRejected, EvmTrustConfig, FiscoTrustConfig, NotYetTrusted, TrustRoot
from relay.verify import FactVerifier, evidence_digest
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle
from verifier.evm.header import compute_block_hash
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.hashing import CryptoSuite, keccak256, sm3
from verifier.merkle.mpt import compute_mpt_root
from verifier.messages import (
    DeliveryResult,
    DeliveryStatus,
    Message,
    message_id,
    result_hash,
)
from verifier.types import Family

CHAIN, DST = "evm-src", "evm-dst"
GATEWAY = bytes.fromhex("61" * 20)
DST_GATEWAY = bytes.fromhex("62" * 20)
FAKE = bytes.fromhex("66" * 20)
SENT_TOPIC = keccak256(b"MessageSent(bytes32,string,string,uint64,address,address,bytes,uint64)")
DELIVERED_TOPIC = keccak256(b"MessageDelivered(bytes32,bytes32,string,uint8,bytes)")


def message(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "src_chain": CHAIN,
        "src_gateway": GATEWAY,
        "dst_chain": DST,
        "nonce": 7,
        "sender": bytes.fromhex("aa" * 20),
        "receiver": bytes.fromhex("bb" * 20),
        "payload": b"hello",
        "timeout": 1_900_000_000,
    }
    values.update(changes)
    return Message(**values)


def sent_log(m: Message, *, address: bytes = GATEWAY, mid: bytes | None = None) -> dict[str, Any]:
    data = encode(
        ["string", "string", "uint64", "address", "address", "bytes", "uint64"],
        [m.src_chain, m.dst_chain, m.nonce, m.sender, m.receiver, m.payload, m.timeout],
    )
    mid = mid if mid is not None else message_id(m, keccak256)
    return _log(address, [SENT_TOPIC, mid], data)


def delivered_log(r: DeliveryResult, src_chain: str, *, address: bytes) -> dict[str, Any]:
    data = encode(["string", "uint8", "bytes"], [src_chain, int(r.status), r.result])
    return _log(address, [DELIVERED_TOPIC, r.id, result_hash(r, keccak256)], data)


def _log(address: bytes, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
    return {
        "address": "0x" + address.hex(),
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
    }


def bundle(
    logs: Sequence[dict[str, Any]], *, number: int = 42, status: str = "0x1"
) -> dict[str, Any]:
    """A one-receipt London block whose receipt holds ``logs``; the bundle proves log 0."""
    receipt: dict[str, Any] = {
        "type": "0x2",
        "status": status,
        "cumulativeGasUsed": "0x5208",
        "logsBloom": "0x" + "00" * 256,
        "logs": list(logs),
        "transactionIndex": "0x0",
        "transactionHash": "0x" + "77" * 32,
    }
    root = compute_mpt_root({receipt_key(0): encode_receipt(receipt)})
    header: dict[str, Any] = {
        "parentHash": "0x" + "01" * 32,
        "sha3Uncles": "0x" + "02" * 32,
        "miner": "0x" + "03" * 20,
        "stateRoot": "0x" + "04" * 32,
        "transactionsRoot": "0x" + "05" * 32,
        "receiptsRoot": "0x" + root.hex(),
        "logsBloom": "0x" + "00" * 256,
        "difficulty": "0x0",
        "number": hex(number),
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x5208",
        "timestamp": "0x65000000",
        "extraData": "0x",
        "mixHash": "0x" + "06" * 32,
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x7",
        "transactions": ["0x" + "77" * 32],
    }
    header["hash"] = "0x" + compute_block_hash(header).hex()
    receipt["blockHash"] = header["hash"]
    receipt["blockNumber"] = header["number"]
    block = build_block_receipts(header, [receipt], chain=CHAIN, endpoint="test")
    return block.bundle(0, 0, chain=CHAIN, event={"type": "event", "name": "Attacker"})


class FakeTrust:
    """Vouches for one hash per (chain, height), or raises what it was told to."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[str, int], str] = {}
        self.error: Exception | None = None
        self.asked: list[tuple[str, int, str]] = []

    def vouch(self, chain: str, b: dict[str, Any]) -> None:
        self.hashes[(chain, int(b["block"]["number"], 16))] = b["block"]["hash"]

    async def root_for(self, chain: str, *, height: int, block_hash: str) -> TrustRoot:
        self.asked.append((chain, height, block_hash))
        if self.error is not None:
            raise self.error
        vouched = self.hashes.get((chain, height), "0x" + "ee" * 32)
        return TrustRoot(chain, Family.EVM, {"block_hash": vouched}, {"block_hash": vouched})


def cfg(chain: str, gateway: bytes) -> EvmTrustConfig:
    return EvmTrustConfig(
        chain=chain,
        gateway=gateway,
        chain_id=1,
        endpoints=("http://127.0.0.1:1",),
        quorum=1,
        confirmations=1,
        finality_tag=None,
    )


@pytest.fixture(name="trust")
def _trust() -> FakeTrust:
    return FakeTrust()


@pytest.fixture(name="verifier")
def _verifier(trust: FakeTrust) -> FactVerifier:
    return FactVerifier(trust, {CHAIN: cfg(CHAIN, GATEWAY), DST: cfg(DST, DST_GATEWAY)})


async def rejected(coro: Any, check: str) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as caught:
        await coro
    assert caught.value.check == check, caught.value
    return caught.value


async def test_an_honest_message_verifies(verifier: FactVerifier, trust: FakeTrust) -> None:
    """The proven MessageSent of the configured gateway, final by the trust store's word."""
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    fact = await verifier.verify_message(m, message_id(m, keccak256), b)
    assert (fact.kind, fact.chain, fact.height) == ("message_sent", CHAIN, 42)
    assert fact.block_hash == b["block"]["hash"]
    assert fact.evidence_digest == evidence_digest(b)
    assert fact.trust == {"block_hash": b["block"]["hash"]}
    assert trust.asked == [(CHAIN, 42, b["block"]["hash"])]


async def test_the_relied_trust_lets_an_auditor_verify_the_bundle_again(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    """The trust a fact names is exactly what the bundle verifies under, offline, and pins the
    event: the audit trail records it so that an export can be re-verified by anyone."""
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    fact = await verifier.verify_message(m, message_id(m, keccak256), b)
    assert fact.relied_trust["block_hash"] == b["block"]["hash"]
    assert fact.relied_trust["event"]["name"] == "MessageSent"
    again = verify_bundle({**b, "trust": fact.relied_trust})
    assert again.event is not None
    assert again.event.signature.startswith("MessageSent(")
    other = copy.deepcopy(fact.relied_trust)
    other["block_hash"] = "0x" + "00" * 32
    with pytest.raises(VerificationError) as info:
        verify_bundle({**b, "trust": other})
    assert info.value.check == "header_trust"


async def test_the_bundles_own_trust_is_replaced(verifier: FactVerifier, trust: FakeTrust) -> None:
    """The bundle vouches for its own header; the trust store does not: rejected."""
    m = message()
    b = bundle([sent_log(m)])
    assert b["trust"]["block_hash"] == b["block"]["hash"]
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "header_trust")


async def test_a_look_alike_contracts_log_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    """A MessageSent with the right id and body, emitted by another contract."""
    m = message()
    b = bundle([sent_log(m, address=FAKE)])
    trust.vouch(CHAIN, b)
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "gateway")


async def test_a_message_naming_another_source_gateway_is_refused_before_any_lookup(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message(src_gateway=FAKE)
    b = bundle([sent_log(m, address=FAKE)])
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "gateway")
    assert trust.asked == []


async def test_a_body_that_does_not_hash_to_the_id_is_refused_before_any_lookup(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    other = message(payload=b"changed")
    await rejected(verifier.verify_message(other, message_id(m, keccak256), b), "message_id")
    assert trust.asked == []


async def test_evidence_for_another_message_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    """A genuine proof of message A presented for message B."""
    a, other = message(), message(nonce=8)
    b = bundle([sent_log(a)])
    trust.vouch(CHAIN, b)
    await rejected(verifier.verify_message(other, message_id(other, keccak256), b), "event_body")


async def test_a_log_whose_fields_differ_from_the_body_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    """The log names the id but carries another payload (the contract never emits this)."""
    m = message()
    b = bundle([sent_log(message(payload=b"other"), mid=message_id(m, keccak256))])
    trust.vouch(CHAIN, b)
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "event_body")


async def test_a_tampered_proof_is_rejected_with_the_verifiers_check(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    b["receipt"]["logs"][0]["data"] = b["receipt"]["logs"][0]["data"][:-2] + "ff"
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "receipt_proof")
    assert trust.asked == [], "a bundle that fails on its own costs no endpoint calls"


async def test_a_failed_receipt_is_rejected(verifier: FactVerifier, trust: FakeTrust) -> None:
    m = message()
    b = bundle([sent_log(m)], status="0x0")
    trust.vouch(CHAIN, b)
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "receipt_status")


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("family", "fisco-bcos-3", "family"),
        ("crypto", "sm3-sm2", "crypto"),
        ("log_index", None, "log_index"),
    ],
)
async def test_the_envelope_must_be_the_configured_chains(
    verifier: FactVerifier, trust: FakeTrust, field: str, value: Any, check: str
) -> None:
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    b[field] = value
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), check)


async def test_the_bundles_chain_id_is_ignored(verifier: FactVerifier, trust: FakeTrust) -> None:
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    b["chain_id"] = "somebody-else"
    fact = await verifier.verify_message(m, message_id(m, keccak256), b)
    assert fact.chain == CHAIN


async def test_an_unconfigured_source_chain_is_refused(verifier: FactVerifier) -> None:
    m = message(src_chain="nowhere")
    b = bundle([sent_log(m)])
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "chain")


async def test_not_yet_trusted_passes_through_as_retryable(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message()
    trust.error = NotYetTrusted("endpoints disagree", chain=CHAIN, endpoints={"a": "x"})
    with pytest.raises(NotYetTrusted) as caught:
        await verifier.verify_message(m, message_id(m, keccak256), bundle([sent_log(m)]))
    assert caught.value.endpoints == {"a": "x"}


async def test_an_evm_bundle_verified_before_is_not_verified_again_but_its_root_is(
    verifier: FactVerifier, trust: FakeTrust, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway serving both ends sees each bundle twice: the second time verify_bundle is
    skipped, the trust store is still asked, and a hash it no longer vouches for is rejected."""
    runs: list[object] = []

    def counted(document: dict[str, Any]) -> object:
        runs.append(document)
        return verify_bundle(document)

    monkeypatch.setattr(relay_verify, "verify_bundle", counted)
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    await verifier.verify_message(m, message_id(m, keccak256), b)
    await verifier.verify_message(m, message_id(m, keccak256), copy.deepcopy(b))
    assert (len(runs), len(trust.asked)) == (1, 2)
    trust.hashes.clear()
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "header_trust")
    assert (len(runs), len(trust.asked)) == (1, 3)


async def test_the_callers_bundle_is_not_modified(verifier: FactVerifier, trust: FakeTrust) -> None:
    m = message()
    b = bundle([sent_log(m)])
    trust.vouch(CHAIN, b)
    before = copy.deepcopy(b)
    await verifier.verify_message(m, message_id(m, keccak256), b)
    assert b == before


# -- results --------------------------------------------------------------------------------


def result(m: Message, **changes: Any) -> DeliveryResult:
    values: dict[str, Any] = {
        "id": message_id(m, keccak256),
        "dst_chain": DST,
        "dst_gateway": DST_GATEWAY,
        "status": DeliveryStatus.SUCCESS,
        "result": b"ok",
    }
    values.update(changes)
    return DeliveryResult(**values)


async def test_an_honest_result_verifies(verifier: FactVerifier, trust: FakeTrust) -> None:
    m = message()
    r = result(m)
    b = bundle([delivered_log(r, CHAIN, address=DST_GATEWAY)])
    trust.vouch(DST, b)
    fact = await verifier.verify_result(m, r.id, r, b)
    assert (fact.kind, fact.chain, fact.id) == ("delivery_result", DST, r.id)
    assert trust.asked[0][0] == DST


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"dst_chain": CHAIN, "dst_gateway": GATEWAY}, "result_chain"),
        ({"dst_gateway": FAKE}, "gateway"),
        ({"id": b"\x01" * 32}, "result_id"),
    ],
)
async def test_a_result_for_another_chain_gateway_or_message_is_refused(
    verifier: FactVerifier, trust: FakeTrust, changes: dict[str, Any], check: str
) -> None:
    m = message()
    r = result(m, **changes)
    b = bundle([delivered_log(r, CHAIN, address=r.dst_gateway)])
    trust.vouch(DST, b)
    trust.vouch(CHAIN, b)
    await rejected(verifier.verify_result(m, message_id(m, keccak256), r, b), check)
    assert trust.asked == []


async def test_a_result_proven_by_a_look_alike_contract_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message()
    r = result(m)
    b = bundle([delivered_log(r, CHAIN, address=FAKE)])
    trust.vouch(DST, b)
    await rejected(verifier.verify_result(m, r.id, r, b), "gateway")


async def test_a_result_whose_proven_status_differs_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    """The chain recorded FAILED; the peer claims SUCCESS."""
    m = message()
    proven = result(m, status=DeliveryStatus.FAILED, result=b"")
    b = bundle([delivered_log(proven, CHAIN, address=DST_GATEWAY)])
    trust.vouch(DST, b)
    claimed = result(m)
    await rejected(verifier.verify_result(m, claimed.id, claimed, b), "event_body")


async def test_a_result_for_a_message_from_another_source_is_rejected(
    verifier: FactVerifier, trust: FakeTrust
) -> None:
    m = message()
    r = result(m)
    b = bundle([delivered_log(r, "elsewhere", address=DST_GATEWAY)])
    trust.vouch(DST, b)
    await rejected(verifier.verify_result(m, r.id, r, b), "event_body")


async def test_a_sent_log_is_not_a_result(verifier: FactVerifier, trust: FakeTrust) -> None:
    """Evidence of the wrong kind fails strict decoding against MessageDelivered."""
    m = message()
    r = result(m)
    reply = message(src_chain=DST, src_gateway=DST_GATEWAY, dst_chain=CHAIN)
    b = bundle([sent_log(reply, address=DST_GATEWAY)])
    trust.vouch(DST, b)
    await rejected(verifier.verify_result(m, r.id, r, b), "event")


async def test_an_sm_source_chains_id_is_its_sm3_hash(trust: FakeTrust) -> None:
    """Requirement 4: the id is recomputed with the source chain's hash function; a keccak256
    id for a message from an SM3 chain is refused before any trust root is asked for."""
    sm = FiscoTrustConfig(
        chain="fisco-sm",
        crypto=CryptoSuite.SM3_SM2,
        gateway=GATEWAY,
        chain_id="chain0",
        group_id="group0",
        sealers=(("ab" * 64, 1),),
    )
    verifier = FactVerifier(trust, {"fisco-sm": sm})
    m = message(src_chain="fisco-sm")
    b: dict[str, Any] = {"format": "interop-evidence/1", "family": "fisco-bcos-3"}
    b |= {"crypto": "sm3-sm2", "log_index": 0, "block": {}}
    await rejected(verifier.verify_message(m, message_id(m, keccak256), b), "message_id")
    assert trust.asked == []
    with pytest.raises(EvidenceRejected) as caught:  # the id passes; the empty block does not
        await verifier.verify_message(m, message_id(m, sm3), b)
    assert caught.value.check != "message_id"
