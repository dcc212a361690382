"""A gateway node: store + adapters + verifier + links + pipeline, from explicit arguments.

``gateway run`` (a later step) builds these from the TOML configuration and adds the gRPC
server; tests build them directly. The node owns the lifecycle: ``start`` opens the store and
starts the pipeline, ``stop`` drains it (no new observations, in-flight submissions finish) and
closes the adapters and the store. A replica (relay/replica.py) opens the store with
``start(pipeline=False)`` and runs a fresh pipeline with ``start_pipeline``/``stop_pipeline``
each time it holds the gateway's lease (a stopped pipeline's queues are not reused).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from adapters.base import ChainAdapter, Submission
from relay.crash import check_environment
from relay.links import PeerLink
from relay.metrics import NO_METRICS, RelayMetrics
from relay.pipeline import MessageVerifier, Pipeline, PipelineSettings, Stage
from relay.store import Store

log = structlog.get_logger(__name__)


class InvalidRequest(Exception):
    """A developer request the gateway refuses (unknown chain or route, timeout not positive)."""

    retryable = False


@dataclass(frozen=True, slots=True)
class SentMessage:
    id: bytes
    submission: Submission
    timeout: int
    """The absolute timeout, in the destination chain's seconds, that was submitted."""


class GatewayNode:
    def __init__(
        self,
        *,
        store: Store,
        adapters: Mapping[str, ChainAdapter],
        verifier: MessageVerifier,
        routes: Iterable[tuple[str, str]],
        links: Mapping[str, PeerLink] | None = None,
        peer_chains: Mapping[str, Iterable[str]] | None = None,
        settings: PipelineSettings | None = None,
        start_heights: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        chain_time: Mapping[str, Callable[[], Awaitable[int]]] | None = None,
        metrics: RelayMetrics = NO_METRICS,
    ) -> None:
        """``closers`` are awaited by :meth:`stop` after the adapters (e.g. the trust store's
        endpoint clients). ``chain_time`` reads a remote chain's latest block time in seconds
        (from its read endpoints) for :meth:`send_message`; served chains use their adapter."""
        self.store = store
        self._chain_time = dict(chain_time or {})
        self._closers = tuple(closers)
        self.adapters = dict(adapters)
        self.routes = frozenset(routes)
        self._new_pipeline = functools.partial(
            Pipeline,
            store=store,
            adapters=self.adapters,
            verifier=verifier,
            routes=self.routes,
            links=links or {},
            peer_chains=peer_chains or {},
            settings=settings or PipelineSettings(),
            start_heights=start_heights,
            clock=clock,
            metrics=metrics,
        )
        self.pipeline = self._new_pipeline()
        self._started = False
        self._running = False
        self._ran = False

    @property
    def handler(self) -> Pipeline:
        """The ``InboundHandler`` the gRPC ``RelayService`` calls."""
        return self.pipeline

    @property
    def stages(self) -> list[Stage]:
        """The current pipeline's stages (its queues, for the metrics)."""
        return self.pipeline.stages

    async def start(self, *, pipeline: bool = True) -> None:
        """Open the store and (unless ``pipeline`` is False: a replica) start the pipeline."""
        check_environment()
        await self.store.open()
        self._started = True
        if pipeline:
            await self.start_pipeline()
        log.info("gateway_started", chains=sorted(self.adapters), routes=len(self.routes))

    async def start_pipeline(self) -> None:
        """Start the pipeline; after a stop, a new one (nothing queued by the old one)."""
        if self._running:
            return
        if self._ran:
            self.pipeline = self._new_pipeline()
        self._running = self._ran = True
        await self.pipeline.start()

    async def stop_pipeline(self, *, drain: bool = True) -> None:
        """Stop the pipeline; ``drain=False`` cancels in-flight batches at once (a replica
        that lost its lease: they could not write their outcome anyway)."""
        if self._running:
            self._running = False
            await self.pipeline.stop(drain_timeout=None if drain else 0.0)

    async def stop(self) -> None:
        if self._started:
            await self.stop_pipeline()
        for adapter in self.adapters.values():
            await adapter.close()
        for close in self._closers:
            await close()
        await self.store.close()
        self._started = False
        log.info("gateway_stopped")

    async def send_message(
        self,
        src_chain: str,
        dst_chain: str,
        receiver: bytes,
        payload: bytes,
        timeout_seconds: int,
    ) -> SentMessage:
        """Submit ``sendMessage`` on ``src_chain`` from its sender account.

        The timeout is relative: it becomes the destination chain's latest block time plus
        ``timeout_seconds`` (the destination decides expiry by its own clock, requirement 18);
        0 or less is refused.
        """
        if timeout_seconds <= 0:
            raise InvalidRequest("timeout_seconds must be positive (0 would expire at once)")
        adapter = self.adapters.get(src_chain)
        if adapter is None:
            raise InvalidRequest(f"chain {src_chain!r} is not served by this gateway")
        if (src_chain, dst_chain) not in self.routes:
            raise InvalidRequest(f"no route from {src_chain!r} to {dst_chain!r}")
        timeout = await self._latest_time(dst_chain) + timeout_seconds
        mid, submission = await adapter.send_message(dst_chain, receiver, payload, timeout)
        log.info(
            "message_sent",
            message_id="0x" + mid.hex(),
            src_chain=src_chain,
            dst_chain=dst_chain,
            tx_hash=submission.tx_hash,
            timeout=timeout,
        )
        return SentMessage(mid, submission, timeout)

    async def _latest_time(self, chain: str) -> int:
        dst = self.adapters.get(chain)
        if dst is not None:
            return (await dst.status()).timestamp
        read = self._chain_time.get(chain)
        if read is None:
            raise InvalidRequest(f"the time of chain {chain!r} is not known here")
        return await read()
