"""End to end: both `gateway run` processes of the demo serve ``[metrics] listen``; after
messages each way, /metrics (parsed with prometheus_client's own parser) has every documented
series with its type and labels, and values that agree with the traffic and the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.base import endpoint_names
from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster
from devnet.demo_flow import STATE, Api
from protos.interop.v1 import interop_pb2
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.links import ForwardItem, VerdictKind
from relay.metrics import Metrics
from tests.e2e.conftest import address, wait_finished
from tests.integration.adapters.env_evm import CHAIN, evm_env
from tests.unit.relay.test_metrics import SERIES
from verifier.messages import Message

pytestmark = pytest.mark.integration

TO_FISCO, TO_EVM = 5, 3
ROUTES = {"evm": (EVM_CHAIN, FISCO_CHAIN), "fisco": (FISCO_CHAIN, EVM_CHAIN)}


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sample's value (0 when absent: a counter not incremented yet)."""
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return float(s.value)
        return 0.0

    def samples(self, family: str) -> list[Any]:
        return list(self.families[family].samples)


async def get(http: aiohttp.ClientSession, address: str, path: str) -> tuple[int, str]:
    async with http.get(f"http://{address}{path}", timeout=aiohttp.ClientTimeout(10)) as r:
        return r.status, await r.text()


async def scrape(http: aiohttp.ClientSession, address: str) -> Scrape:
    status, text = await get(http, address, "/metrics")
    assert status == 200
    return Scrape(text)


async def until(
    http: aiohttp.ClientSession, address: str, ok: Callable[[Scrape], bool], what: str
) -> Scrape:
    """Scrape until ``ok`` (the store-read series refresh every few seconds)."""
    deadline = time.monotonic() + 30
    while True:
        got = await scrape(http, address)
        if ok(got):
            return got
        assert time.monotonic() < deadline, f"{what}: never true on {address}"
        await asyncio.sleep(0.5)


def transitions(s: Scrape, gateway: str, role: str, state: str, *, back: bool = False) -> float:
    src, dst = ROUTES[gateway]
    if back:
        src, dst = dst, src
    labels = {"src_chain": src, "dst_chain": dst, "role": role, "state": state}
    return s.value("gateway_transitions_total", **labels)


@pytest.mark.timeout(300)
async def test_the_metrics_of_both_gateways_after_messages_each_way(
    cluster: DemoCluster, apis: dict[str, Api]
) -> None:
    addresses = {name: handle.metrics_listen for name, handle in cluster.gateways.items()}
    async with aiohttp.ClientSession() as http:
        for address in addresses.values():
            assert await get(http, address, "/livez") == (200, "ok\n")
            assert await get(http, address, "/readyz") == (200, "active\n")
        before = {name: await scrape(http, a) for name, a in addresses.items()}

        echo = {c: cluster.contracts[c].extra["EchoReceiver"] for c in (EVM_CHAIN, FISCO_CHAIN)}
        sent = {
            "evm": [
                await apis["evm"].send(EVM_CHAIN, FISCO_CHAIN, echo[FISCO_CHAIN], b"m%d" % i, 600)
                for i in range(TO_FISCO)
            ],
            "fisco": [
                await apis["fisco"].send(FISCO_CHAIN, EVM_CHAIN, echo[EVM_CHAIN], b"n%d" % i, 600)
                for i in range(TO_EVM)
            ],
        }
        for name, ids in sent.items():
            await wait_finished(apis[name], ids, alive=cluster.check_alive)

        after: dict[str, Scrape] = {}
        for name, address in addresses.items():
            count, peer = len(sent[name]), "fisco" if name == "evm" else "evm"
            back = len(sent[peer])

            def moved(s: Scrape, name: str = name, count: int = count, back: int = back) -> bool:
                return (
                    transitions(s, name, "source", "acknowledged")
                    - transitions(before[name], name, "source", "acknowledged")
                    == count
                    and transitions(s, name, "destination", "result_forwarded", back=True)
                    - transitions(before[name], name, "destination", "result_forwarded", back=True)
                    == back
                )

            after[name] = await until(http, address, moved, "acknowledged and closed counted")

        for name, s in after.items():
            check_series(s)
            check_values(name, s, before[name], sent)
            await check_messages_gauge(http, addresses[name], apis[name], name)


