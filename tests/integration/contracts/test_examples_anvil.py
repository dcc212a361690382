"""The example contracts on Anvil, with the test acting as the relayer between two gateways
(chain-a and chain-b on one Anvil), and the look-alike gateway that shows why logs are
filtered by the configured gateway address."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from web3.contract import Contract

from tests.integration.contracts.conftest import (
    EVENTS,
    EvmChain,
    decode_words,
    events,
    logs_of,
    message_tuple,
    sent_message,
)
from verifier.events import decode_event
from verifier.hashing import keccak256
from verifier.messages import DeliveryResult, DeliveryStatus, Message, message_id, result_hash

pytestmark = pytest.mark.integration
FAR = 2**40


def _relay(chain: EvmChain, src: Contract, receipt: Any, dst: Contract) -> tuple[Message, Any]:
    """Deliver the one MessageSent of ``receipt`` (from gateway ``src``) to gateway ``dst``."""
    (sent,) = events(receipt, src.address, "MessageSent")
    m = sent_message(sent, src.address)
    assert sent["id"] == message_id(m, keccak256)
    call = dst.functions.deliverMessages([sent["id"]], [message_tuple(m)])
    return m, chain.tx(call, chain.relayer)


def _ack(chain: EvmChain, src: Contract, dst: Contract, delivered: Any) -> dict[str, Any]:
    """Acknowledge on ``src`` the one MessageDelivered of ``delivered`` (from ``dst``)."""
    (ev,) = events(delivered, dst.address, "MessageDelivered")
    dst_chain = dst.functions.chainName().call()
    r = DeliveryResult(
        ev["id"],
        dst_chain,
        bytes.fromhex(dst.address[2:]),
        DeliveryStatus(ev["status"]),
        ev["result"],
    )
    assert ev["resultHash"] == result_hash(r, keccak256)
    chain.tx(
        src.functions.acknowledgeResults([(ev["id"], ev["status"], ev["result"])]), chain.relayer
    )
    return ev


def test_ping_pong_round_trip(chain: EvmChain) -> None:
    gw_a, gw_b = chain.gateway("chain-a"), chain.gateway("chain-b")
    pp_a = chain.deploy("PingPong", gw_a.address)
    pp_b = chain.deploy("PingPong", gw_b.address)
    chain.tx(pp_a.functions.allowPeer("chain-b", pp_b.address), chain.owner)
    chain.tx(pp_b.functions.allowPeer("chain-a", pp_a.address), chain.owner)

    ping = chain.tx(pp_a.functions.ping("chain-b", pp_b.address, b"hello", FAR), chain.owner)
    ping_msg, delivered = _relay(chain, gw_a, ping, gw_b)
    assert ping_msg.sender == bytes.fromhex(pp_a.address[2:])  # sent by a contract
    ping_result = _ack(chain, gw_a, gw_b, delivered)
    (pong_id,) = decode_words(["bytes32"], decode_words(["bytes"], ping_result["result"])[0])
    assert ping_result["status"] == 1
    assert pp_b.functions.pingsReceived().call() == 1
    assert (
        pp_a.functions.acksReceived().call(),
        pp_a.functions.ackStatus(ping_result["id"]).call(),
    ) == (1, 1)

    pong_msg, pong_delivered = _relay(chain, gw_b, delivered, gw_a)  # the pong B sent
    assert message_id(pong_msg, keccak256) == pong_id
    assert (pong_msg.dst_chain, pong_msg.receiver) == ("chain-a", bytes.fromhex(pp_a.address[2:]))
    assert pong_msg.timeout == FAR + 3600
    assert events(pong_delivered, gw_a.address, "MessageSent") == []  # pongs are not answered
    pong_result = _ack(chain, gw_b, gw_a, pong_delivered)
    assert pong_result["status"] == 1
    assert pp_a.functions.pongsReceived().call() == 1
    assert pp_a.functions.pingsReceived().call() == 0
    assert pp_b.functions.acksReceived().call() == 1


def test_ping_pong_refuses_unknown_pairs(chain: EvmChain) -> None:
    """Requirement 20: the pair (srcChain, sender) is authorised, never the address alone."""
    gw_a, gw_b = chain.gateway("chain-a"), chain.gateway("chain-b")
    pp_a = chain.deploy("PingPong", gw_a.address)
    pp_b = chain.deploy("PingPong", gw_b.address)
    chain.tx(pp_b.functions.allowPeer("chain-x", pp_a.address), chain.owner)  # wrong chain
    ping = chain.tx(pp_a.functions.ping("chain-b", pp_b.address, b"", FAR), chain.owner)
    _, delivered = _relay(chain, gw_a, ping, gw_b)
    (ev,) = events(delivered, gw_b.address, "MessageDelivered")
    assert ev["status"] == 2
    assert ev["result"][:4] == keccak256(b"PeerNotAllowed(string,address)")[:4]
    assert events(delivered, gw_b.address, "MessageSent") == []
    chain.reverts(
        pp_b.functions.onCrossChainMessage("chain-a", pp_a.address, b""),
        chain.user,
        "NotGateway()",
    )


def test_notary(chain: EvmChain) -> None:
    gw_a, gw_b = chain.gateway("chain-a"), chain.gateway("chain-b")
    n_a = chain.deploy("Notary", gw_a.address)
    n_b = chain.deploy("Notary", gw_b.address)
    chain.tx(n_b.functions.allowPeer("chain-a", n_a.address), chain.owner)
    doc = keccak256(b"a document")
    request = chain.tx(
        n_a.functions.requestAttestation("chain-b", n_b.address, doc, FAR), chain.user
    )
    _, delivered = _relay(chain, gw_a, request, gw_b)
    block = chain.w3.eth.get_block(delivered["blockNumber"])
    assert n_b.functions.attested("chain-a", doc).call() == block["timestamp"]
    ev = _ack(chain, gw_a, gw_b, delivered)
    assert decode_words(["bytes"], ev["result"])[0] == encode(["bytes32"], [doc])
    assert n_a.functions.attestationStatus(doc).call() == 1
    assert n_a.functions.requestStatus(ev["id"]).call() == 1

    # Anyone may request; someone else's expired request acknowledged later cannot undo it.
    late = chain.tx(
        n_a.functions.requestAttestation("chain-b", n_b.address, doc, 1), chain.stranger
    )
    _, expired = _relay(chain, gw_a, late, gw_b)
    ev2 = _ack(chain, gw_a, gw_b, expired)
    assert ev2["status"] == 3
    assert n_a.functions.requestStatus(ev2["id"]).call() == 3
    assert n_a.functions.attestationStatus(doc).call() == 1


def test_only_the_owner_pings(chain: EvmChain) -> None:
    """Every ping costs relayers two deliveries and two acks: strangers cannot make one."""
    gw = chain.gateway("chain-a")
    pp = chain.deploy("PingPong", gw.address)
    chain.reverts(pp.functions.ping("chain-b", pp.address, b"", FAR), chain.stranger, "NotOwner()")


def test_fake_gateway_log_differs_only_by_address(chain: EvmChain) -> None:
    """Requirement 1: a look-alike's Sealed log decodes exactly like the real one; only its
    address differs, so adapters must keep logs from the configured gateway address only."""
    gw = chain.gateway()
    fake = chain.deploy("FakeGateway")
    forged_id = keccak256(b"never sent")
    chain.tx(fake.functions.load([forged_id], []), chain.owner)
    receipt = chain.tx(fake.functions.seal(), chain.relayer)
    (log,) = logs_of(receipt, fake.address)
    decoded = dict(decode_event(log, EVENTS["Sealed"], keccak256).args)
    assert decoded == {"sealNumber": 1, "sentIds": (forged_id,), "resultHashes": ()}
    assert events(receipt, gw.address, "Sealed") == []  # filtered by the gateway's address
    assert log.address != bytes.fromhex(gw.address[2:])
    assert gw.functions.sentState(forged_id).call() == 0
