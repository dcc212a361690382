"""Forged evidence sent straight to a gateway's RelayService with the peer's own credentials.

Gateway ``evm`` is stopped so that nothing honest races the forgeries: messages are sent on the
chains, the test (holding ``evm``'s certificate and key, as a compromised peer would) calls
gateway ``fisco``'s ``Forward`` and ``Acknowledge`` with bad items first, then the good
``Forward`` twice; ``evm`` restarts and everything ends delivered once and acknowledged once.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio

from adapters.base import Fact, FactKind
from adapters.evm.adapter import EvmAdapter
from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster
from devnet.demo_flow import DELIVERY, STATE, Api
from relay.config import load_config
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.links import AckItem, ForwardItem, VerdictKind
from tests.e2e.conftest import address, on_chain_counts, wait_finished
from verifier.messages import DeliveryResult, DeliveryStatus

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def as_peer_evm(cluster: DemoCluster) -> AsyncIterator[GrpcPeerLink]:
    """A RelayService client to gateway ``fisco`` holding gateway ``evm``'s credentials."""
    evm, fisco = cluster.gateways["evm"], cluster.gateways["fisco"]
    link = GrpcPeerLink(
        "fisco",
        fisco.listen,
        PeerTls(
            client_cert_pem=evm.cert.read_bytes(),
            client_key_pem=evm.key.read_bytes(),
            server_ca_pem=fisco.ca.read_bytes(),
            server_name="localhost",
            server_sha256=fisco.fingerprint,
        ),
    )
    yield link
    await link.close()


async def _sent_facts(adapter: EvmAdapter, start: int, ids: set[bytes]) -> dict[bytes, Fact]:
    """The final MessageSent facts (with evidence) of ``ids``, read by our own adapter."""
    found: dict[bytes, Fact] = {}
    cursor: Any = adapter.initial_cursor(start)
    deadline = time.monotonic() + 60
    while set(found) != ids:
        assert time.monotonic() < deadline, "the messages never became final on Anvil"
        page = await adapter.facts(cursor, max_blocks=1000)
        for fact in page.facts:
            if fact.kind is FactKind.MESSAGE_SENT and fact.id in ids:
                found[fact.id] = fact
        cursor = page.cursor
        await asyncio.sleep(0.3)
    return found


def _bundle(fact: Fact) -> dict[str, Any]:
    assert fact.evidence is not None
    return copy.deepcopy(fact.evidence.bundle)


def _item(fact: Fact) -> ForwardItem:
    assert fact.message is not None
    return ForwardItem(fact.id, fact.message, _bundle(fact))


def _flip(hex_text: str) -> str:
    middle = len(hex_text) // 2
    return hex_text[:middle] + ("0" if hex_text[middle] != "0" else "1") + hex_text[middle + 1 :]


def _forgeries(a: Fact, b: Fact) -> dict[str, tuple[ForwardItem, str]]:
    """Bad Forward items for message ``a`` (``b`` is another genuine message), each with the
    check that must reject it."""
    assert a.message is not None
    tampered = _bundle(a)
    tampered["proof"][-1] = _flip(tampered["proof"][-1])
    own_trust = _bundle(a)
    own_trust["block"]["timestamp"] = hex(int(own_trust["block"]["timestamp"], 16) + 1)
    own_trust["block"].pop("hash", None)
    own_trust["receipt"].pop("blockHash", None)  # so that the header's trust is what decides
    own_trust["trust"] = {"block_hash": "0x" + "11" * 32}
    forged_body = dataclasses.replace(a.message, payload=b"forged payload")
    unserved = dataclasses.replace(a.message, src_chain=FISCO_CHAIN)
    return {
        "tampered proof": (ForwardItem(a.id, a.message, tampered), "receipt_proof"),
        "a forged header its own trust vouches for": (
            ForwardItem(a.id, a.message, own_trust),
            "header_trust",
        ),
        "evidence of another message": (ForwardItem(a.id, a.message, _bundle(b)), "event_body"),
        "a body that does not hash to the proven id": (
            ForwardItem(a.id, forged_body, _bundle(a)),
            "message_id",
        ),
        "a src_chain the peer does not serve": (
            ForwardItem(a.id, unserved, _bundle(a)),
            "peer_chain",
        ),
    }