def check_series(s: Scrape) -> None:
    """Every documented family with its type; the label names of those with samples."""
    for family, (kind, labels) in SERIES.items():
        assert family in s.families, family
        assert s.families[family].type == kind, family
        for sample in s.samples(family):
            assert set(sample.labels) - {"le"} == labels, (family, sample)


def check_values(name: str, s: Scrape, before: Scrape, sent: dict[str, list[bytes]]) -> None:
    src, dst = ROUTES[name]
    count, back = len(sent[name]), len(sent["fisco" if name == "evm" else "evm"])

    def moved(state: str) -> float:
        return transitions(s, name, "source", state) - transitions(before, name, "source", state)

    # observed once per message; the others at least once (a recheck may send a row back to
    # be submitted again); forwarded at most once (a result may overtake the forward's commit)
    assert moved("observed") == count
    for state in ("verified", "result_verified", "ack_submitted"):
        assert moved(state) >= count, (name, state, moved(state))
    assert 0 < moved("forwarded") <= count
    delivered = transitions(s, name, "destination", "delivered", back=True) - transitions(
        before, name, "destination", "delivered", back=True
    )
    assert delivered == back
    # each delivery and acknowledgement went out in a batch the chain took (a resubmission
    # after a recheck goes out again)
    deliver = {"chain": src, "kind": "deliver"}
    ack = {"chain": src, "kind": "acknowledge"}
    for labels, rows in ((deliver, back), (ack, count)):
        size = s.value("gateway_batch_size_sum", **labels)
        assert size - before.value("gateway_batch_size_sum", **labels) >= rows, labels
        batches = s.value("gateway_batch_size_count", **labels)
        assert batches - before.value("gateway_batch_size_count", **labels) > 0, labels
    assert s.value("gateway_stage_seconds_count", stage="source:observed") >= count
    round_trip = s.value("gateway_stage_seconds_sum", stage="source:forwarded")
    assert round_trip > 0
    head = s.value("gateway_chain_head", chain=src)
    final = s.value("gateway_chain_final_head", chain=src)
    assert 0 < final <= head
    assert head >= before.value("gateway_chain_head", chain=src)
    assert {x.labels["chain"] for x in s.samples("gateway_chain_head")} == {src}, "served only"
    endpoints = s.samples("gateway_endpoint_up")
    assert endpoints
    assert {e.labels["chain"] for e in endpoints} == {src}
    assert all(e.value == 1 for e in endpoints)
    stages = {x.labels["stage"] for x in s.samples("gateway_queue_depth")}
    assert {"verify", "forward", f"deliver:{src}", f"ack:{src}"} <= stages
    [leader] = s.samples("gateway_leader")
    assert leader.value == 1
    assert s.value("gateway_audit_records") > before.value("gateway_audit_records")
    [build] = s.samples("gateway_build_info")
    assert build.value == 1
    assert dst not in {e.labels["chain"] for e in endpoints}


async def check_messages_gauge(
    http: aiohttp.ClientSession, address: str, api: Api, name: str
) -> None:
    """gateway_messages agrees with the API's rows (read again until both are settled)."""
    src, dst = ROUTES[name]
    acked = {"src_chain": src, "dst_chain": dst, "role": "source", "state": "acknowledged"}
    rows = await api.list(role=interop_pb2.ROLE_SOURCE)
    want = sum(
        1
        for r in rows
        if r.state == STATE.MESSAGE_STATE_ACKNOWLEDGED and r.src_chain == src and r.dst_chain == dst
    )
    assert want > 0
    await until(
        http,
        address,
        lambda s: s.value("gateway_messages", **acked) == want,
        f"gateway_messages{acked} == {want}",
    )


