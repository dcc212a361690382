"""CrossChainGateway on Anvil: ids and hashes agree with verifier.messages, and the attacks of
relay-protocol.md "Security requirements" that the contract must close are performed."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_abi.abi import encode
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from tests.integration.contracts.conftest import (
    ACK_GAS,
    PAYLOAD_CAP,
    RECEIVER_GAS,
    EvmChain,
    artifact,
    decode_words,
    error_selector,
    events,
    message_tuple,
    sent_message,
)
from verifier.hashing import keccak256
from verifier.messages import (
    DeliveryResult,
    DeliveryStatus,
    Message,
    message_id,
    result_hash,
    seal_call_data,
)

pytestmark = pytest.mark.integration
FAR = 2**40  # a timeout far in the future (seconds)


def _addr(contract_or_address: Contract | str) -> bytes:
    text = (
        contract_or_address if isinstance(contract_or_address, str) else contract_or_address.address
    )
    return bytes.fromhex(text[2:])


def _inbound(
    gw: Contract,
    receiver: Contract | str,
    *,
    nonce: int,
    timeout: int = FAR,
    payload: bytes = b"hi",
    dst: str = "chain-a",
) -> tuple[bytes, Message]:
    """A message from a (pretend) chain-b gateway to ``gw``, with its keccak id."""
    m = Message(
        src_chain="chain-b",
        src_gateway=b"\x0b" * 20,
        dst_chain=dst,
        nonce=nonce,
        sender=b"\x5e" * 20,
        receiver=_addr(receiver),
        payload=payload,
        timeout=timeout,
    )
    return message_id(m, keccak256), m


def _deliver(chain: EvmChain, gw: Contract, items: list[tuple[bytes, Message]], **kw: Any) -> Any:
    call = gw.functions.deliverMessages([i for i, _ in items], [message_tuple(m) for _, m in items])
    return chain.tx(call, chain.relayer, **kw)


def _expected_hash(gw: Contract, id_: bytes, status: int, result: bytes) -> bytes:
    r = DeliveryResult(id_, "chain-a", _addr(gw), DeliveryStatus(status), result)
    return result_hash(r, keccak256)


def test_constructor_and_owner(chain: EvmChain) -> None:
    gw = chain.gateway()
    f = gw.functions
    assert f.chainName().call() == "chain-a"
    assert (f.timestampUnitsPerSecond().call(), f.receiverGas().call(), f.ackGas().call()) == (
        1,
        RECEIVER_GAS,
        ACK_GAS,
    )
    assert f.owner().call() == chain.owner
    assert f.isRelayer(chain.relayer).call()
    assert f.maxPayload("chain-b").call() == PAYLOAD_CAP
    assert f.maxPayload("chain-x").call() == 0
    assert f.sealCount().call() == 0
    assert f.pending().call() == [0, 0]
    for bad in ("", "Chain", "-a", "a_b", "a" * 33, "a b"):
        chain.reverts(f.setDestination(bad, 1), chain.owner, "InvalidChainName()")
    f.setDestination("a" * 32, 1).call({"from": chain.owner})
    f.setDestination("0-", 1).call({"from": chain.owner})
    chain.reverts(f.setDestination("chain-c", 65537), chain.owner, "InvalidParameter()")
    for call in (
        f.addRelayer(chain.stranger),
        f.removeRelayer(chain.relayer),
        f.setDestination("chain-c", 1),
        f.transferOwnership(chain.stranger),
    ):
        chain.reverts(call, chain.stranger, "NotOwner()")
    chain.tx(f.transferOwnership(chain.user), chain.owner)
    assert f.owner().call() == chain.user
    chain.reverts(f.addRelayer(chain.stranger), chain.owner, "NotOwner()")
    for bad in ("", "UPPER", "x" * 33):
        factory = chain.w3.eth.contract(abi=gw.abi, bytecode=_bytecode())
        with pytest.raises(Exception, match="0x"):
            factory.constructor(bad, 1, 1, 1).transact({"from": chain.owner})


def _bytecode() -> str:
    return str(artifact("CrossChainGateway")["bytecode"])


def test_send_from_an_account_matches_python(chain: EvmChain) -> None:
    gw = chain.gateway()
    f = gw.functions
    receiver = Web3.to_checksum_address("0x" + "77" * 20)
    receipt = chain.tx(f.sendMessage("chain-b", receiver, b"\x01\x02", 12345), chain.user)
    (ev,) = events(receipt, gw.address, "MessageSent")
    m = sent_message(ev, gw.address)
    assert (m.src_chain, m.dst_chain, m.nonce, m.sender, m.payload, m.timeout) == (
        "chain-a",
        "chain-b",
        1,
        _addr(chain.user),
        b"\x01\x02",
        12345,
    )
    assert ev["id"] == message_id(m, keccak256)
    assert f.sentState(ev["id"]).call() == 1
    assert f.deliveryStatus(ev["id"]).call() == 0
    assert f.nextNonce("chain-b").call() == 2
    assert f.nextNonce("chain-a").call() == 1
    assert f.pending().call() == [1, 0]
    chain.reverts(f.sendMessage("chain-x", receiver, b"", 1), chain.user, "UnknownDestination()")
    chain.reverts(f.sendMessage("chain-b", receiver, b"", 0), chain.user, "ZeroTimeout()")
    chain.reverts(
        f.sendMessage("chain-b", receiver, b"\x00" * (PAYLOAD_CAP + 1), 1),
        chain.user,
        "PayloadTooLarge(uint256,uint32)",
    )
    chain.tx(f.sendMessage("chain-b", receiver, b"\x00" * PAYLOAD_CAP, 1), chain.user)
    chain.tx(f.setDestination("chain-b", 0), chain.owner)  # 0 disables
    chain.reverts(f.sendMessage("chain-b", receiver, b"", 1), chain.user, "UnknownDestination()")


def test_deliver_success_matches_python(chain: EvmChain) -> None:
    gw = chain.gateway()
    echo = chain.deploy("EchoReceiver")
    id_, m = _inbound(gw, echo, nonce=1, payload=b"payload")
    receipt = _deliver(chain, gw, [(id_, m)])
    (ev,) = events(receipt, gw.address, "MessageDelivered")
    raw = encode(["bytes"], [b"payload"])  # the receiver's raw return data, never decoded
    assert (ev["id"], ev["srcChain"], ev["status"], ev["result"]) == (id_, "chain-b", 1, raw)
    assert ev["resultHash"] == _expected_hash(gw, id_, 1, raw)
    assert gw.functions.deliveryStatus(id_).call() == 1
    e = echo.functions
    assert (e.lastSrcChain().call(), e.lastSender().call(), e.lastPayload().call()) == (
        "chain-b",
        Web3.to_checksum_address(m.sender),
        b"payload",
    )
    assert e.lastCaller().call() == gw.address
    assert gw.functions.pending().call() == [0, 1]


def test_duplicate_delivery_is_a_no_op(chain: EvmChain) -> None:
    """Requirement 1: a retried batch, or an id twice in one batch, delivers once."""
    gw = chain.gateway()
    echo = chain.deploy("EchoReceiver")
    item = _inbound(gw, echo, nonce=1)
    first = _deliver(chain, gw, [item, item])
    assert len(events(first, gw.address, "MessageDelivered")) == 1
    again = _deliver(chain, gw, [item])
    assert events(again, gw.address, "MessageDelivered") == []
    assert echo.functions.calls().call() == 1
    assert gw.functions.pending().call() == [0, 1]


def test_wrong_chain_items_leave_no_trace(chain: EvmChain) -> None:
    """Requirement 5: no result, no event, no status for an item addressed to another chain."""
    gw = chain.gateway()
    echo = chain.deploy("EchoReceiver")
    wrong = _inbound(gw, echo, nonce=1, dst="chain-b")
    right = _inbound(gw, echo, nonce=2)
    receipt = _deliver(chain, gw, [wrong, right])
    assert [e["id"] for e in events(receipt, gw.address, "MessageDelivered")] == [right[0]]
    assert gw.functions.deliveryStatus(wrong[0]).call() == 0
    assert echo.functions.calls().call() == 1
    assert gw.functions.pending().call() == [0, 1]
    with pytest.raises(Exception, match="0x"):
        gw.functions.deliverMessages([right[0]], []).transact({"from": chain.relayer})


def test_expired_message_is_not_delivered(chain: EvmChain) -> None:
    """Requirement 18: expiry by the destination's block time; the receiver is not called."""
    gw = chain.gateway()
    echo = chain.deploy("EchoReceiver")
    now = chain.now()
    expired = _inbound(gw, echo, nonce=1, timeout=now)  # the next block's time is >= now
    receipt = _deliver(chain, gw, [expired])
    (ev,) = events(receipt, gw.address, "MessageDelivered")
    assert (ev["status"], ev["result"]) == (3, b"")
    assert ev["resultHash"] == _expected_hash(gw, expired[0], 3, b"")
    assert echo.functions.calls().call() == 0


