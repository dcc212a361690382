"""relay/metrics.py: the registry's series, the pipeline's hooks, sampling, and the HTTP probes
on a real aiohttp server at 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from adapters.base import ChainStatus, ChainUnavailable, EndpointHealth
from relay.audit import AuditKey, AuditLog, Checkpoint, CheckpointPolicy
from relay.metrics import CountingVerifier, MessageCounts, Metrics
from relay.node import GatewayNode
from relay.sqlite_store import SqliteStore
from relay.store import Role, State, Store, Transition
from relay.trust import EvidenceRejected, NotYetTrusted
from tests.unit.relay.test_pipeline import FAST, A, B, FakeChain, FakeVerifier
from tests.unit.relay.test_store import _make, _store  # noqa: F401 (the store fixtures)
from verifier.messages import Message

SERIES = {
    "gateway_messages": ("gauge", {"src_chain", "dst_chain", "role", "state"}),
    "gateway_transitions": ("counter", {"src_chain", "dst_chain", "role", "state"}),
    "gateway_stage_seconds": ("histogram", {"stage"}),
    "gateway_queue_depth": ("gauge", {"stage"}),
    "gateway_batch_size": ("histogram", {"chain", "kind"}),
    "gateway_chain_head": ("gauge", {"chain"}),
    "gateway_chain_final_head": ("gauge", {"chain"}),
    "gateway_endpoint_up": ("gauge", {"chain", "endpoint"}),
    "gateway_endpoint_failovers": ("counter", {"chain"}),
    "gateway_verification_failures": ("counter", {"check"}),
    "gateway_leader": ("gauge", {"replica"}),
    "gateway_audit_records": ("gauge", set()),
    "gateway_audit_checkpoints": ("counter", set()),
    "gateway_build_info": ("gauge", {"version"}),
}
"""Family name (as the parser names it: counters without ``_total``) -> type and label names;
docs/metrics.md lists the same."""


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(metrics: Metrics, sample: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def message(nonce: int, src: str = A, dst: str = B) -> Message:
    return Message(
        src_chain=src,
        src_gateway=b"\x01" * 20,
        dst_chain=dst,
        nonce=nonce,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"p",
        timeout=10_000,
    )


def change(n: int, to: State, at: float, *, role: Role = Role.SOURCE) -> Transition:
    return Transition(
        id=n.to_bytes(32, "big"), role=role, to=to, expect=None, at=at, message=message(n)
    )


async def test_every_documented_series_has_its_type_and_labels() -> None:
    metrics = Metrics(replica="gw-1", version="9.9.9")
    assert value(metrics, "gateway_leader", replica="gw-1") == 0
    metrics.set_leader("gw-1", True)
    metrics.transition(change(1, State.OBSERVED, 1.0))
    metrics.transition(change(1, State.VERIFIED, 1.5))
    metrics.batch_submitted(B, State.DELIVERY_SUBMITTED, 3)
    metrics.verification_failed("receipt_proof")
    metrics.chain_head.labels(A).set(5)
    metrics.final_head.labels(A).set(4)
    metrics.endpoint_up.labels(A, "http://127.0.0.1:1").set(1)
    metrics.failovers.labels(A).inc(0)
    metrics.messages.labels(A, B, "source", "observed").set(1)
    stage = SimpleNamespace(name="verify", pending={b"x": 1})
    metrics.watch(pipeline=cast(Any, SimpleNamespace(stages=[stage])))
    families = parse(metrics.render().decode())
    assert set(families) == set(SERIES)
    for name, (kind, labels) in SERIES.items():
        family = families[name]
        assert family.type == kind, name
        names = {k for s in family.samples for k in s.labels if k not in {"le"}}
        assert names == labels, name
    assert value(metrics, "gateway_build_info", version="9.9.9") == 1
    assert value(metrics, "gateway_leader", replica="gw-1") == 1
    assert value(metrics, "gateway_queue_depth", stage="verify") == 1
    metrics.set_leader("gw-1", False)  # a standby's stopped pipeline: nothing queued
    assert value(metrics, "gateway_queue_depth", stage="verify") == 0
    await metrics.unwatch()


def test_transitions_count_by_route_and_time_the_state_left() -> None:
    metrics = Metrics()
    metrics.transition(change(1, State.OBSERVED, 10.0))
    metrics.transition(change(1, State.VERIFIED, 10.25))
    metrics.transition(change(1, State.FORWARDED, 11.0))
    metrics.transition(change(2, State.OBSERVED, 10.0))
    metrics.transition(change(1, State.ACKNOWLEDGED, 15.0))
    route = {"src_chain": A, "dst_chain": B, "role": "source"}
    assert value(metrics, "gateway_transitions_total", **route, state="observed") == 2
    assert value(metrics, "gateway_transitions_total", **route, state="acknowledged") == 1
    observed = {"stage": "source:observed"}
    assert value(metrics, "gateway_stage_seconds_count", **observed) == 1
    assert value(metrics, "gateway_stage_seconds_sum", **observed) == 0.25
    assert value(metrics, "gateway_stage_seconds_sum", stage="source:forwarded") == 4.0
    # a terminal state is not remembered; an open one is
    assert list(metrics._entered) == [((2).to_bytes(32, "big"), Role.SOURCE)]


def test_batches_are_counted_by_chain_and_kind() -> None:
    metrics = Metrics()
    metrics.batch_submitted(B, State.DELIVERY_SUBMITTED, 7)
    metrics.batch_submitted(A, State.ACK_SUBMITTED, 2)
    metrics.batch_submitted(A, State.ACK_SUBMITTED, 1)
    assert value(metrics, "gateway_batch_size_sum", chain=B, kind="deliver") == 7
    assert value(metrics, "gateway_batch_size_count", chain=A, kind="acknowledge") == 2


def test_two_gateways_in_one_process_keep_their_series_apart() -> None:
    one, two = Metrics(replica="a"), Metrics(replica="b")
    one.verification_failed("crypto")
    assert value(one, "gateway_verification_failures_total", check="crypto") == 1
    assert value(two, "gateway_verification_failures_total", check="crypto") is None
    assert value(two, "gateway_leader", replica="a") is None


class _Inner:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def verify_message(self, message: Message, mid: bytes, bundle: Mapping[str, Any]) -> str:
        if self.error is not None:
            raise self.error
        return "ok"

    async def verify_result(
        self, message: Message, mid: bytes, result: Any, bundle: Mapping[str, Any]
    ) -> str:
        return await self.verify_message(message, mid, bundle)


async def test_the_counting_verifier_counts_rejections_by_check_and_passes_all_through() -> None:
    metrics = Metrics()
    ok = CountingVerifier(_Inner(None), metrics)
    assert await ok.verify_message(message(1), b"\x00" * 32, {}) == "ok"
    bad = CountingVerifier(_Inner(EvidenceRejected("no", check="receipt_proof")), metrics)
    for _ in range(2):
        with pytest.raises(EvidenceRejected):
            await bad.verify_result(message(1), b"\x00" * 32, cast(Any, None), {})
    later = CountingVerifier(_Inner(NotYetTrusted("wait", chain=A)), metrics)
    with pytest.raises(NotYetTrusted):
        await later.verify_message(message(1), b"\x00" * 32, {})
    assert value(metrics, "gateway_verification_failures_total", check="receipt_proof") == 2
    assert (
        sum(
            s.value
            for f in text_string_to_metric_families(metrics.render().decode())
            for s in f.samples
            if s.name == "gateway_verification_failures_total"
        )
        == 2
    )


class _Chain:
    """status() answers with the given endpoint health, or fails when ``down``."""

    def __init__(self, head: int, health: dict[str, bool]) -> None:
        self.head = head
        self.health = health
        self.down = False

    async def status(self) -> ChainStatus:
        if self.down:
            raise ChainUnavailable("no endpoint answered", chain=A)
        endpoints = tuple(EndpointHealth(n, up) for n, up in self.health.items())
        return ChainStatus(A, self.head, self.head - 2, 0, endpoints)


class _Store:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, Role, State], int] = {}
        self.head: tuple[int, str] | None = None
        self.checkpoints: list[int] = []
        self.count_calls = 0

    async def count_by_route(self) -> dict[tuple[str, str, Role, State], int]:
        self.count_calls += 1
        return dict(self.counts)

    async def audit_head(self) -> tuple[int, str] | None:
        return self.head

    async def audit_checkpoint(self, seq: int = 0) -> Checkpoint | None:
        found = [s for s in self.checkpoints if s >= seq] if seq > 0 else self.checkpoints[-1:]
        return Checkpoint("gw", found[0], "00", "t") if found else None


async def test_sampling_reads_heads_endpoints_failovers_messages_and_the_audit_chain() -> None:
    metrics = Metrics(sample_seconds=3600, messages_seconds=0)
    chain = _Chain(10, {"e1": True, "e2": True})
    store = _Store()
    store.counts = {(A, B, Role.SOURCE, State.OBSERVED): 4}
    store.head, store.checkpoints = (7, "aa"), [5]
    metrics.watch(store=store, adapters={A: chain})  # type: ignore[dict-item]
    await metrics.sample()
    assert value(metrics, "gateway_chain_head", chain=A) == 10
    assert value(metrics, "gateway_chain_final_head", chain=A) == 8
    assert value(metrics, "gateway_endpoint_up", chain=A, endpoint="e1") == 1
    src = {"src_chain": A, "dst_chain": B, "role": "source"}
    assert value(metrics, "gateway_messages", **src, state="observed") == 4
    assert value(metrics, "gateway_audit_records") == 7
    assert value(metrics, "gateway_audit_checkpoints_total") == 0  # existing ones: the base

    chain.health["e1"] = False  # calls moved to e2: one failover
    store.counts = {(A, B, Role.SOURCE, State.VERIFIED): 4}
    store.head, store.checkpoints = (12, "bb"), [5, 10, 12]
    await metrics.sample()
    assert value(metrics, "gateway_endpoint_up", chain=A, endpoint="e1") == 0
    assert value(metrics, "gateway_endpoint_failovers_total", chain=A) == 1
    assert value(metrics, "gateway_messages", **src, state="observed") == 0
    assert value(metrics, "gateway_messages", **src, state="verified") == 4
    assert value(metrics, "gateway_audit_checkpoints_total") == 2
    assert value(metrics, "gateway_audit_records") == 12

    chain.down = True  # no endpoint answers: all down, no failover (nowhere to go)
    await metrics.sample()
    assert value(metrics, "gateway_endpoint_up", chain=A, endpoint="e2") == 0
    assert value(metrics, "gateway_endpoint_failovers_total", chain=A) == 1
    assert value(metrics, "gateway_chain_head", chain=A) == 10, "the last value is kept"
    await metrics.unwatch()


async def test_a_slow_message_count_is_queried_less_often() -> None:
    metrics = Metrics(sample_seconds=3600, messages_seconds=0)
    store = _Store()
    slow = store.count_by_route

    async def count() -> dict[tuple[str, str, Role, State], int]:
        await asyncio.sleep(0.05)  # 5 % of the time: the next query at least 1 s later
        return await slow()

    store.count_by_route = count  # type: ignore[method-assign]
    metrics.watch(store=store)
    await metrics.sample()
    await metrics.sample()
    assert store.count_calls == 1
    await metrics.unwatch()


async def test_probes_over_http(tmp_path: Path) -> None:
    metrics = Metrics(replica="gw-1", sample_seconds=3600)
    host, port = await metrics.start_http("127.0.0.1:0")
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, str, str]:
                async with http.get(base + path) as r:
                    return r.status, await r.text(), r.headers["Content-Type"]

            assert (await get("/livez"))[:2] == (200, "ok\n")
            assert (await get("/readyz"))[:2] == (503, "not ready\n")
            metrics.watch()
            assert (await get("/readyz"))[:2] == (200, "standby\n")
            metrics.set_leader("gw-1", True)
            assert (await get("/readyz"))[:2] == (200, "active\n")
            metrics.set_leader("gw-1", False)
            assert (await get("/readyz"))[:2] == (200, "standby\n")
            status, text, kind = await get("/metrics")
            assert status == 200
            assert kind.startswith("text/plain")
            assert set(parse(text)) >= {"gateway_leader", "gateway_build_info"}
            assert value(metrics, "gateway_leader", replica="gw-1") == 0
            await metrics.unwatch()
            assert (await get("/readyz"))[0] == 503
            assert (await get("/nothing"))[0] == 404
    finally:
        await metrics.stop_http()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(base + "/livez"):
            pass


async def test_a_taken_port_is_an_os_error() -> None:
    one, two = Metrics(), Metrics()
    host, port = await one.start_http("127.0.0.1:0")
    try:
        with pytest.raises(OSError, match="in use"):
            await two.start_http(f"{host}:{port}")
    finally:
        await one.stop_http()


async def test_a_pipeline_reports_its_transitions_batches_and_queues(tmp_path: Path) -> None:
    """The unit pipeline (fake chains, real SQLite store): 7 messages a->b and 3 b->a; the
    counters agree with the store's rows."""
    metrics = Metrics(sample_seconds=3600, messages_seconds=0)
    a, b = FakeChain(A), FakeChain(B)
    store = SqliteStore(tmp_path)
    node = GatewayNode(
        store=store,
        adapters={A: a, B: b},
        verifier=CountingVerifier(FakeVerifier(), metrics),
        routes=[(A, B), (B, A)],
        settings=FAST,
        start_heights={A: 0, B: 0},
        metrics=metrics,
    )
    for i in range(7):
        await a.send_message(B, b"\x02" * 20, b"m%d" % i, 5000)
    for i in range(3):
        await b.send_message(A, b"\x02" * 20, b"n%d" % i, 5000)
    await node.start()
    try:
        metrics.watch(store=store, pipeline=node.pipeline, adapters=node.adapters)
        acked = {"role": "source", "state": "acknowledged"}
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while (
            value(metrics, "gateway_transitions_total", src_chain=A, dst_chain=B, **acked) or 0
        ) < 7 or (
            value(metrics, "gateway_transitions_total", src_chain=B, dst_chain=A, **acked) or 0
        ) < 3:
            assert loop.time() < end, metrics.render().decode()
            await asyncio.sleep(0.05)
        await metrics.sample()
        assert value(metrics, "gateway_messages", src_chain=A, dst_chain=B, **acked) == 7
        assert value(metrics, "gateway_messages", src_chain=B, dst_chain=A, **acked) == 3
        delivered = value(metrics, "gateway_batch_size_sum", chain=B, kind="deliver")
        assert delivered == 7
        assert value(metrics, "gateway_batch_size_sum", chain=A, kind="acknowledge") == 7
        assert (value(metrics, "gateway_stage_seconds_count", stage="source:observed") or 0) >= 10
        assert value(metrics, "gateway_chain_head", chain=A) == len(a.log)
        depths = parse(metrics.render().decode())["gateway_queue_depth"].samples
        assert {s.labels["stage"] for s in depths} >= {"verify", f"deliver:{B}", f"ack:{A}"}
        assert all(s.value >= 0 for s in depths)
    finally:
        await metrics.unwatch()
        await node.stop()


