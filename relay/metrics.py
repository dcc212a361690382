"""Prometheus metrics and HTTP probes (``[metrics] listen``): ``/metrics``, ``/livez``, ``/readyz``.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the process-global one), so
tests and one process running several gateways keep their series apart. Nothing else in the
relay knows about Prometheus: the pipeline sees the two-method :class:`RelayMetrics` protocol
(:data:`NO_METRICS` when metrics are off), everything else is read from the outside:

- transitions and stage times: the pipeline's one ``_transition`` hook (in memory, no store
  read, no lock); batch sizes: its one ``_submit_batch`` hook;
- verification failures: :class:`CountingVerifier` wraps the verifier the pipeline uses;
- queue depths: read from the pipeline's stages when scraped;
- chain heads and endpoint health: each served chain's ``status()`` every ``sample_seconds``;
- ``gateway_messages`` and the audit chain: read from the store (messages by route and state
  at most every ``messages_seconds``, backed off so that the query takes at most about 5 % of
  the store's time).

``docs/metrics.md`` lists every series with its meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence, Sized
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.store import TERMINAL, Role, State, Transition
from relay.trust import EvidenceRejected

if TYPE_CHECKING:
    from adapters.base import ChainAdapter
    from verifier.messages import DeliveryResult, Message

log = structlog.get_logger(__name__)

STAGE_BUCKETS: Final = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    *(30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500)
MAX_TRACKED_ROWS: Final = 100_000
"""Rows whose current state's entry time is remembered for ``gateway_stage_seconds``; beyond
it the oldest are forgotten (their next change is not timed)."""
QUERY_SHARE: Final = 0.05
"""The share of time the ``gateway_messages`` query may take: its interval grows to 20x its
duration on a large store."""
SAMPLE_TIMEOUT: Final = 10.0
DELIVER, ACKNOWLEDGE = "deliver", "acknowledge"
RouteKey = tuple[str, str, str, str]
"""(src_chain, dst_chain, role, state)"""


class RelayMetrics(Protocol):
    """What the pipeline reports; each call is O(1) in memory."""

    def transition(self, t: Transition) -> None:
        """A state change the store accepted."""

    def batch_submitted(self, chain: str, to: State, size: int) -> None:
        """A delivery (``to`` = delivery_submitted) or acknowledgement batch the chain took."""


class NoMetrics:
    """Metrics off: every report is dropped."""

    def transition(self, t: Transition) -> None:
        pass

    def batch_submitted(self, chain: str, to: State, size: int) -> None:
        pass


NO_METRICS: Final = NoMetrics()


class _StageView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def pending(self) -> Sized: ...


class StagesView(Protocol):
    """The pipeline as the metrics see it: its stages, each with its admitted rows."""

    @property
    def stages(self) -> Sequence[_StageView]: ...


class MessageCounts(Protocol):
    async def count_by_route(self) -> Mapping[tuple[str, str, Role, State], int]: ...


class AuditReads(Protocol):
    async def audit_head(self) -> tuple[int, str] | None: ...

    async def audit_checkpoint(self, seq: int = 0) -> Any: ...


def _version() -> str:
    try:
        return metadata.version("interop-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


class _QueueDepths(Collector):
    """``gateway_queue_depth``, read from the pipeline's stages when scraped."""

    def __init__(self) -> None:
        self.pipeline: StagesView | None = None
        self.standby = False
        """A standby's stopped pipeline may still hold rows: it reports 0 for each stage."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "gateway_queue_depth",
            "Rows admitted to a pipeline stage: queued, in flight or waiting to retry.",
            labels=["stage"],
        )
        if self.pipeline is not None:
            for st in self.pipeline.stages:
                family.add_metric([st.name], 0 if self.standby else len(st.pending))
        yield family


class Metrics:
    """The gateway's series, their sampling, and the HTTP probes (one per gateway process)."""

    def __init__(
        self,
        *,
        replica: str = "",
        version: str | None = None,
        sample_seconds: float = 5.0,
        messages_seconds: float = 5.0,
    ) -> None:
        # No *_created series (they double the output for nothing); process-wide, untyped.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.replica = replica
        self.sample_seconds = sample_seconds
        self.messages_seconds = messages_seconds
        r = self.registry
        route = ["src_chain", "dst_chain", "role", "state"]
        self.messages = Gauge("gateway_messages", "Rows by route and state.", route, registry=r)
        self.transitions = Counter(
            "gateway_transitions", "State changes committed by this process.", route, registry=r
        )
        self.stage_seconds = Histogram(
            "gateway_stage_seconds",
            "Seconds a row spent in the state it left (stage = role:state).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._queues = _QueueDepths()
        r.register(self._queues)
        self.batch_size = Histogram(
            "gateway_batch_size",
            "Rows per submitted delivery or acknowledgement transaction.",
            ["chain", "kind"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.chain_head = Gauge("gateway_chain_head", "Latest block.", ["chain"], registry=r)
        self.final_head = Gauge(
            "gateway_chain_final_head", "Latest final block.", ["chain"], registry=r
        )
        self.endpoint_up = Gauge(
            "gateway_endpoint_up",
            "1 if the endpoint's last call succeeded.",
            ["chain", "endpoint"],
            registry=r,
        )
        self.failovers = Counter(
            "gateway_endpoint_failovers",
            "Endpoints seen going down while another endpoint of the chain was up.",
            ["chain"],
            registry=r,
        )
        self.verification_failures = Counter(
            "gateway_verification_failures",
            "Evidence the verifier rejected, by the check that failed.",
            ["check"],
            registry=r,
        )
        self.leader = Gauge("gateway_leader", "1 active, 0 standby.", ["replica"], registry=r)
        self.audit_records = Gauge(
            "gateway_audit_records", "Records in the audit chain.", registry=r
        )
        self.audit_checkpoints = Counter(
            "gateway_audit_checkpoints", "Audit checkpoints seen stored.", registry=r
        )
        Gauge("gateway_build_info", "The running version.", ["version"], registry=r).labels(
            version or _version()
        ).set(1)
        self._entered: dict[tuple[bytes, Role], tuple[State, float]] = {}
        self._counted: dict[tuple[str, str, Role, State], Counter] = {}
        self._timed: dict[tuple[Role, State], Histogram] = {}
        """Label children by key: ``labels()`` costs more than the increment it selects."""
        self._active = False
        self._ready = False
        self._store: Any = None
        self._adapters: dict[str, ChainAdapter] = {}
        self._endpoints: dict[str, dict[str, bool]] = {}
        self._message_keys: set[RouteKey] = set()
        self._messages_due = 0.0
        self._checkpoint_seq: int | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._sampling = asyncio.Lock()
        self._failing: set[str] = set()
        self._runner: web.AppRunner | None = None
        if replica:
            self.set_leader(replica, False)  # standby until told otherwise

    # -- reports from the relay ---------------------------------------------------------------

    def transition(self, t: Transition) -> None:
        m = t.message
        src, dst = (m.src_chain, m.dst_chain) if m is not None else ("unknown", "unknown")
        counter = self._counted.get((src, dst, t.role, t.to))
        if counter is None:
            counter = self.transitions.labels(src, dst, str(t.role), str(t.to))
            self._counted[(src, dst, t.role, t.to)] = counter
        counter.inc()
        key = (t.id, t.role)
        before = self._entered.pop(key, None)
        if before is not None:
            state, since = before
            timer = self._timed.get((t.role, state))
            if timer is None:
                timer = self._timed[(t.role, state)] = self.stage_seconds.labels(
                    f"{t.role}:{state}"
                )
            timer.observe(max(0.0, t.at - since))
        if (t.role, t.to) not in TERMINAL:
            if len(self._entered) >= MAX_TRACKED_ROWS:
                del self._entered[next(iter(self._entered))]
            self._entered[key] = (t.to, t.at)

    def batch_submitted(self, chain: str, to: State, size: int) -> None:
        kind = DELIVER if to is State.DELIVERY_SUBMITTED else ACKNOWLEDGE
        self.batch_size.labels(chain, kind).observe(size)

    def verification_failed(self, check: str) -> None:
        self.verification_failures.labels(check).inc()

    def set_leader(self, replica: str, active: bool) -> None:
        """This replica became active (True) or standby (False); ``/readyz`` says which."""
        self.replica = replica
        self._active = active
        self._queues.standby = not active
        self.leader.labels(replica).set(1 if active else 0)

    def set_ready(self, ready: bool) -> None:
        """The store is open and the gRPC server serves (``/readyz`` answers 200)."""
        self._ready = ready

    @property
    def readiness(self) -> str | None:
        """``active`` or ``standby`` when ready, else None."""
        if not self._ready:
            return None
        return "active" if self._active else "standby"

    # -- sampling -----------------------------------------------------------------------------

    def watch(
        self,
        *,
        store: Any = None,
        pipeline: StagesView | None = None,
        adapters: Mapping[str, ChainAdapter] | None = None,
    ) -> None:
        """Start sampling these (every ``sample_seconds``) until :meth:`unwatch`; ready."""
        self._store = store
        self._queues.pipeline = pipeline
        self._adapters = dict(adapters or {})
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample_loop(), name="metrics-sampler")
        self.set_ready(True)

    async def unwatch(self) -> None:
        """Not ready; stop sampling (before the adapters and the store close)."""
        self.set_ready(False)
        task, self._sampler = self._sampler, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._store, self._adapters, self._queues.pipeline = None, {}, None

    async def _sample_loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.sample_seconds)

    async def sample(self) -> None:
        """One round: chains, audit chain, and the message counts when due. Failures are
        logged and the series keep their last values. One round at a time."""
        async with self._sampling:
            parts = [self._sample_chain(n, a) for n, a in self._adapters.items()]
            parts += [self._sample_audit(), self._sample_messages()]
            outcomes = await asyncio.gather(*parts, return_exceptions=True)
        failing = set()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                failing.add(f"{type(outcome).__name__}: {outcome}")
            elif isinstance(outcome, BaseException):
                raise outcome
        for reason in sorted(failing - self._failing):  # once while it lasts, not every round
            log.warning("metrics_sample_failed", reason=reason)
        self._failing = failing

    async def _sample_chain(self, chain: str, adapter: ChainAdapter) -> None:
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                status = await adapter.status()
        except Exception:
            # status() tries every endpoint: none answered.
            self._set_endpoints(chain, dict.fromkeys(self._endpoints.get(chain, {}), False))
            raise
        self.chain_head.labels(chain).set(status.head)
        self.final_head.labels(chain).set(status.final_head)
        self._set_endpoints(chain, {e.url: e.healthy for e in status.endpoints})

    def _set_endpoints(self, chain: str, now: dict[str, bool]) -> None:
        before = self._endpoints.get(chain, {})
        for name, up in now.items():
            self.endpoint_up.labels(chain, name).set(1 if up else 0)
            others_up = any(v for other, v in now.items() if other != name)
            if before.get(name) and not up and others_up:
                self.failovers.labels(chain).inc()
        self._endpoints[chain] = now

    async def _sample_audit(self) -> None:
        store = self._store
        if not (hasattr(store, "audit_head") and hasattr(store, "audit_checkpoint")):
            return
        reads: AuditReads = store
        head = await reads.audit_head()
        self.audit_records.set(head[0] if head is not None else 0)
        if self._checkpoint_seq is None:
            newest = await reads.audit_checkpoint(0)
            self._checkpoint_seq = newest.seq if newest is not None else 0
            return
        for _ in range(1000):  # the checkpoints stored since the last look, one query each
            cp = await reads.audit_checkpoint(self._checkpoint_seq + 1)
            if cp is None:
                return
            self._checkpoint_seq = cp.seq
            self.audit_checkpoints.inc()

    async def _sample_messages(self) -> None:
        store = self._store
        if not hasattr(store, "count_by_route") or time.monotonic() < self._messages_due:
            return
        counts: MessageCounts = store
        began = time.monotonic()
        rows = await counts.count_by_route()
        took = time.monotonic() - began
        self._messages_due = began + max(self.messages_seconds, took / QUERY_SHARE)
        now = {(s, d, str(role), str(state)): n for (s, d, role, state), n in rows.items()}
        for key in self._message_keys - now.keys():
            self.messages.labels(*key).set(0)
        for key, n in now.items():
            self.messages.labels(*key).set(n)
        self._message_keys |= now.keys()

    # -- HTTP ---------------------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def start_http(self, listen: str) -> tuple[str, int]:
        """Serve ``/metrics``, ``/livez`` and ``/readyz`` on ``host:port`` (port 0: any free
        one); returns the bound address. Raises OSError when the port is taken."""
        host, _, port = listen.rpartition(":")
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host.strip("[]"), int(port))
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        log.info("metrics_listening", listen=f"{host}:{bound[1]}")
        return str(bound[0]), int(bound[1])

    async def stop_http(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @contextlib.asynccontextmanager
    async def serving(self, listen: str | None) -> AsyncIterator[Metrics]:
        """The HTTP probes for the block when ``listen`` is set; sampling stops at its end."""
        if listen:
            await self.start_http(listen)
        try:
            yield self
        finally:
            await self.unwatch()
            await self.stop_http()

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _livez(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        state = self.readiness
        if state is None:
            return web.Response(status=503, text="not ready\n")
        return web.Response(text=state + "\n")


class CountingVerifier:
    """The pipeline's verifier, counting each ``EvidenceRejected`` by its check."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> Any:
        try:
            return await self.inner.verify_message(message, message_id, bundle)
        except EvidenceRejected as exc:
            self.metrics.verification_failed(exc.check)
            raise

    async def verify_result(
        self,
        message: Message,
        message_id: bytes,
        result: DeliveryResult,
        bundle: Mapping[str, Any],
    ) -> Any:
        try:
            return await self.inner.verify_result(message, message_id, result, bundle)
        except EvidenceRejected as exc:
            self.metrics.verification_failed(exc.check)
            raise


__all__ = ["NO_METRICS", "CountingVerifier", "Metrics", "NoMetrics", "RelayMetrics"]
