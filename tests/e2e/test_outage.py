"""The destination chain down for a while: messages wait, visible as stuck through the API,
and flow once the chain is back (the devnode restarted on the same port and data)."""

from __future__ import annotations

import asyncio
import time

import pytest

from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster
from devnet.demo_flow import DELIVERY, Api
from tests.e2e.conftest import on_chain_counts, wait_finished

pytestmark = pytest.mark.integration


def _gateways_alive(cluster: DemoCluster) -> None:
    for handle in cluster.gateways.values():
        assert handle.child is not None
        handle.child.check_alive()


@pytest.mark.timeout(300)
async def test_destination_down_then_back(cluster: DemoCluster, apis: dict[str, Api]) -> None:
    """Three messages to the devnode, which stops right after they are sent: the gateways keep
    running and the API's stuck view lists the messages (with attempts and the last error);
    the devnode restarts with its chain and every message ends acknowledged as a success,
    delivered once and acknowledged once."""
    assert cluster.fisco is not None
    port = cluster.fisco.port
    echo = cluster.contracts[FISCO_CHAIN].extra["EchoReceiver"]
    ids = [
        await apis["evm"].send(EVM_CHAIN, FISCO_CHAIN, echo, f"outage {i}".encode(), 3600)
        for i in range(3)
    ]
    cluster.stop_devnode()
    deadline = time.monotonic() + 90
    stuck: set[bytes] = set()
    while not set(ids) <= stuck:
        _gateways_alive(cluster)
        assert time.monotonic() < deadline, f"stuck view: {[m.hex() for m in stuck]}"
        await asyncio.sleep(1)
        stuck = set()
        for api in apis.values():
            for row in await api.list(stuck_only=True):
                stuck.add(bytes(row.id))
                if bytes(row.id) in ids:
                    assert row.stuck
    rows = [r for api in apis.values() for r in await api.list(stuck_only=True)]
    assert any(r.attempts > 0 and r.last_error for r in rows if bytes(r.id) in ids), rows

    restarted = cluster.start_devnode(port=port)
    assert restarted.port == port
    done = await wait_finished(apis["evm"], ids, timeout=150, alive=cluster.check_alive)
    assert {row.result.status for row in done.values()} == {DELIVERY.DELIVERY_STATUS_SUCCESS}
    counts = await on_chain_counts(cluster)
    for mid in ids:
        assert counts["delivered"].get(mid) == 1
        assert counts["acknowledged"].get(mid) == 1