async def test_the_store_counts_rows_by_route_and_state(store: Store) -> None:
    """SQLite and PostgreSQL (the conformance suite's fixtures): one GROUP BY."""
    for n in range(3):
        assert await store.transition(change(n, State.OBSERVED, 1.0))
    back = Transition(
        (9).to_bytes(32, "big"), Role.DESTINATION, State.VERIFIED, None, 1.0, message(9, B, A)
    )
    assert await store.transition(back)
    counts: MessageCounts = cast(Any, store)
    assert await counts.count_by_route() == {
        (A, B, Role.SOURCE, State.OBSERVED): 3,
        (B, A, Role.DESTINATION, State.VERIFIED): 1,
    }


async def test_the_audit_chain_of_a_real_store(tmp_path: Path) -> None:
    """SQLite with an audit log signing a checkpoint every 3 records: the records gauge is the
    chain's length; checkpoints signed after the first look are counted, one each."""
    policy = CheckpointPolicy(3, 3600.0)
    store = SqliteStore(tmp_path, audit_log=AuditLog("gw", AuditKey.generate(), policy))
    await store.open()
    metrics = Metrics(sample_seconds=3600, messages_seconds=0)
    try:
        for n in range(4):  # 4 records: one checkpoint (at 3) before the first look
            assert await store.transition(change(n, State.OBSERVED, 1.0))
        metrics.watch(store=store)
        await metrics.sample()
        assert value(metrics, "gateway_audit_records") == 4
        assert value(metrics, "gateway_audit_checkpoints_total") == 0
        for n in range(4, 10):  # 6 more: checkpoints at 6 and 9
            assert await store.transition(change(n, State.OBSERVED, 2.0))
        await metrics.sample()
        assert value(metrics, "gateway_audit_records") == 10
        assert value(metrics, "gateway_audit_checkpoints_total") == 2
        assert (
            value(
                metrics,
                "gateway_messages",
                src_chain=A,
                dst_chain=B,
                role="source",
                state="observed",
            )
            == 10
        )
    finally:
        await metrics.unwatch()
        await store.close()


async def test_a_failing_sample_is_logged_once_while_it_lasts() -> None:
    metrics = Metrics(sample_seconds=3600)
    chain = _Chain(10, {"e1": True})
    chain.down = True
    metrics.watch(adapters={A: chain})  # type: ignore[dict-item]
    with capture_logs() as logs:
        for _ in range(3):
            await metrics.sample()
        chain.down = False
        await metrics.sample()
        chain.down = True
        await metrics.sample()
    await metrics.unwatch()
    failed = [e for e in logs if e["event"] == "metrics_sample_failed"]
    assert len(failed) == 2, failed  # the outage, then the second outage
    assert "no endpoint answered" in failed[0]["reason"]
