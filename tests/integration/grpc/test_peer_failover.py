"""A peer with several addresses (the replicas of one gateway): the link fails over from an
unreachable or standby replica to the next, and sticks to the one that answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from relay.grpc.client import GrpcPeerLink, PeerCallFailed, PeerTls
from relay.links import VerdictKind
from relay.replica import StandbyReplica
from relay.tls import fingerprint
from tests.integration.grpc.env import Material, Running, _free_port, serve
from tests.integration.grpc.test_relay import ack, fwd, reset

pytestmark = pytest.mark.integration


def _link(material: Material, targets: list[str]) -> GrpcPeerLink:
    return GrpcPeerLink(
        "gateway-b",
        targets,
        PeerTls(
            client_cert_pem=material.peer[0],
            client_key_pem=material.peer[1],
            server_ca_pem=material.ca[0],
            server_name="localhost",
            server_sha256=fingerprint(material.server[0]),
        ),
        timeout=10.0,
    )


@pytest_asyncio.fixture
async def pair(material: Material) -> AsyncIterator[tuple[Running, Running]]:
    """Two replicas of gateway-b: the first a standby (its handler refuses as the replica
    does), the second active."""
    standby, active = await serve(material), await serve(material)
    standby.handler.fail = StandbyReplica("gateway-b-1")
    yield standby, active
    await standby.server.stop(None)
    await active.server.stop(None)


async def test_standby_answers_unavailable_and_the_link_moves_on(
    pair: tuple[Running, Running], material: Material
) -> None:
    """The standby is called first, answers UNAVAILABLE, the same batch goes to the active one;
    the next call goes straight to the active one."""
    standby, active = pair
    link = _link(material, [standby.target, active.target])
    try:
        verdicts = await link.forward([fwd(3)])
        assert [v.kind for v in verdicts] == [VerdictKind.ACCEPTED]
        assert [c[0] for c in standby.handler.calls] == ["forward"]
        assert [(c[0], [i.id for i in c[2]]) for c in active.handler.calls] == [
            ("forward", [fwd(3).id])
        ]
        assert link.target == active.target
        await link.acknowledge([ack(6)])
        assert len(standby.handler.calls) == 1
        assert [c[0] for c in active.handler.calls] == ["forward", "acknowledge"]
    finally:
        await link.close()


async def test_unreachable_address_is_skipped(
    pair: tuple[Running, Running], material: Material
) -> None:
    """Nothing listens at the first address: the call is answered by the next."""
    _, active = pair
    reset(active.handler)
    link = _link(material, [f"127.0.0.1:{_free_port()}", active.target])
    try:
        verdicts = await link.forward([fwd(9)])
    finally:
        await link.close()
    assert [v.kind for v in verdicts] == [VerdictKind.ACCEPTED]
    assert len(active.handler.calls) == 1


async def test_all_standby_is_unavailable_after_trying_each_once(
    pair: tuple[Running, Running], material: Material
) -> None:
    """When no address has an active replica the call fails (the pipeline retries later),
    each address tried once."""
    standby, active = pair
    active.handler.fail = StandbyReplica("gateway-b-2")
    reset(standby.handler)
    standby.handler.fail = StandbyReplica("gateway-b-1")
    link = _link(material, [standby.target, active.target])
    try:
        with pytest.raises(PeerCallFailed) as caught:
            await link.forward([fwd(12)])
    finally:
        await link.close()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert "standby replica" in str(caught.value)
    assert len(standby.handler.calls) == 1
    assert len(active.handler.calls) == 1


async def test_an_active_replicas_refusal_is_not_failed_over(
    pair: tuple[Running, Running], material: Material
) -> None:
    """INTERNAL is an answer from an active gateway: the link does not try the next one."""
    standby, active = pair
    reset(standby.handler)
    standby.handler.fail = RuntimeError("a bug")
    link = _link(material, [standby.target, active.target])
    try:
        with pytest.raises(PeerCallFailed) as caught:
            await link.forward([fwd(15)])
    finally:
        await link.close()
    assert caught.value.code is grpc.StatusCode.INTERNAL
    assert active.handler.calls == []


def test_a_link_needs_an_address(material: Material) -> None:
    """An empty address list is a programming error, refused at once."""
    with pytest.raises(ValueError, match="no address"):
        _link(material, [])


async def test_a_failover_leaves_other_calls_on_the_old_address_running(
    pair: tuple[Running, Running], material: Material
) -> None:
    """One call is being answered by the first replica when another call fails over: the
    first call still gets its answer (the old channel is closed only once its calls end)."""
    first, second = pair
    reset(first.handler)
    reset(second.handler)
    first.handler.block = asyncio.Event()
    link = _link(material, [first.target, second.target])
    try:
        slow = asyncio.create_task(link.forward([fwd(18)]))
        await asyncio.wait_for(first.handler.entered.wait(), 10)
        first.handler.fail = StandbyReplica("gateway-b-1")
        assert [v.kind for v in await link.forward([fwd(21)])] == [VerdictKind.ACCEPTED]
        assert link.target == second.target
        first.handler.block.set()
        assert [v.kind for v in await asyncio.wait_for(slow, 10)] == [VerdictKind.ACCEPTED]
    finally:
        first.handler.block.set()
        await link.close()