async def _not_at_destination(api: Api, mid: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.get(mid)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.timeout(400)
async def test_forged_forwards_and_acks_are_rejected_then_the_good_one_delivers_once(
    cluster: DemoCluster, apis: dict[str, Api], as_peer_evm: GrpcPeerLink
) -> None:
    """With gateway evm stopped: five forged Forwards of message A (tampered proof, a forged
    header with the bundle's own trust vouching for it, another message's evidence, a body
    that does not hash to the id, a src_chain evm does not serve) are each rejected with a
    reason, and fisco holds nothing for A; two forged Acknowledges of a fisco->evm message C
    are rejected and C stays unacknowledged. Then the good Forward, twice: both accepted; evm
    restarts and A (and B, C) end delivered once and acknowledged once."""
    evm_handle = cluster.gateways["evm"]
    assert evm_handle.child is not None
    evm_handle.child.stop()
    env = dict(cluster.keys)
    adapter = EvmAdapter(load_config(evm_handle.config).chains[EVM_CHAIN].evm_settings(env))
    try:
        start = (await adapter.status()).head
        echo = address(cluster.contracts[FISCO_CHAIN].extra["EchoReceiver"])
        timeout = (await apis["fisco"].chain_time(FISCO_CHAIN) + 3600) * 1000
        a_id, _ = await adapter.send_message(FISCO_CHAIN, echo, b"message A", timeout)
        b_id, _ = await adapter.send_message(FISCO_CHAIN, echo, b"message B", timeout)
        facts = await _sent_facts(adapter, start, {a_id, b_id})
    finally:
        await adapter.close()
    a, b = facts[a_id], facts[b_id]
    c_id = await apis["fisco"].send(
        FISCO_CHAIN, EVM_CHAIN, cluster.contracts[EVM_CHAIN].extra["EchoReceiver"], b"C", 3600
    )

    for name, (item, check) in _forgeries(a, b).items():
        (verdict,) = await as_peer_evm.forward([item])
        assert verdict.kind is VerdictKind.REJECTED, (name, verdict)
        assert (verdict.check, bool(verdict.reason)) == (check, True), (name, verdict)
    await _not_at_destination(apis["fisco"], a_id)

    await _wait_state(apis["fisco"], c_id, STATE.MESSAGE_STATE_VERIFIED)
    evm_gateway = address(cluster.contracts[EVM_CHAIN].gateway)
    result = DeliveryResult(c_id, EVM_CHAIN, evm_gateway, DeliveryStatus.SUCCESS, b"")
    assert a.evidence is not None
    for name, (ack, check) in {
        "an Anvil receipt that is not C's delivery": (
            AckItem(c_id, result, a.evidence.bundle),
            "event",
        ),
        "a dst_chain the peer does not serve": (
            AckItem(c_id, dataclasses.replace(result, dst_chain=FISCO_CHAIN), a.evidence.bundle),
            "result_chain",
        ),
    }.items():
        (verdict,) = await as_peer_evm.acknowledge([ack])
        assert verdict.kind is VerdictKind.REJECTED, (name, verdict)
        assert (verdict.check, bool(verdict.reason)) == (check, True), (name, verdict)
    assert (await apis["fisco"].get(c_id)).state == STATE.MESSAGE_STATE_VERIFIED

    for _ in range(2):
        (verdict,) = await as_peer_evm.forward([_item(a)])
        assert verdict.kind is VerdictKind.ACCEPTED, verdict

    evm_handle.child.start()
    await apis["evm"].wait_ready(90, evm_handle.child.check_alive)
    done = await wait_finished(apis["evm"], [a_id, b_id], alive=cluster.check_alive)
    done |= await wait_finished(apis["fisco"], [c_id], alive=cluster.check_alive)
    assert {row.result.status for row in done.values()} == {DELIVERY.DELIVERY_STATUS_SUCCESS}
    counts = await on_chain_counts(cluster)
    for mid in (a_id, b_id, c_id):
        assert counts["delivered"].get(mid) == 1
        assert counts["acknowledged"].get(mid) == 1


async def _wait_state(api: Api, mid: bytes, state: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await api.get(mid)).state == state:
                return
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
        assert time.monotonic() < deadline, f"0x{mid.hex()} never reached state {state}"
        await asyncio.sleep(0.3)
