"""RelayService over a real server: GrpcPeerLink batches, verdict order, limits and failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from protos.interop.v1 import relay_pb2, relay_pb2_grpc
from relay.grpc.client import PeerCallFailed
from relay.grpc.convert import MALFORMED_CHECK, forward_item_to_proto
from relay.links import AckItem, ForwardItem, LinkUnavailable, VerdictKind
from tests.integration.grpc.env import FakeHandler, Material, RetryableFailure, Running, serve
from verifier.limits import LIMIT_CHECK, MAX_BUNDLE_BYTES
from verifier.messages import DeliveryResult, DeliveryStatus, Message

pytestmark = pytest.mark.integration

TIMEOUT = 20.0
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
BUNDLE: dict[str, Any] = json.loads(
    (EXAMPLES / "fisco-keccak-receipt-with-log.json").read_text(encoding="utf-8")
)


def message(nonce: int) -> Message:
    return Message(
        src_chain="anvil-local",
        src_gateway=b"\x11" * 20,
        dst_chain="fisco-local",
        nonce=nonce,
        sender=b"\x22" * 20,
        receiver=b"\x33" * 20,
        payload=f"payload {nonce}".encode(),
        timeout=2_000_000_000,
    )


def fwd(n: int, bundle: dict[str, Any] | None = None) -> ForwardItem:
    return ForwardItem(
        id=bytes([n]) * 32,
        message=message(n),
        bundle=BUNDLE if bundle is None else bundle,
        endpoint="http://127.0.0.1:8545",
    )


def ack(n: int) -> AckItem:
    result = DeliveryResult(
        id=bytes([n]) * 32,
        dst_chain="fisco-local",
        dst_gateway=b"\x44" * 20,
        status=DeliveryStatus.SUCCESS,
        result=b"ok",
    )
    return AckItem(id=result.id, result=result, bundle=BUNDLE)


def forward_item(n: int) -> relay_pb2.ForwardItem:
    return forward_item_to_proto(fwd(n))


def reset(handler: FakeHandler) -> None:
    handler.calls.clear()
    handler.fail = None
    handler.block = None
    handler.entered = asyncio.Event()


async def test_forward_batch_round_trip_with_verdicts_in_order(running: Running) -> None:
    reset(running.handler)
    link = running.link()
    try:
        items = [fwd(n) for n in (3, 4, 5)]  # accepted, rejected, retry (id byte mod 3)
        verdicts = await link.forward(items)
    finally:
        await link.close()
    assert [v.id for v in verdicts] == [i.id for i in items]
    assert [v.kind for v in verdicts] == [
        VerdictKind.ACCEPTED,
        VerdictKind.REJECTED,
        VerdictKind.RETRY,
    ]
    assert verdicts[1].check == "proof"
    assert verdicts[1].reason == "receipt proof does not verify"
    ((call, peer, received),) = running.handler.calls
    assert (call, peer) == ("forward", "gateway-a")
    assert received == items


async def test_acknowledge_batch_round_trip(running: Running) -> None:
    reset(running.handler)
    link = running.link()
    try:
        items = [ack(n) for n in (6, 7)]
        verdicts = await link.acknowledge(items)
    finally:
        await link.close()
    assert [(v.id, v.kind) for v in verdicts] == [
        (items[0].id, VerdictKind.ACCEPTED),
        (items[1].id, VerdictKind.REJECTED),
    ]
    assert running.handler.calls == [("acknowledge", "gateway-a", items)]


async def test_link_splits_batches_by_count_and_keeps_order(running: Running) -> None:
    reset(running.handler)
    link = running.link(max_batch_items=2)
    try:
        items = [fwd(n) for n in range(10, 15)]
        verdicts = await link.forward(items)
    finally:
        await link.close()
    assert [v.id for v in verdicts] == [i.id for i in items]
    assert [v.kind for v in verdicts] == [FakeHandler.verdict(i.id).kind for i in items]
    assert [len(c[2]) for c in running.handler.calls] == [2, 2, 1]


async def test_a_malformed_item_is_rejected_alone(running: Running) -> None:
    reset(running.handler)
    bad = forward_item(21)
    bad.message.receiver = b"\x01" * 19
    request = relay_pb2.ForwardRequest(items=[forward_item(20), bad, forward_item(22)])
    async with running.channel(running.material.peer) as channel:
        answer = await relay_pb2_grpc.RelayServiceStub(channel).Forward(request, timeout=TIMEOUT)
    assert [v.id for v in answer.verdicts] == [bytes([n]) * 32 for n in (20, 21, 22)]
    middle = answer.verdicts[1]
    assert middle.kind == relay_pb2.VERDICT_KIND_REJECTED
    assert middle.check == MALFORMED_CHECK
    assert middle.reason.startswith("items[1].message.receiver:")
    ((_, _, handled),) = running.handler.calls
    assert [i.id for i in handled] == [bytes([20]) * 32, bytes([22]) * 32]


async def test_too_many_items_in_one_call_is_invalid_argument(running: Running) -> None:
    reset(running.handler)
    request = relay_pb2.ForwardRequest(items=[forward_item(n) for n in range(6)])
    async with running.channel(running.material.peer) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await relay_pb2_grpc.RelayServiceStub(channel).Forward(request, timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "6 items in one call; at most 5"
    assert running.handler.calls == []


async def test_oversize_message_is_refused_cleanly(running: Running) -> None:
    reset(running.handler)
    item = forward_item(30)
    item.evidence.bundle_json = b'{"x":"' + b"a" * (MAX_BUNDLE_BYTES + 2 * 1024 * 1024) + b'"}'
    request = relay_pb2.ForwardRequest(items=[item])
    async with running.channel(running.material.peer, max_bytes=64 * 1024 * 1024) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await relay_pb2_grpc.RelayServiceStub(channel).Forward(request, timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Traceback" not in (caught.value.details() or "")
    assert running.handler.calls == []


async def test_largest_bundle_goes_through_and_a_larger_one_is_rejected_locally(
    running: Running,
) -> None:
    """The gRPC limits match the verifier's bundle limit: the largest bundle it accepts travels
    in one call; a larger one is never sent and gets a REJECTED verdict in its place."""
    reset(running.handler)
    largest = {"x": "a" * (MAX_BUNDLE_BYTES - 16)}
    too_large = {"x": "a" * (MAX_BUNDLE_BYTES + 1)}
    link = running.link()
    try:
        verdicts = await link.forward([fwd(33, largest), fwd(36, too_large), fwd(39)])
    finally:
        await link.close()
    assert [v.kind for v in verdicts] == [
        VerdictKind.ACCEPTED,
        VerdictKind.REJECTED,
        VerdictKind.ACCEPTED,
    ]
    assert verdicts[1].check == LIMIT_CHECK
    handled = [i for call in running.handler.calls for i in call[2]]
    assert [i.id for i in handled] == [bytes([33]) * 32, bytes([39]) * 32]
    assert handled[0].bundle == largest


async def test_handler_failure_is_internal_without_details(running: Running) -> None:
    reset(running.handler)
    running.handler.fail = RuntimeError("database at /var/secret/path exploded")
    link = running.link()
    try:
        with pytest.raises(PeerCallFailed) as caught:
            await link.forward([fwd(40)])
    finally:
        await link.close()
    assert caught.value.code is grpc.StatusCode.INTERNAL
    text = str(caught.value)
    assert "the gateway failed to forward the batch" in text
    assert "secret" not in text
    assert "Traceback" not in text
    assert caught.value.peer == "gateway-b"


async def test_retryable_handler_failure_is_unavailable(running: Running) -> None:
    reset(running.handler)
    running.handler.fail = RetryableFailure("store busy")
    link = running.link()
    try:
        with pytest.raises(LinkUnavailable) as caught:
            await link.acknowledge([ack(41)])
    finally:
        await link.close()
    assert isinstance(caught.value, PeerCallFailed)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert "retry later" in str(caught.value)


async def test_deadline_is_link_unavailable(running: Running) -> None:
    reset(running.handler)
    running.handler.block = asyncio.Event()
    link = running.link(timeout=0.5)
    try:
        with pytest.raises(LinkUnavailable) as caught:
            await link.forward([fwd(42)])
    finally:
        running.handler.block.set()
        await link.close()
    assert isinstance(caught.value, PeerCallFailed)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_server_down_is_link_unavailable(material: Material) -> None:
    r = await serve(material)
    link = r.link()
    try:
        before = await link.forward([fwd(45)])
        await r.server.stop(None)
        with pytest.raises(LinkUnavailable) as caught:
            await link.forward([fwd(45)])
    finally:
        await r.server.stop(None)
        await link.close()
    assert before[0].kind is VerdictKind.ACCEPTED
    assert isinstance(caught.value, PeerCallFailed)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


async def test_wrong_server_name_is_link_unavailable(running: Running) -> None:
    """The peer's certificate must carry the expected name: TLS fails, nothing is sent."""
    reset(running.handler)
    link = running.link()
    link._tls = type(link._tls)(  # a link configured for another gateway's name
        client_cert_pem=running.material.peer[0],
        client_key_pem=running.material.peer[1],
        server_ca_pem=running.material.ca[0],
        server_name="gateway-c.example",
        server_sha256=link._tls.server_sha256,
    )
    try:
        with pytest.raises(LinkUnavailable) as caught:
            await link.forward([fwd(44)])
        assert "TLS verification failed" in str(caught.value)
    finally:
        await link.close()
    assert running.handler.calls == []


async def test_empty_batch_needs_no_call(running: Running) -> None:
    reset(running.handler)
    link = running.link()
    try:
        assert list(await link.forward([])) == []
    finally:
        await link.close()
    assert running.handler.calls == []