def test_hostile_receivers_cannot_poison_a_batch(chain: EvmChain) -> None:
    """Requirement 9: reverting, gas-burning, code-less, huge and undecodable returns."""
    gw = chain.gateway()
    receivers: list[Contract | str] = [
        chain.deploy("RevertingReceiver"),
        chain.deploy("GasBurner"),
        "0x" + "00" * 19 + "99",  # no code
        chain.deploy("HugeReturner", 20_000, False),
        chain.deploy("HugeReturner", 20_000, True),
        chain.deploy("GarbageReturner"),
        chain.deploy("EchoReceiver"),
    ]
    items = [_inbound(gw, r, nonce=n, payload=b"last") for n, r in enumerate(receivers, 1)]
    receipt = _deliver(chain, gw, items)
    got = [(e["status"], e["result"]) for e in events(receipt, gw.address, "MessageDelivered")]
    nope = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    assert got == [
        (2, nope),
        (2, b""),
        (2, b""),
        (1, b"\xab" * 1024),
        (2, b"\xab" * 1024),
        (1, b"\xde\xad\xbe"),
        (1, encode(["bytes"], [b"last"])),
    ]
    for (id_, _), (status, _result) in zip(items, got, strict=True):
        assert gw.functions.deliveryStatus(id_).call() == status
    assert receipt["gasUsed"] < len(items) * RECEIVER_GAS + 1_000_000


