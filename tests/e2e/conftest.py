"""Two gateway processes (``gateway run``) with Anvil and the FISCO devnode, set up by the demo's
own orchestration (``devnet/demo.py``), shared by the module's tests.

The relay settings are the demo's with a short ``stuck_after`` so that the outage test sees a
message as stuck within seconds. Besides the examples, each chain gets an ``EchoReceiver`` and
a ``RevertingReceiver`` (contracts/testing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from adapters.base import ChainAdapter, Fact, FactKind
from adapters.evm.adapter import EvmAdapter
from adapters.fisco.adapter import FiscoAdapter
from devnet.demo import DEMO_RELAY, EVM_CHAIN, FISCO_CHAIN, DemoCluster
from devnet.demo_flow import STATE, Api, state_name
from protos.interop.v1 import interop_pb2
from relay.config import load_config

E2E_RELAY: dict[str, float | int] = {**DEMO_RELAY, "stuck_after": 3.0}
EXTRA = ("EchoReceiver", "RevertingReceiver")
FINISHED = (STATE.MESSAGE_STATE_ACKNOWLEDGED, STATE.MESSAGE_STATE_REJECTED)


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoCluster]:
    """Anvil, the devnode, both contracts deployed, gateways ``evm`` and ``fisco`` running."""
    c = DemoCluster(tmp_path_factory.mktemp("e2e"), relay=E2E_RELAY)
    try:
        c.start_chains()
        c.deploy(extra=EXTRA)
        c.write_gateways()
        c.start_gateways()
        yield c
    finally:
        c.stop()


@pytest_asyncio.fixture(scope="module")
async def apis(cluster: DemoCluster) -> AsyncIterator[dict[str, Api]]:
    """Developer API clients of both gateways, once both answer."""
    clients = {name: Api(handle) for name, handle in cluster.gateways.items()}
    for name, api in clients.items():
        child = cluster.gateways[name].child
        assert child is not None
        await api.wait_ready(90, child.check_alive)
    yield clients
    for api in clients.values():
        await api.close()


async def wait_finished(
    api: Api, ids: list[bytes], *, timeout: float = 150.0, alive: Callable[[], None] | None = None
) -> dict[bytes, interop_pb2.MessageStatus]:
    """Each id's source-side status once acknowledged or rejected; on timeout, an assertion
    naming the unfinished ones with their state and last error."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    done: dict[bytes, interop_pb2.MessageStatus] = {}
    while pending:
        if alive is not None:
            alive()
        rows = await api.list(role=interop_pb2.ROLE_SOURCE)
        for row in rows:
            mid = bytes(row.id)
            if mid in pending and row.state in FINISHED:
                done[mid] = row
                pending.discard(mid)
        if not pending:
            break
        if time.monotonic() > deadline:
            by_id = {bytes(r.id): r for r in rows}
            lines = [
                f"0x{m.hex()}: {state_name(by_id[m].state)} {by_id[m].last_error!r}"
                if m in by_id
                else f"0x{m.hex()}: not observed"
                for m in sorted(pending)
            ]
            raise AssertionError(f"{len(pending)} not finished:\n" + "\n".join(lines[:20]))
        await asyncio.sleep(0.5)
    return done


def _adapters(cluster: DemoCluster) -> dict[str, ChainAdapter]:
    """Fresh adapters for both chains, built from the gateways' own configurations."""
    env = dict(cluster.keys)
    evm = load_config(cluster.gateways["evm"].config).chains[EVM_CHAIN]
    fisco = load_config(cluster.gateways["fisco"].config).chains[FISCO_CHAIN]
    return {
        EVM_CHAIN: EvmAdapter(evm.evm_settings(env)),
        FISCO_CHAIN: FiscoAdapter(fisco.fisco_settings(env)),
    }


async def on_chain_counts(cluster: DemoCluster) -> dict[str, dict[bytes, int]]:
    """How many MessageDelivered and MessageAcknowledged facts each id has on the two chains
    (read from height 0 by fresh adapters, after forcing a last FISCO seal)."""
    counts: dict[str, dict[bytes, int]] = {"delivered": {}, "acknowledged": {}}
    key = {FactKind.DELIVERY_RESULT: "delivered", FactKind.ACKNOWLEDGED: "acknowledged"}
    for adapter in _adapters(cluster).values():
        try:
            while await adapter.seal(force=True) is not None:
                pass
            await asyncio.sleep(2 * 0.5 + 0.5)  # an EVM confirmation, a FISCO block
            facts = await read_all(adapter, adapter.initial_cursor(0))
        finally:
            await adapter.close()
        for fact in facts:
            if fact.kind in key:
                bucket = counts[key[fact.kind]]
                bucket[fact.id] = bucket.get(fact.id, 0) + 1
    return counts


async def read_all(adapter: ChainAdapter, cursor: Any) -> list[Fact]:
    facts: list[Fact] = []
    for _ in range(10_000):
        page = await adapter.facts(cursor, max_blocks=1000)
        facts.extend(page.facts)
        if page.cursor == cursor:
            return facts
        cursor = page.cursor
    raise AssertionError("the cursor never settled")


def address(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))