@contextlib.asynccontextmanager
async def tcp_proxy(target: str) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """A TCP proxy to ``target``'s host and port, and a function that stops it (listener and
    open connections: the endpoint behind it is down)."""
    parts = urlsplit(target)
    writers: list[asyncio.StreamWriter] = []

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
        writers.extend((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()

    try:
        yield f"http://127.0.0.1:{port}", stop
    finally:
        await stop()


@pytest.mark.timeout(120)
async def test_endpoint_health_and_a_failover_from_a_real_evm_adapter() -> None:
    """An EVM adapter with two endpoints (a proxy to Anvil first, Anvil itself second): both
    up with the chain's heads; the proxy stopped, the next status() fails over to Anvil, and
    the sample shows the proxy down and one failover."""
    async with evm_env() as env, tcp_proxy(env.anvil.url) as (proxy, stop_proxy):
        adapter = env.adapter_with(endpoints=(proxy, env.anvil.url))
        first, second = endpoint_names([proxy, env.anvil.url])
        metrics = Metrics(sample_seconds=3600)
        try:
            metrics.watch(adapters={CHAIN: adapter})
            await metrics.sample()
            s = Scrape(metrics.render().decode())
            assert s.value("gateway_endpoint_up", chain=CHAIN, endpoint=first) == 1
            assert s.value("gateway_endpoint_up", chain=CHAIN, endpoint=second) == 1
            head = s.value("gateway_chain_head", chain=CHAIN)
            assert head == await env.evm.head()
            assert 0 <= s.value("gateway_chain_final_head", chain=CHAIN) < head
            assert s.value("gateway_endpoint_failovers_total", chain=CHAIN) == 0

            await stop_proxy()
            await env.evm.mine(1)
            await metrics.sample()
            s = Scrape(metrics.render().decode())
            assert s.value("gateway_endpoint_up", chain=CHAIN, endpoint=first) == 0
            assert s.value("gateway_endpoint_up", chain=CHAIN, endpoint=second) == 1
            assert s.value("gateway_endpoint_failovers_total", chain=CHAIN) == 1
            assert s.value("gateway_chain_head", chain=CHAIN) == await env.evm.head() > head
        finally:
            await metrics.unwatch()
            await adapter.close()


@pytest.mark.timeout(120)
async def test_a_forged_forward_counts_as_a_verification_failure_by_its_check(
    cluster: DemoCluster, apis: dict[str, Api]
) -> None:
    """Holding gateway evm's credentials (as a compromised peer would), a Forward with a
    bundle that is no evidence: gateway fisco rejects it naming a check, and its
    gateway_verification_failures_total for that check went up by one."""
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
    forged = Message(
        src_chain=EVM_CHAIN,
        src_gateway=address(cluster.contracts[EVM_CHAIN].gateway),
        dst_chain=FISCO_CHAIN,
        nonce=1,
        sender=b"\x02" * 20,
        receiver=address(cluster.contracts[FISCO_CHAIN].extra["EchoReceiver"]),
        payload=b"forged",
        timeout=2**40,
    )
    async with aiohttp.ClientSession() as http:
        before = await scrape(http, fisco.metrics_listen)
        try:
            [verdict] = await link.forward([ForwardItem(os.urandom(32), forged, {"v": 1})])
        finally:
            await link.close()
        assert verdict.kind is VerdictKind.REJECTED
        assert verdict.check
        after = await scrape(http, fisco.metrics_listen)
    failures = "gateway_verification_failures_total"
    assert (
        after.value(failures, check=verdict.check) - before.value(failures, check=verdict.check)
        == 1
    )
    assert (
        sum(x.value for x in after.samples("gateway_verification_failures"))
        - sum(x.value for x in before.samples("gateway_verification_failures"))
        == 1
    )