def test_too_little_gas_reverts_instead_of_recording_a_failure(chain: EvmChain) -> None:
    """Requirement 9: gasleft() >= allowance * 64/63 + reserve, or the whole batch reverts."""
    gw = chain.gateway()
    echo = chain.deploy("EchoReceiver")
    item = _inbound(gw, echo, nonce=1)
    call = gw.functions.deliverMessages([item[0]], [message_tuple(item[1])])
    tx = call.transact({"from": chain.relayer, "gas": 150_000})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    assert gw.functions.deliveryStatus(item[0]).call() == 0
    receipt = chain.tx(call, chain.relayer)  # estimated gas: the honest receiver succeeds
    assert events(receipt, gw.address, "MessageDelivered")[0]["status"] == 1


def test_acknowledgements_and_hostile_callbacks(chain: EvmChain) -> None:
    gw = chain.gateway()
    senders = [chain.deploy("AckSender", gw.address, mode) for mode in (0, 1, 2)]
    peer = Web3.to_checksum_address("0x" + "22" * 20)
    ids = []
    for s in senders:
        receipt = chain.tx(s.functions.send("chain-b", peer, b"x", FAR), chain.user)
        ids.append(events(receipt, gw.address, "MessageSent")[0]["id"])
    plain = chain.tx(gw.functions.sendMessage("chain-b", peer, b"y", FAR), chain.user)
    ids.append(events(plain, gw.address, "MessageSent")[0]["id"])
    results = [(i, 1, b"ok") for i in ids] + [(b"\x42" * 32, 1, b""), (ids[0], 2, b"dup")]
    receipt = chain.tx(gw.functions.acknowledgeResults(results), chain.relayer)
    acks = events(receipt, gw.address, "MessageAcknowledged")
    assert [(a["id"], a["status"]) for a in acks] == [(i, 1) for i in ids]
    assert all(gw.functions.sentState(i).call() == 2 for i in ids)
    recorder = senders[0].functions
    assert (recorder.acks().call(), recorder.lastId().call(), recorder.lastStatus().call()) == (
        1,
        ids[0],
        1,
    )
    assert recorder.lastResult().call() == b"ok"
    assert senders[1].functions.acks().call() == 0
    assert senders[2].functions.acks().call() == 0
    again = chain.tx(gw.functions.acknowledgeResults(results[:1]), chain.relayer)
    assert events(again, gw.address, "MessageAcknowledged") == []
    chain.reverts(
        gw.functions.acknowledgeResults([(ids[0], 4, b"")]), chain.relayer, "InvalidStatus(uint8)"
    )


def test_relayer_only_calls(chain: EvmChain) -> None:
    """Requirement 6: deliver, acknowledge, seal and requeue refuse everyone but relayers."""
    gw = chain.gateway()
    f = gw.functions
    calls = [f.deliverMessages([], []), f.acknowledgeResults([]), f.seal(), f.requeue(1)]
    for call in calls:
        chain.reverts(call, chain.stranger, "NotRelayer()")
    chain.tx(f.removeRelayer(chain.relayer), chain.owner)
    for call in calls:
        chain.reverts(call, chain.relayer, "NotRelayer()")


def test_seal_only_as_a_direct_call(chain: EvmChain) -> None:
    """seal() through a contract is refused even when that contract is a relayer; a receiver
    cannot seal or requeue during a delivery (tx.origin check, non-reentrancy)."""
    gw = chain.gateway()
    proxy = chain.deploy("SealProxy", gw.address)
    chain.tx(gw.functions.addRelayer(proxy.address), chain.owner)
    chain.tx(gw.functions.sendMessage("chain-b", proxy.address, b"", FAR), chain.user)
    chain.reverts(proxy.functions.sealVia(), chain.relayer, "NotDirectCall()")
    receipt = _deliver(chain, gw, [_inbound(gw, proxy, nonce=1)])
    (ev,) = events(receipt, gw.address, "MessageDelivered")
    (inner,) = decode_words(["bytes"], ev["result"])  # the receiver returned `bytes memory`
    assert (ev["status"], decode_words(["bool", "bool"], inner)) == (1, (False, False))
    assert gw.functions.sealCount().call() == 0


