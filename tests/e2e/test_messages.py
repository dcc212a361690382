"""End to end: two `gateway run` processes, Anvil and the devnode; traffic through the developer
API and from the example contracts; on-chain events counted per id."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest

from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster
from devnet.demo_flow import (
    DELIVERY,
    Api,
    Tracker,
    send_app_messages,
    send_notarisations,
)
from tests.e2e.conftest import on_chain_counts, wait_finished

pytestmark = pytest.mark.integration


def assert_once(counts: dict[str, dict[bytes, int]], ids: list[bytes]) -> None:
    for mid in ids:
        assert counts["delivered"].get(mid) == 1, (
            f"0x{mid.hex()} delivered {counts['delivered'].get(mid)}"
        )
        assert counts["acknowledged"].get(mid) == 1, (
            f"0x{mid.hex()} acknowledged {counts['acknowledged'].get(mid)}"
        )


@pytest.mark.timeout(300)
async def test_both_ways_with_ping_pong_and_notary(
    cluster: DemoCluster, apis: dict[str, Api]
) -> None:
    """Five API messages each way, a ping whose pong the devnode's PingPong sends from its
    callback, and a Notary request: all acknowledged as successes, each delivered once and
    acknowledged once on chain, and the apps' counters moved."""
    tracker = Tracker(apis)
    await send_notarisations(cluster, apis, tracker, 5, timeout=3600)
    await send_app_messages(cluster, apis, tracker)
    deadline = time.monotonic() + 180
    while not tracker.done:
        cluster.check_alive()
        assert time.monotonic() < deadline, await tracker.stuck_report()
        await tracker.poll()
        await asyncio.sleep(0.5)
    assert [m.outcome for m in tracker.messages] == ["acknowledged"] * 13
    assert {m.label for m in tracker.messages} >= {"ping", "pong", "notary"}
    ids = [m.id for m in tracker.messages if m.id is not None]
    assert len(set(ids)) == 13
    assert_once(await on_chain_counts(cluster), ids)
    evm = cluster.owner_client(EVM_CHAIN)
    fisco = cluster.owner_client(FISCO_CHAIN)
    ping_pong = cluster.contracts[EVM_CHAIN].ping_pong
    assert evm.call(ping_pong, "PingPong", "pongsReceived", []) == (1,)
    fisco_pp = cluster.contracts[FISCO_CHAIN].ping_pong
    assert fisco.call(fisco_pp, "PingPong", "pingsReceived", []) == (1,)


async def _send_many(api: Api, src: str, dst: str, receiver: str, count: int) -> list[bytes]:
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> bytes:
        async with limit:
            return await api.send(src, dst, receiver, f"batch {index}".encode(), 3600)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.mark.timeout(420)
async def test_a_batch_of_200_in_one_direction(cluster: DemoCluster, apis: dict[str, Api]) -> None:
    """200 messages from Anvil to the devnode's EchoReceiver: every one acknowledged as a
    success, delivered once and acknowledged once on chain."""
    echo = cluster.contracts[FISCO_CHAIN].extra["EchoReceiver"]
    ids = await _send_many(apis["evm"], EVM_CHAIN, FISCO_CHAIN, echo, 200)
    assert len(set(ids)) == 200
    done = await wait_finished(apis["evm"], ids, timeout=300, alive=cluster.check_alive)
    statuses = {row.result.status for row in done.values()}
    assert statuses == {DELIVERY.DELIVERY_STATUS_SUCCESS}
    assert_once(await on_chain_counts(cluster), ids)


@pytest.mark.timeout(240)
async def test_a_reverting_receiver_gives_failed_on_the_ack(
    cluster: DemoCluster, apis: dict[str, Api]
) -> None:
    """A receiver that reverts, on either chain: the message is acknowledged with a FAILED
    result (the failure travels back as a proven result, not as a hang)."""
    to_fisco = await apis["evm"].send(
        EVM_CHAIN, FISCO_CHAIN, cluster.contracts[FISCO_CHAIN].extra["RevertingReceiver"], b"x", 600
    )
    to_evm = await apis["fisco"].send(
        FISCO_CHAIN, EVM_CHAIN, cluster.contracts[EVM_CHAIN].extra["RevertingReceiver"], b"y", 600
    )
    for api, mid in ((apis["evm"], to_fisco), (apis["fisco"], to_evm)):
        done = await wait_finished(api, [mid], alive=cluster.check_alive)
        assert done[mid].state == 7  # acknowledged
        assert done[mid].result.status == DELIVERY.DELIVERY_STATUS_FAILED


def _anvil_rpc(cluster: DemoCluster, method: str, params: list[Any]) -> Any:
    assert cluster.anvil is not None
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        cluster.anvil.url, data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["result"]


@pytest.mark.timeout(240)
async def test_an_expired_message_closes_as_expired(
    cluster: DemoCluster, apis: dict[str, Api]
) -> None:
    """A message to Anvil whose timeout passes on Anvil's clock before delivery (Anvil's time
    moved an hour ahead right after sending) is acknowledged as EXPIRED: the destination
    decides by its own block time, and the source closes it only on that proven result."""
    echo = cluster.contracts[EVM_CHAIN].extra["EchoReceiver"]
    mid = await apis["fisco"].send(FISCO_CHAIN, EVM_CHAIN, echo, b"late", 30)
    _anvil_rpc(cluster, "evm_increaseTime", [3600])
    _anvil_rpc(cluster, "evm_mine", [])
    done = await wait_finished(apis["fisco"], [mid], alive=cluster.check_alive)
    assert done[mid].result.status == DELIVERY.DELIVERY_STATUS_EXPIRED
    counts = await on_chain_counts(cluster)
    assert counts["delivered"].get(mid) == 1  # the expiry is the delivery's recorded result
    assert counts["acknowledged"].get(mid) == 1