def test_nothing_to_seal(chain: EvmChain) -> None:
    gw = chain.gateway()
    chain.reverts(gw.functions.seal(), chain.relayer, "NothingToSeal()")


def test_seals_take_results_first_within_caps_and_requeue_reemits(chain: EvmChain) -> None:
    """Requirements 8 and 11: 150 results and 120 sent ids need two seals of at most 100 each
    kind; requeue(n) re-emits seal n's entries, read from storage."""
    gw = chain.gateway()
    f = gw.functions
    peer = Web3.to_checksum_address("0x" + "33" * 20)
    sent = []
    for _ in range(120):
        receipt = chain.tx(f.sendMessage("chain-b", peer, b"", FAR), chain.user)
        sent.append(events(receipt, gw.address, "MessageSent")[0]["id"])
    items = [_inbound(gw, "0x" + os.urandom(20).hex(), nonce=n) for n in range(1, 151)]
    receipt = _deliver(chain, gw, items)
    hashes = [e["resultHash"] for e in events(receipt, gw.address, "MessageDelivered")]
    assert hashes == [_expected_hash(gw, i, 2, b"") for i, _ in items]
    assert f.pending().call() == [120, 150]
    seals = []
    for _ in range(2):
        r = chain.tx(f.seal(), chain.relayer)
        assert len(r["logs"]) == 1
        seals.append(events(r, gw.address, "Sealed")[0])
    assert [s["sealNumber"] for s in seals] == [1, 2]
    assert list(seals[0]["resultHashes"]) == hashes[:100]
    assert list(seals[0]["sentIds"]) == sent[:100]
    assert list(seals[1]["resultHashes"]) == hashes[100:]
    assert list(seals[1]["sentIds"]) == sent[100:]
    chain.reverts(f.seal(), chain.relayer, "NothingToSeal()")
    chain.reverts(f.requeue(0), chain.relayer, "UnknownSeal(uint64)")
    chain.reverts(f.requeue(3), chain.relayer, "UnknownSeal(uint64)")
    requeued = chain.tx(f.requeue(2), chain.relayer)
    assert len(requeued["logs"]) == 1  # Requeued only: never a Sealed
    assert events(requeued, gw.address, "Sealed") == []
    assert f.pending().call() == [20, 50]
    again = events(chain.tx(f.seal(), chain.relayer), gw.address, "Sealed")[0]
    assert again["sealNumber"] == 3
    assert (again["sentIds"], again["resultHashes"]) == (
        seals[1]["sentIds"],
        seals[1]["resultHashes"],
    )
    # Once per seal: a second requeue(2) would queue the same entries twice.
    chain.reverts(f.requeue(2), chain.relayer, "AlreadyRequeued(uint64)")
    assert f.pending().call() == [0, 0]
    assert f.requeued(2).call()
    assert not f.requeued(1).call()


def test_a_seal_with_trailing_call_data_consumes_nothing(chain: EvmChain) -> None:
    """Only seal()'s exact 4 bytes are evidence, so a "seal" with more call data (which Solidity
    would otherwise accept) must not advance the queues: its entries would be stranded."""
    gw = chain.gateway()
    chain.tx(gw.functions.sendMessage("chain-b", chain.user, b"", FAR), chain.user)
    selector = bytes.fromhex(gw.functions.seal()._encode_transaction_data()[2:])
    assert selector == seal_call_data(keccak256)
    with pytest.raises(ContractLogicError) as info:
        chain.w3.eth.send_transaction(
            {"from": chain.relayer, "to": gw.address, "data": selector + bytes(32)}
        )
    assert str(info.value.data).startswith(error_selector("UnexpectedCallData()"))
    assert gw.functions.pending().call() == [1, 0]
    assert gw.functions.sealCount().call() == 0


def test_several_seals_in_one_block(chain: EvmChain) -> None:
    gw = chain.gateway()
    peer = Web3.to_checksum_address("0x" + "44" * 20)
    send = gw.functions.sendMessage("chain-b", peer, b"", FAR)
    w3 = chain.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        hashes = []
        for _ in range(2):  # explicit gas: no estimate against the unmined state
            hashes.append(send.transact({"from": chain.user, "gas": 300_000}))
            hashes.append(gw.functions.seal().transact({"from": chain.relayer, "gas": 300_000}))
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts)
    assert len({r["blockNumber"] for r in receipts}) == 1
    seals = [events(r, gw.address, "Sealed")[0] for r in receipts[1::2]]
    assert [(s["sealNumber"], len(s["sentIds"])) for s in seals] == [(1, 1), (2, 1)]
