"""The relay pipeline: explicit stages with bounded queues, driven by the store, exactly once.

Source side (facts of a chain this gateway serves)::

    observe ─> verify ─> forward (PeerLink) ···> [destination] ··· acknowledge (inbound)
            ─> acknowledge in batches ─> observe ``acknowledged`` ─> closed

Destination side::

    handle_forward (inbound: verify with own trust, persist only verified) ─> deliver in batches
    ─> observe ``delivery_result`` ─> verify ─> acknowledge back (PeerLink)

Every step is a conditional store transition, so a step repeated after a crash or a duplicate
call is a no-op; on chain the contract makes deliveries and acknowledgements at-most-once. A
:class:`Stage` admits at most ``queue_bound`` rows (queued, in flight, or waiting to retry): when
the next stage is full, the previous stage's worker waits, and at the head the observer stops
reading and its cursor stops advancing; nothing is dropped, it stays in the store. Each stage
also scans the store for due rows, which is how retries and a restart pick work up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from adapters.base import ChainAdapter, Evidence, Fact, FactKind, RejectedByChain, Submission
from relay.audit import Reliance
from relay.crash import crash_point
from relay.links import AckItem, ForwardItem, InboundHandler, PeerLink, Verdict, VerdictKind
from relay.local_link import LOCAL_PEER, LocalLink
from relay.metrics import NO_METRICS, RelayMetrics
from relay.retry import Decision, RetryPolicy, StuckReporter, classify, describe
from relay.store import (
    Hop,
    MessageRecord,
    RejectedAttempt,
    Role,
    State,
    Store,
    Transition,
    fact_from_locator,
    fact_locator,
)
from verifier.messages import DeliveryResult, DeliveryStatus, Message

log = structlog.get_logger(__name__)

Key = tuple[bytes, Role]
_PERSIST_CHUNK = 100
"""Facts of one observed page persisted concurrently (bounds the store's queue)."""
MAX_REFETCH: Final = 3
"""Other endpoints asked, per attempt, for an own-chain fact whose evidence failed; then the
attempt backs off (retried, shown as stuck), never a rejection of the message."""
MAX_REMEMBERED_FACTS: Final = 10_000
MAX_INBOUND_VERIFICATIONS: Final = 32
REJECTED_WRITES_PER_PEER: Final = 50
RESENDS_PER_PEER: Final = 50
"""Stored results re-sent per peer per ``REJECTED_WINDOW`` in answer to repeated Forwards."""
REJECTED_WINDOW: Final = 10.0
"""Rejected attempts recorded per peer per window (requirement 19): each is a store write, and
a peer's garbage must not hold the store's lock; the rest are counted in a log line."""


class MessageVerifier(Protocol):
    """What the pipeline needs from ``relay.verify.FactVerifier``: the receiving side's checks
    against its own trust roots. Raises ``EvidenceRejected`` or ``NotYetTrusted``."""

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> Any: ...

    async def verify_result(
        self,
        message: Message,
        message_id: bytes,
        result: DeliveryResult,
        bundle: Mapping[str, Any],
    ) -> Any: ...


class RelayTuning(Protocol):
    """``relay.config.RelaySettings`` as read here (so the pipeline does not import config)."""

    @property
    def batch_size(self) -> int: ...

    @property
    def batch_wait(self) -> float: ...

    @property
    def queue_bound(self) -> int: ...

    @property
    def retry_initial(self) -> float: ...

    @property
    def retry_max(self) -> float: ...

    @property
    def stuck_after(self) -> float: ...

    @property
    def max_blocks(self) -> int: ...

    @property
    def poll_interval(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    batch_size: int = 50
    batch_wait: float = 0.5
    queue_bound: int = 1000
    retry_initial: float = 0.5
    retry_max: float = 30.0
    stuck_after: float = 120.0
    max_blocks: int = 1000
    poll_interval: float = 1.0
    recheck_after: float = 30.0
    """A submitted delivery or acknowledgement whose fact has not been observed after this long
    is checked on chain at its final block, every endpoint agreeing: done there, its fact is
    fetched by id (an acknowledgement closes); not done after the submission's block is final,
    it is resubmitted, once per row and process. A forwarded message without a result after
    this long is forwarded again. Not in ``RelaySettings`` (relay/config.py) yet: set it here."""
    drain_timeout: float = 30.0

    @classmethod
    def from_relay(cls, relay: RelayTuning, **overrides: Any) -> PipelineSettings:
        values = {
            f: getattr(relay, f)
            for f in (
                "batch_size",
                "batch_wait",
                "queue_bound",
                "retry_initial",
                "retry_max",
                "stuck_after",
                "max_blocks",
                "poll_interval",
            )
        }
        return cls(**{**values, **overrides})


Handler = Callable[["Stage", list[MessageRecord]], Awaitable[None]]


class Stage:
    """One step's bounded set of admitted rows, a ready queue, and one worker taking batches."""

    def __init__(
        self,
        name: str,
        *,
        role: Role,
        states: frozenset[State],
        chain: str | None,
        bound: int,
        batch_size: int,
        batch_wait: float,
        handler: Handler,
    ) -> None:
        self.name = name
        self.role = role
        self.states = states
        self.chain = chain
        self.bound = max(1, bound)
        self.batch_size = max(1, batch_size)
        self.batch_wait = batch_wait
        self.handler = handler
        self.pending: dict[Key, MessageRecord] = {}
        self.uncertain: set[Key] = set()
        """Rows whose previous attempt's outcome is unknown (a failure, a restart): check the
        chain before submitting them again."""
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._space = asyncio.Condition()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self.busy = False
        self.reserved = 0

    def full(self) -> bool:
        return len(self.pending) + self.reserved >= self.bound

    def reserve(self) -> bool:
        """Hold a slot for a row about to be admitted (after an await); False when full."""
        if self.full():
            return False
        self.reserved += 1
        return True

    def unreserve(self) -> None:
        self.reserved -= 1

    def _add(self, rec: MessageRecord, uncertain: bool) -> None:
        if rec.key in self.pending:
            return
        self.pending[rec.key] = rec
        if uncertain:
            self.uncertain.add(rec.key)
        self._ready.put_nowait(rec.key)

    async def admit(self, rec: MessageRecord, *, uncertain: bool = False) -> None:
        """Wait for room, then admit (backpressure on the caller)."""
        async with self._space:
            await self._space.wait_for(lambda: rec.key in self.pending or not self.full())
            self._add(rec, uncertain)

    def try_admit(self, rec: MessageRecord, *, uncertain: bool = False) -> bool:
        if rec.key not in self.pending and self.full():
            return False
        self._add(rec, uncertain)
        return True

    async def release(self, key: Key) -> None:
        self.pending.pop(key, None)
        self.uncertain.discard(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        async with self._space:
            self._space.notify_all()

    def retry(self, rec: MessageRecord, delay: float) -> None:
        """Keep the row admitted (it still counts against the bound) and retry after ``delay``."""
        self.pending[rec.key] = rec
        self.uncertain.add(rec.key)

        def ready() -> None:
            self._timers.pop(rec.key, None)
            if rec.key in self.pending:
                self._ready.put_nowait(rec.key)

        self._timers[rec.key] = asyncio.get_running_loop().call_later(max(0.0, delay), ready)

    async def take_batch(self) -> list[MessageRecord]:
        keys = [await self._ready.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_wait
        while len(keys) < self.batch_size:
            try:
                keys.append(self._ready.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                keys.append(await asyncio.wait_for(self._ready.get(), remaining))
            except TimeoutError:
                break
        seen: set[Key] = set()
        batch = []
        for key in keys:
            if key in self.pending and key not in seen:
                seen.add(key)
                batch.append(self.pending[key])
        return batch

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class StrayCancellation(Exception):
    """A ``CancelledError`` this task did not ask for (raised by a library call inside a
    stage): handled as a transient failure of the batch, so the worker lives on."""

    retryable = True  # relay.retry.classify: retried with backoff, like a dropped connection


def _cancelled_here() -> bool:
    """True when the current task itself is being cancelled (``Task.cancel`` was called on it:
    stopping), False for a ``CancelledError`` that came out of a call it awaited."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _stray(exc: asyncio.CancelledError) -> str:
    detail = str(exc) or "no message"
    return f"a call was cancelled under this task ({detail})"


def _reliance(verified: Any) -> Reliance | None:
    """What a verification relied on, for the audit record: the bundle's digest and the trust
    root it was checked under (``relay.verify.VerifiedFact``); None from a verifier that does
    not say (test doubles)."""
    digest = getattr(verified, "evidence_digest", None)
    if not isinstance(digest, str):
        return None
    relied = getattr(verified, "relied_trust", None)
    summary = getattr(verified, "trust", None)
    return Reliance(
        digest,
        relied if isinstance(relied, Mapping) and relied else None,
        summary if isinstance(summary, Mapping) else None,
    )


def _hex(id: bytes) -> str:
    return "0x" + id.hex()


class Pipeline(InboundHandler):
    """The stages of every route this gateway serves an end of, and the inbound handler."""

    def __init__(
        self,
        *,
        store: Store,
        adapters: Mapping[str, ChainAdapter],
        verifier: MessageVerifier,
        routes: Iterable[tuple[str, str]],
        links: Mapping[str, PeerLink],
        peer_chains: Mapping[str, Iterable[str]],
        settings: PipelineSettings = PipelineSettings(),
        start_heights: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
        metrics: RelayMetrics = NO_METRICS,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.adapters = dict(adapters)
        self.verifier = verifier
        self.routes = frozenset(routes)
        self.links = dict(links)
        """Remote chain name -> the link to the peer serving it (local chains use ``local``)."""
        self.peer_chains = {p: frozenset(c) for p, c in peer_chains.items()}
        self.settings = settings
        self.start_heights = dict(start_heights or {})
        self.clock = clock
        self.policy = policy or RetryPolicy(settings.retry_initial, settings.retry_max)
        self.stuck = StuckReporter(store, settings.stuck_after)
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[tuple[Stage, asyncio.Task[None]]] = []
        self._stopping = asyncio.Event()
        self._local = LocalLink(self)
        self._inbound = asyncio.Semaphore(MAX_INBOUND_VERIFICATIONS)
        """Bounds the verifications that peers' batches start at once (requirement 19; the
        gRPC layer adds per-peer limits)."""
        self._facts: dict[bytes, Fact] = {}
        """Sent facts observed and not yet verified, kept so that a rejected one can be
        refetched from other endpoints (bounded; after a restart the store's locator is used)."""
        self._inflight: set[tuple[bytes, Role]] = set()
        """Ids whose inbound Forward (destination) or Acknowledge (source) is being verified:
        a copy arriving meanwhile is answered "retry" instead of verified again."""
        self._rejected_window: dict[str, tuple[float, int]] = {}
        self._resubmitted: set[Key] = set()
        """Rows a recheck sent back to be submitted again (at most once per row and process);
        discarded when the row moves on through a fact."""
        self._resend_window: dict[str, tuple[float, int]] = {}
        """Results re-sent per peer per window (``_resend_result``)."""
        self._resends: set[asyncio.Task[None]] = set()
        s = settings

        def stage(
            name: str,
            role: Role,
            states: set[State],
            chain: str | None,
            handler: Handler,
            *,
            batched: bool = True,
        ) -> Stage:
            return Stage(
                name,
                role=role,
                states=frozenset(states),
                chain=chain,
                bound=s.queue_bound,
                batch_size=s.batch_size,
                batch_wait=s.batch_wait if batched else 0.0,
                handler=handler,
            )

        self.verify_stage = stage(
            "verify", Role.SOURCE, {State.OBSERVED}, None, self._verify_sent, batched=False
        )
        # FORWARDED rows come back after ``recheck_after`` without a result: a lost commit or
        # a false "accepted" must not strand them (the destination answers a repeat from its
        # store, and re-sends a result it already forwarded).
        self.forward_stage = stage(
            "forward", Role.SOURCE, {State.VERIFIED, State.FORWARDED}, None, self._forward
        )
        self.result_stage = stage(
            "result_forward",
            Role.DESTINATION,
            {State.DELIVERED, State.EXPIRED},
            None,
            self._forward_results,
        )
        self.deliver_stages = {
            c: stage(f"deliver:{c}", Role.DESTINATION, {State.VERIFIED}, c, self._deliver)
            for c in self.adapters
        }
        self.ack_stages = {
            c: stage(f"ack:{c}", Role.SOURCE, {State.RESULT_VERIFIED}, c, self._acknowledge)
            for c in self.adapters
        }
        self.delivery_check_stages = {
            c: stage(
                f"delivery_check:{c}",
                Role.DESTINATION,
                {State.DELIVERY_SUBMITTED},
                c,
                self._recheck_delivery,
                batched=False,
            )
            for c in self.adapters
        }
        self.ack_check_stages = {
            c: stage(
                f"ack_check:{c}",
                Role.SOURCE,
                {State.ACK_SUBMITTED},
                c,
                self._recheck_ack,
                batched=False,
            )
            for c in self.adapters
        }

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def stages(self) -> list[Stage]:
        return [
            self.verify_stage,
            self.forward_stage,
            self.result_stage,
            *self.deliver_stages.values(),
            *self.ack_stages.values(),
            *self.delivery_check_stages.values(),
            *self.ack_check_stages.values(),
        ]

    async def start(self) -> None:
        self._stopping.clear()
        for st in self.stages:
            self._workers.append((st, asyncio.create_task(self._work(st), name=st.name)))
            self._spawn(f"feed:{st.name}", self._feed, st)
        for chain, adapter in self.adapters.items():
            self._spawn(f"observe:{chain}", self._observe, chain, adapter)
            self._spawn(f"seal:{chain}", self._seal, chain, adapter)
        self._spawn("stuck", self._report_stuck)

    def _spawn(self, name: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(name, fn, *args), name=name))

    async def _supervise(self, name: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """The task boundary: an unexpected error is logged and the loop restarts after a
        backoff, so one bad fact cannot stop a route silently."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await fn(*args)
                return
            except asyncio.CancelledError as exc:
                if _cancelled_here():
                    raise
                failures += 1
                log.error("task_failed", task=name, attempt=failures, reason=_stray(exc))
                await self._sleep(self.policy.delay(failures))
            except Exception as exc:
                failures += 1
                log.exception("task_failed", task=name, attempt=failures, reason=describe(exc))
                await self._sleep(self.policy.delay(failures))

    async def stop(self, *, drain_timeout: float | None = None) -> None:
        """Stop observing, let in-flight batches finish (bounded by ``drain_timeout``, by
        default the settings'; 0 for a replica that lost its lease: cancel them), stop."""
        self._stopping.set()
        for task in [*self._tasks, *self._resends]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self.settings.drain_timeout if drain_timeout is None else drain_timeout
        )
        while any(st.busy for st, _ in self._workers) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for st, task in self._workers:
            task.cancel()
            st.cancel_timers()
        await asyncio.gather(*(t for _, t in self._workers), return_exceptions=True)
        self._workers.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _work(self, st: Stage) -> None:
        while not self._stopping.is_set():
            batch = await st.take_batch()
            if not batch:
                continue
            st.busy = True
            try:
                await st.handler(st, batch)
            except asyncio.CancelledError as exc:
                if _cancelled_here():
                    raise
                # A library's own cancellation (a gRPC call cancelled under us) must not end
                # this stage's worker silently: the batch fails like any error and is retried.
                failure = StrayCancellation(_stray(exc))
                log.error("stage_failed", stage=st.name, reason=str(failure))
                for rec in batch:
                    if rec.key in st.pending:
                        await self._failed(st, rec, failure)
            except Exception as exc:
                log.exception("stage_failed", stage=st.name, reason=describe(exc))
                for rec in batch:
                    if rec.key in st.pending:
                        await self._failed(st, rec, exc)
            finally:
                st.busy = False

    async def _feed(self, st: Stage) -> None:
        """Admit due rows from the store: retries whose time has come and work left by a
        restart. Rows it admits are "uncertain": their last attempt's outcome is unknown."""
        while not self._stopping.is_set():
            if not st.full():
                rows = await self.store.due(
                    st.role, st.states, self.clock(), chain=st.chain, limit=st.bound
                )
                for rec in rows:
                    if rec.key not in st.pending and not st.try_admit(rec, uncertain=True):
                        break
            await self._sleep(self.settings.poll_interval)

    async def _report_stuck(self) -> None:
        period = max(0.05, min(self.settings.stuck_after / 4, 5.0))
        while not self._stopping.is_set():
            await self.stuck.report(self.clock())
            await self._sleep(period)

    # -- state changes and failures -----------------------------------------------------------

    async def _transition(self, t: Transition) -> bool:
        changed = await self.store.transition(t)
        if changed:
            self.metrics.transition(t)
            m = t.message
            log.info(
                f"message_{t.to}",
                message_id=_hex(t.id),
                role=str(t.role),
                src_chain=m.src_chain if m else None,
                dst_chain=m.dst_chain if m else None,
                height=t.height,
                tx_hash=t.tx_hash,
                reason=t.error,
            )
        return changed

    def _move(
        self, rec: MessageRecord, to: State, *, expect: Iterable[State] | None = None, **kw: Any
    ) -> Transition:
        return Transition(
            id=rec.id,
            role=rec.role,
            to=to,
            expect=frozenset(expect) if expect is not None else frozenset({rec.state}),
            at=self.clock(),
            message=None,
            **kw,
        )

    async def _failed(
        self, st: Stage, rec: MessageRecord, exc: BaseException, *, own_chain: bool = False
    ) -> Decision:
        """Record a failed attempt; retry it later (kept in the stage) or stop (released).
        ``own_chain``: a fact read from a chain this gateway serves (see ``classify``); its
        retry does not keep a slot (``_feed`` admits the row again when due), so facts an
        endpoint invented cannot fill the stage and stall the chain's observation."""
        attempt = rec.attempts + 1
        outcome = self.policy.outcome(exc, attempt, self.clock(), own_chain=own_chain)
        current = await self.store.record_attempt(
            rec.id,
            rec.role,
            state=rec.state,
            error=outcome.reason,
            next_try_at=outcome.next_try_at,
            at=self.clock(),
        )
        if not current:
            # The row has moved on meanwhile (another path completed the step): nothing to retry.
            await st.release(rec.key)
            return outcome.decision
        event = log.warning if outcome.decision is Decision.RETRY else log.error
        event(
            "attempt_failed",
            stage=st.name,
            message_id=_hex(rec.id),
            attempt=attempt,
            decision=str(outcome.decision),
            reason=outcome.reason,
        )
        if outcome.decision is Decision.RETRY and not own_chain:
            st.retry(
                dataclasses.replace(rec, attempts=attempt, last_error=outcome.reason),
                outcome.next_try_at - self.clock(),
            )
        else:
            await st.release(rec.key)
        return outcome.decision

    async def _bundle(self, id: bytes, hop: Hop) -> tuple[Mapping[str, Any], str] | None:
        for ev in await self.store.evidence(id):
            if ev.hop is hop:
                return ev.bundle, ev.endpoint
        return None

    # -- observation --------------------------------------------------------------------------

    async def _observe(self, chain: str, adapter: ChainAdapter) -> None:
        cursor = await self.store.get_cursor(chain)
        if cursor is None:
            height = self.start_heights.get(chain)
            if height is None:
                height = (await adapter.status()).head
            cursor = adapter.initial_cursor(height)
            await self.store.set_cursor(chain, cursor, self.clock())
        failures = 0
        while not self._stopping.is_set():
            try:
                page = await adapter.facts(cursor, max_blocks=self.settings.max_blocks)
                if page.facts:
                    crash_point("after_observe")
                admitted = await self._persist_page(chain, adapter, page.facts)
            except Exception as exc:
                if classify(exc) is not Decision.RETRY:
                    raise
                failures += 1
                log.warning("observe_failed", chain=chain, attempt=failures, reason=describe(exc))
                await self._sleep(self.policy.delay(failures))
                continue
            failures = 0
            for st, rec in admitted:
                await st.admit(rec)  # blocks while the next stage is full: backpressure
            if page.cursor != cursor:
                await self.store.set_cursor(chain, page.cursor, self.clock())
                cursor = page.cursor
            else:
                await self._sleep(self.settings.poll_interval)

    async def _persist_page(
        self, chain: str, adapter: ChainAdapter, facts: Sequence[Fact]
    ) -> list[tuple[Stage, MessageRecord]]:
        # The first fact alone (a crash point sits after it), then the rest in concurrent
        # chunks: one at a time, each waiting for its own store round trips, the observer was
        # the relay's slowest stage. Facts of one page are of different messages (a fact needs
        # the one before it on the other chain), so their order within a chunk does not matter.
        found = [await self._persist_fact(chain, adapter, f) for f in facts[:1]]
        for start in range(1, len(facts), _PERSIST_CHUNK):
            if start == 1:
                crash_point("mid_batch_persist")
            chunk = facts[start : start + _PERSIST_CHUNK]
            found += await asyncio.gather(*(self._persist_fact(chain, adapter, f) for f in chunk))
        return [f for f in found if f is not None]

    async def _persist_fact(
        self, chain: str, adapter: ChainAdapter, fact: Fact
    ) -> tuple[Stage, MessageRecord] | None:
        now = self.clock()
        if fact.kind is FactKind.MESSAGE_SENT:
            m = fact.message
            if m is None or fact.evidence is None or m.src_chain != chain:
                log.warning("fact_ignored", chain=chain, kind=str(fact.kind), reason="incomplete")
                return None
            if (m.src_chain, m.dst_chain) not in self.routes:
                log.info("fact_ignored", chain=chain, message_id=_hex(fact.id), reason="no route")
                return None
            t = Transition(
                id=fact.id,
                role=Role.SOURCE,
                to=State.OBSERVED,
                expect=None,
                at=now,
                message=m,
                evidence=(Hop.MESSAGE_SENT, fact.evidence.bundle, fact.evidence.endpoint),
                fact=fact_locator(fact),  # to fetch its evidence again, after a restart too
                height=fact.height,
                tx_hash=fact.tx_hash,
            )
            if await self._transition(t):
                if len(self._facts) < MAX_REMEMBERED_FACTS:
                    self._facts[fact.id] = fact
                rec = await self.store.get(fact.id, Role.SOURCE)
                if rec is not None:
                    return self.verify_stage, rec
            return None
        if fact.kind is FactKind.DELIVERY_RESULT:
            return await self._persist_result(chain, adapter, fact)
        if fact.kind is FactKind.ACKNOWLEDGED:
            await self._persist_ack(chain, adapter, fact)
            return None
        if fact.kind is FactKind.UNUSABLE_SEAL and fact.seal_number is not None:
            try:
                sub = await adapter.requeue(fact.seal_number)
            except Exception as exc:
                if classify(exc) is Decision.RETRY:
                    raise
                log.error(
                    "seal_requeue_failed", chain=chain, seal=fact.seal_number, reason=describe(exc)
                )
                return None
            log.info(
                "seal_requeued",
                chain=chain,
                seal=fact.seal_number,
                tx_hash=sub.tx_hash,
                reason=fact.reason,
            )
        return None

    async def _persist_result(
        self, chain: str, adapter: ChainAdapter, fact: Fact
    ) -> tuple[Stage, MessageRecord] | None:
        """A delivery result on this (destination) chain moves the row only once its evidence
        verified against the stored message: an endpoint's word alone must not end delivery."""
        if fact.result is None or fact.evidence is None:
            log.warning("fact_ignored", chain=chain, kind=str(fact.kind), reason="incomplete")
            return None
        rec = await self.store.get(fact.id, Role.DESTINATION)
        if rec is None:
            log.info("fact_ignored", chain=chain, message_id=_hex(fact.id), reason="unknown")
            return None
        if rec.dst_chain != chain or fact.result.id != fact.id or rec.message is None:
            log.error(
                "fact_ignored",
                chain=chain,
                message_id=_hex(fact.id),
                reason=f"a result for a message to {rec.dst_chain} read from {chain}",
            )
            return None
        if rec.state not in {State.VERIFIED, State.DELIVERY_SUBMITTED}:
            return None
        try:
            fact, relied = await self._verified_result(rec, adapter, fact)
        except Exception as exc:
            # Kept to fetch again later (the delivery check does), never as evidence: the row
            # stays where it is, with the attempt and its reason visible.
            await self.store.save_fact(
                rec.id, Hop.DELIVERY_RESULT, fact_locator(fact, with_bundle=True)
            )
            outcome = self.policy.outcome(exc, rec.attempts + 1, self.clock(), own_chain=True)
            await self.store.record_attempt(
                rec.id,
                rec.role,
                state=rec.state,
                error=f"result evidence: {outcome.reason}",
                next_try_at=outcome.next_try_at,
                at=self.clock(),
            )
            log.warning(
                "result_unverified", chain=chain, message_id=_hex(rec.id), reason=outcome.reason
            )
            return None
        return await self._result_verified(rec, chain, fact, relied)

    async def _verified_result(
        self, rec: MessageRecord, adapter: ChainAdapter, fact: Fact
    ) -> tuple[Fact, Reliance | None]:
        """``fact`` or the same fact from another endpoint, whichever verifies, with what its
        verification relied on (for the audit record); else raises the last failure."""
        assert rec.message is not None
        avoid: set[str] = set()
        while True:
            assert fact.result is not None
            assert fact.evidence is not None
            try:
                verified = await self.verifier.verify_result(
                    rec.message, rec.id, fact.result, fact.evidence.bundle
                )
                return fact, _reliance(verified)
            except Exception as exc:
                if classify(exc) is not Decision.REJECT:
                    raise
                await self._record_rejected(
                    RejectedAttempt(
                        rec.id,
                        rec.role,
                        Hop.DELIVERY_RESULT,
                        str(getattr(exc, "check", "") or ""),
                        describe(exc),
                        LOCAL_PEER,
                        self.clock(),
                    )
                )
                avoid.add(fact.evidence.endpoint)
                if len(avoid) > MAX_REFETCH:
                    raise
                try:
                    again = await adapter.refetch(fact, avoid=frozenset(avoid))
                except Exception as err:
                    log.warning("refetch_failed", message_id=_hex(rec.id), reason=describe(err))
                    raise exc from None
                if (
                    again.evidence is None
                    or again.result is None
                    or again.evidence.endpoint in avoid
                    or again.id != rec.id
                ):
                    raise
                fact = again

    async def _result_verified(
        self, rec: MessageRecord, chain: str, fact: Fact, relied: Reliance | None
    ) -> tuple[Stage, MessageRecord] | None:
        r, ev = fact.result, fact.evidence
        assert r is not None
        assert ev is not None
        to = State.EXPIRED if r.status is DeliveryStatus.EXPIRED else State.DELIVERED
        t = self._move(
            rec,
            to,
            expect={State.VERIFIED, State.DELIVERY_SUBMITTED},
            result=r,
            # A verified bundle replaces any copy kept before (an older version kept them
            # unverified, first come).
            evidence=(Hop.DELIVERY_RESULT, ev.bundle, ev.endpoint),
            replace_evidence=True,
            height=fact.height,
            tx_hash=fact.tx_hash,
        )
        if await self._transition(dataclasses.replace(t, message=rec.message, audit=relied)):
            self._resubmitted.discard(rec.key)
            await self.deliver_stages[chain].release(rec.key)
            await self.delivery_check_stages[chain].release(rec.key)
            return self.result_stage, dataclasses.replace(
                rec, state=to, result=r, attempts=0, last_error=None
            )
        return None

    async def _persist_ack(self, chain: str, adapter: ChainAdapter, fact: Fact) -> None:
        """An ``acknowledged`` fact (no evidence: read from this gateway's own chain, at
        finality) closes the source row only when it agrees with what is proven and the chain
        confirms it at its final block, every answering endpoint agreeing (the endpoint that
        reported the fact must not be the only one to confirm it).

        With a verified result, the fact's status must equal it (else an alarm, state kept).
        Without one (another relayer may have done the steps), the row closes as acknowledged
        with its status left unknown (None), never with the fact's word for it (requirement 18:
        EXPIRED only on a proven destination result). Unconfirmed, the fact is ignored and the
        row goes on (the ack check closes it on the chain's confirmed state)."""
        rec = await self.store.get(fact.id, Role.SOURCE)
        if rec is None:
            log.info("fact_ignored", chain=chain, message_id=_hex(fact.id), reason="unknown")
            return
        if rec.src_chain != chain:
            log.error(
                "fact_ignored",
                chain=chain,
                message_id=_hex(fact.id),
                reason=f"an acknowledgement of a message from {rec.src_chain} read from {chain}",
            )
            return
        status: DeliveryStatus | None
        if rec.result is not None:
            if fact.ack_status is not rec.result.status:
                log.error(
                    "ack_status_mismatch",
                    chain=chain,
                    message_id=_hex(fact.id),
                    observed=str(fact.ack_status),
                    verified=str(rec.result.status),
                )
                return
            status = rec.result.status
            expect = {State.RESULT_VERIFIED, State.ACK_SUBMITTED}
        else:
            status = None
            expect = {State.OBSERVED, State.VERIFIED, State.FORWARDED}
        if rec.state not in expect:
            return
        try:
            acknowledged = await adapter.sent_state(fact.id, final=True) == 2
            why = "the chain's final state is not acknowledged"
        except Exception as exc:
            # Not re-read: endpoints that keep disagreeing must not stall observation; the
            # row is not closed on this fact, the ack check reads the chain again later.
            acknowledged, why = False, describe(exc)
        if not acknowledged:
            log.error(
                "fact_ignored",
                chain=chain,
                message_id=_hex(fact.id),
                reason=f"acknowledged fact not confirmed: {why}",
            )
            return
        t = self._move(
            rec,
            State.ACKNOWLEDGED,
            expect=expect,
            ack_status=status,
            height=fact.height,
            tx_hash=fact.tx_hash,
            error=None if status is not None else "acknowledged on chain; status not proven here",
        )
        if await self._transition(dataclasses.replace(t, message=rec.message)):
            await self.ack_stages[chain].release(rec.key)
            await self.ack_check_stages[chain].release(rec.key)
            self._resubmitted.discard(rec.key)

    async def _seal(self, chain: str, adapter: ChainAdapter) -> None:
        """FISCO BCOS: make pending ids and results provable (the adapter paces; EVM: None)."""
        failures = 0
        while not self._stopping.is_set():
            try:
                sub = await adapter.seal()
                failures = 0
                if sub is not None:
                    log.info("sealed", chain=chain, tx_hash=sub.tx_hash, height=sub.height)
                    continue
            except Exception as exc:
                if classify(exc) is not Decision.RETRY:
                    raise
                failures += 1
                log.warning("seal_failed", chain=chain, attempt=failures, reason=describe(exc))
                await self._sleep(self.policy.delay(failures))
                continue
            await self._sleep(self.settings.poll_interval)

    # -- source: verify and forward -----------------------------------------------------------

    async def _verify_sent(self, st: Stage, batch: list[MessageRecord]) -> None:
        await asyncio.gather(*(self._verify_one(st, rec) for rec in batch))

    async def _verify_one(self, st: Stage, rec: MessageRecord) -> None:
        found = await self._bundle(rec.id, Hop.MESSAGE_SENT)
        if rec.message is None or found is None:
            await st.release(rec.key)
            return
        message = rec.message
        bundle, endpoint = found
        replaced = False
        avoid: set[str] = set()
        # On a retry the endpoint that failed may have caught up (a lagging "height"): it may
        # be asked again once, after the others.
        again_anywhere = rec.attempts > 0
        fact: Fact | None = None
        relied: Reliance | None = None
        while True:
            try:
                relied = _reliance(await self.verifier.verify_message(message, rec.id, bundle))
                break
            except Exception as exc:
                if classify(exc) is not Decision.REJECT:
                    await self._failed(st, rec, exc, own_chain=True)
                    return
                # Our own chain's fact (requirement 13): an endpoint may have served a bad
                # block, receipt, proof or body. Ask the others; without one that verifies,
                # back off and show the message as stuck, never reject it for good.
                await self._record_rejected(
                    RejectedAttempt(
                        rec.id,
                        rec.role,
                        Hop.MESSAGE_SENT,
                        str(getattr(exc, "check", "") or ""),
                        describe(exc),
                        LOCAL_PEER,
                        self.clock(),
                    )
                )
                avoid.add(endpoint)
                fact = None
                if len(avoid) <= MAX_REFETCH:
                    fact = await self._refetch(rec, frozenset(avoid))
                if fact is None and again_anywhere:
                    again_anywhere = False
                    fact = await self._refetch(rec, frozenset())
                if fact is None or fact.evidence is None or fact.message is None:
                    if await self._never_sent(rec):
                        await self._reject_invented(st, rec, describe(exc))
                        return
                    await self._failed(st, rec, exc, own_chain=True)
                    return
                bundle, endpoint = fact.evidence.bundle, fact.evidence.endpoint
                message, replaced = fact.message, True
        crash_point("after_verify")
        t = dataclasses.replace(self._move(rec, State.VERIFIED), message=message, audit=relied)
        if replaced:
            # The bundle and body that verified replace what the first endpoint served (its
            # body may have been altered under the genuine id).
            t = dataclasses.replace(
                t,
                evidence=(Hop.MESSAGE_SENT, bundle, endpoint),
                replace_evidence=True,
                replace_message=message != rec.message,
                fact=fact_locator(fact) if fact is not None else None,
            )
        verified = await self._transition(t)
        self._facts.pop(rec.id, None)
        if verified:
            # Admitted downstream before leaving this stage: while the next stage is full this
            # one stays full too, so the bound holds across the hand-off and the observer stops.
            await self.forward_stage.admit(
                dataclasses.replace(
                    rec, state=State.VERIFIED, message=message, attempts=0, last_error=None
                )
            )
        await st.release(rec.key)

    async def _never_sent(self, rec: MessageRecord) -> bool:
        """Whether the source chain, at its final block and every answering endpoint agreeing,
        has never seen this id sent (``sentState`` 0). A real message's block is final before
        its fact is observed, so it reads 1 or 2 there; False when the chain cannot say."""
        adapter = self.adapters.get(rec.src_chain)
        if adapter is None:
            return False
        try:
            return await adapter.sent_state(rec.id, final=True) == 0
        except Exception as exc:
            log.warning("sent_state_unknown", message_id=_hex(rec.id), reason=describe(exc))
            return False

    async def _reject_invented(self, st: Stage, rec: MessageRecord, reason: str) -> None:
        """A ``MessageSent`` fact no endpoint could prove and the chain says was never sent:
        an endpoint made it up. Terminal (nothing was sent, nothing is forwarded); the row
        stays, as rejected, so that the fact is not admitted again when it is observed again.
        Such a row was never sent: for "sent = acknowledged + expired + rejected" (invariant 4)
        it counts on neither side; it is told apart by its rejected attempt's check
        ``invented_fact`` (and its last error's prefix)."""
        why = f"invented_fact: the chain never sent this id ({reason})"
        await self._record_rejected(
            RejectedAttempt(
                rec.id, rec.role, Hop.MESSAGE_SENT, "invented_fact", why, LOCAL_PEER, self.clock()
            )
        )
        await self._transition(
            dataclasses.replace(self._move(rec, State.REJECTED, error=why), message=rec.message)
        )
        self._facts.pop(rec.id, None)
        log.error("invented_fact", chain=rec.src_chain, message_id=_hex(rec.id), reason=reason)
        await st.release(rec.key)

    async def _known_fact(self, rec: MessageRecord, hop: Hop) -> Fact | None:
        """The observed fact: from memory, else rebuilt from the store's locator (a restart)."""
        fact = self._facts.get(rec.id) if hop is Hop.MESSAGE_SENT else None
        if fact is not None:
            return fact
        locator = await self.store.fact(rec.id, hop)
        if locator is None:
            return None
        bundle = locator.get("bundle")
        if not isinstance(bundle, dict):
            found = await self._bundle(rec.id, hop)
            bundle = dict(found[0]) if found is not None else None
        evidence = Evidence(bundle, str(locator.get("endpoint", ""))) if bundle else None
        try:
            return fact_from_locator(
                rec.id, locator, message=rec.message, result=rec.result, evidence=evidence
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.error("fact_locator_unusable", message_id=_hex(rec.id), reason=describe(exc))
            return None

    async def _refetch(self, rec: MessageRecord, avoid: frozenset[str]) -> Fact | None:
        """The same sent fact from an endpoint not in ``avoid``, or None (no locator, or no
        other endpoint serves it)."""
        fact = await self._known_fact(rec, Hop.MESSAGE_SENT)
        adapter = self.adapters.get(rec.src_chain)
        if fact is None or adapter is None:
            return None
        try:
            again = await adapter.refetch(fact, avoid=avoid)
        except Exception as err:
            log.warning(
                "refetch_failed", chain=rec.src_chain, message_id=_hex(rec.id), reason=describe(err)
            )
            return None
        if again.evidence is None or again.evidence.endpoint in avoid or again.id != rec.id:
            return None
        log.info(
            "refetched",
            chain=rec.src_chain,
            message_id=_hex(rec.id),
            endpoint=again.evidence.endpoint,
        )
        if len(self._facts) < MAX_REMEMBERED_FACTS or rec.id in self._facts:
            self._facts[rec.id] = again
        return again

    async def _record_rejected(self, attempt: RejectedAttempt) -> None:
        """A bounded record of a rejected attempt, at most ``REJECTED_WRITES_PER_PEER`` per
        peer per window: each is a store write, and garbage must not occupy the store."""
        now = self.clock()
        start, count = self._rejected_window.get(attempt.peer, (now, 0))
        if now - start >= REJECTED_WINDOW:
            if count > REJECTED_WRITES_PER_PEER:
                log.warning(
                    "rejected_not_recorded",
                    peer=attempt.peer,
                    count=count - REJECTED_WRITES_PER_PEER,
                )
            start, count = now, 0
        self._rejected_window[attempt.peer] = (start, count + 1)
        if count < REJECTED_WRITES_PER_PEER:
            await self.store.record_rejected(attempt)

    def _link(self, chain: str) -> PeerLink | None:
        if chain in self.adapters:
            return self._local
        return self.links.get(chain)

    async def _forward(self, st: Stage, batch: list[MessageRecord]) -> None:
        by_dst: dict[str, list[MessageRecord]] = {}
        for rec in batch:
            by_dst.setdefault(rec.dst_chain, []).append(rec)
        for dst, recs in by_dst.items():
            items, ready = [], []
            bundles = await asyncio.gather(*(self._bundle(r.id, Hop.MESSAGE_SENT) for r in recs))
            for rec, found in zip(recs, bundles, strict=True):
                if rec.message is None or found is None:
                    await st.release(rec.key)
                    continue
                items.append(ForwardItem(rec.id, rec.message, found[0], found[1]))
                ready.append(rec)
            link = self._link(dst)
            if not ready:
                continue
            if link is None:
                for rec in ready:
                    await self._failed(st, rec, LookupError(f"no peer serves chain {dst}"))
                continue
            try:
                verdicts = await link.forward(items)
            except Exception as exc:
                for rec in ready:
                    await self._failed(st, rec, exc)
                continue
            crash_point("after_forward_before_reply")
            await self._apply_verdicts(st, ready, verdicts, State.FORWARDED, link.name)

    async def _apply_verdicts(
        self,
        st: Stage,
        recs: list[MessageRecord],
        verdicts: Sequence[Verdict],
        to: State,
        peer: str,
    ) -> None:
        by_id = {v.id: v for v in verdicts}

        async def apply(rec: MessageRecord) -> None:
            v = by_id.get(rec.id)
            if v is not None and v.kind is VerdictKind.ACCEPTED:
                if rec.state is to:
                    # A repeat (recheck) the peer accepted again: wait for its result again.
                    await self._wait_longer(st, rec, f"{to}; waiting for the next step")
                    return
                await self._transition(
                    dataclasses.replace(
                        self._move(rec, to, next_try_at=self.clock() + self.settings.recheck_after),
                        message=rec.message,
                    )
                )
                await st.release(rec.key)
                return
            # The peer's rejection is a verdict on this attempt (its trust root may lag ours):
            # retried with backoff, and visible as stuck if it persists.
            why = "no verdict" if v is None else f"{v.kind} by {peer}: [{v.check}] {v.reason}"
            await self._failed(st, rec, PeerVerdict(why, peer=peer))

        # Concurrently: each row's store round trips would otherwise wait for the previous one.
        await asyncio.gather(*(apply(rec) for rec in recs))

    # -- destination: inbound forward, deliver ------------------------------------------------

    def _peer_serves(self, peer: str, chain: str) -> bool:
        if peer == LOCAL_PEER:
            return chain in self.adapters
        return chain in self.peer_chains.get(peer, frozenset())

    async def handle_forward(self, peer: str, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        # One verification per id and batch (requirement 19): copies get the first's verdict.
        first: dict[bytes, ForwardItem] = {}
        for item in items:
            first.setdefault(item.id, item)
        done = await asyncio.gather(*(self._accept_forward(peer, i) for i in first.values()))
        by_id = dict(zip(first, done, strict=True))
        return [by_id[i.id] for i in items]

    async def _accept_forward(self, peer: str, item: ForwardItem) -> Verdict:
        m = item.message
        if not self._peer_serves(peer, m.src_chain):
            return Verdict(
                item.id, VerdictKind.REJECTED, f"{peer} does not serve {m.src_chain}", "peer_chain"
            )
        if m.dst_chain not in self.adapters:
            return Verdict(
                item.id, VerdictKind.REJECTED, f"{m.dst_chain} is not served here", "destination"
            )
        if (m.src_chain, m.dst_chain) not in self.routes:
            return Verdict(item.id, VerdictKind.REJECTED, "no such route", "route")
        # Store and duplicates first (requirement 19): a known id costs no verification.
        known = await self.store.get(item.id, Role.DESTINATION)
        if known is not None:
            await self._resend_result(peer, known)
            return Verdict(item.id, VerdictKind.ACCEPTED, "already known")
        key = (item.id, Role.DESTINATION)
        if key in self._inflight:
            return Verdict(item.id, VerdictKind.RETRY, "this id is being verified")
        st = self.deliver_stages[m.dst_chain]
        # A slot is reserved before verifying, so that concurrent forwards cannot together
        # persist more than the delivery stage admits (the bound holds for peers too).
        if not st.reserve():
            return Verdict(item.id, VerdictKind.RETRY, "delivery queue full")
        rec: MessageRecord | None = None
        self._inflight.add(key)
        try:
            verdict = await self._verify_forward(peer, item)
            if isinstance(verdict, Verdict):
                return verdict
            # Only verified messages are persisted (requirement 13).
            t = Transition(
                id=item.id,
                role=Role.DESTINATION,
                to=State.VERIFIED,
                expect=None,
                at=self.clock(),
                message=m,
                evidence=(Hop.MESSAGE_SENT, item.bundle, f"{peer}:{item.endpoint}"),
                audit=verdict,
            )
            if await self._transition(t):
                rec = await self.store.get(item.id, Role.DESTINATION)
        finally:
            self._inflight.discard(key)
            st.unreserve()
        if rec is not None:
            st.try_admit(rec)  # no await since unreserve(): the slot is still free
        crash_point("after_accept_before_reply")
        return Verdict(item.id, VerdictKind.ACCEPTED)

    async def _resend_result(self, peer: str, rec: MessageRecord) -> None:
        """A Forward for an id whose result was forwarded a while ago: the source is still
        waiting (it lost the Acknowledge, or a commit), so the stored result goes back again.
        The row's state does not change (no history or audit record per repeat), and re-sends
        are limited per peer per window: a peer repeating Forward costs a bounded number of
        Acknowledge calls, not unbounded state changes."""
        if (
            rec.state is not State.RESULT_FORWARDED
            or rec.message is None
            or rec.result is None
            or self.clock() - rec.state_since < self.settings.recheck_after
        ):
            return
        now = self.clock()
        start, count = self._resend_window.get(peer, (now, 0))
        if now - start >= REJECTED_WINDOW:
            start, count = now, 0
        self._resend_window[peer] = (start, count + 1)
        if count >= RESENDS_PER_PEER:
            return
        found = await self._bundle(rec.id, Hop.DELIVERY_RESULT)
        link = self._link(rec.src_chain)
        if found is None or link is None:
            return
        item = AckItem(rec.id, rec.result, found[0], found[1])
        task = asyncio.create_task(self._send_result_again(link, item))
        self._resends.add(task)
        task.add_done_callback(self._resends.discard)

    async def _send_result_again(self, link: PeerLink, item: AckItem) -> None:
        """In the background: the Forward's answer does not wait for the source's."""
        try:
            verdicts = await link.acknowledge([item])
        except Exception as exc:
            log.warning("result_resend_failed", message_id=_hex(item.id), reason=describe(exc))
            return
        for v in verdicts:
            log.info("result_resent", message_id=_hex(v.id), peer=link.name, verdict=str(v.kind))

    async def _verify_forward(self, peer: str, item: ForwardItem) -> Verdict | Reliance | None:
        """What the verification relied on (None from a verifier that does not say) when the
        message verifies; else the verdict to answer (and the bounded record of a rejected
        attempt)."""
        try:
            async with self._inbound:
                verified = await self.verifier.verify_message(item.message, item.id, item.bundle)
        except Exception as exc:
            decision = classify(exc)
            reason = str(getattr(exc, "reason", None) or describe(exc))
            if decision is Decision.REJECT:
                check = str(getattr(exc, "check", "") or "")
                await self._record_rejected(
                    RejectedAttempt(
                        item.id,
                        Role.DESTINATION,
                        Hop.MESSAGE_SENT,
                        check,
                        reason,
                        peer,
                        self.clock(),
                    )
                )
                log.warning(
                    "forward_rejected",
                    peer=peer,
                    message_id=_hex(item.id),
                    check=check,
                    reason=reason,
                )
                return Verdict(item.id, VerdictKind.REJECTED, reason, check)
            return Verdict(item.id, VerdictKind.RETRY, reason)
        return _reliance(verified)

    async def _deliver(self, st: Stage, batch: list[MessageRecord]) -> None:
        assert st.chain is not None
        adapter = self.adapters[st.chain]
        send: list[MessageRecord] = []
        for rec in batch:
            # A row whose last attempt's outcome is unknown: skipped only if the chain has the
            # delivery at its final block, every endpoint agreeing (one endpoint's "already
            # delivered" must not skip it; a repeat is a no-op on chain).
            if rec.key in st.uncertain:
                try:
                    status = await adapter.delivery_status(rec.id, final=True)
                except Exception:
                    status = None
                if status is not None:
                    await self._submitted(st, rec, State.DELIVERY_SUBMITTED, None)
                    continue
            send.append(rec)
        await self._submit_deliveries(st, adapter, send)

    async def _submitted(
        self, st: Stage, rec: MessageRecord, to: State, sub: Any, *, index: int = 0
    ) -> None:
        if index == 1:
            crash_point("mid_batch_persist")
        await self._transition(
            dataclasses.replace(
                self._move(
                    rec,
                    to,
                    tx_hash=getattr(sub, "tx_hash", None),
                    height=getattr(sub, "height", None),
                    next_try_at=self.clock() + self.settings.recheck_after,
                ),
                message=rec.message,
            )
        )
        await st.release(rec.key)

    async def _all_submitted(
        self, st: Stage, recs: list[MessageRecord], to: State, sub: Any
    ) -> None:
        """The first row alone (the crash point between rows fires before the second), then
        the others concurrently."""
        if recs:
            await self._submitted(st, recs[0], to, sub, index=0)
        await asyncio.gather(
            *(self._submitted(st, rec, to, sub, index=i) for i, rec in enumerate(recs) if i)
        )

    async def _submit_deliveries(
        self, st: Stage, adapter: ChainAdapter, recs: list[MessageRecord]
    ) -> None:
        await self._submit_batch(
            st,
            recs,
            lambda rs: [(r.id, r.message) for r in rs if r.message is not None],
            adapter.deliver,
            before=("before_submit",),
            after=("after_submit_before_receipt", "after_receipt_before_persist"),
            event="delivery_submitted",
            to=State.DELIVERY_SUBMITTED,
        )

    async def _submit_batch(
        self,
        st: Stage,
        recs: list[MessageRecord],
        items: Callable[[list[MessageRecord]], list[Any]],
        submit: Callable[[list[Any]], Awaitable[Submission]],
        *,
        before: tuple[str, ...],
        after: tuple[str, ...],
        event: str,
        to: State,
    ) -> None:
        """Submit ``recs`` as one transaction; a batch the chain refuses is bisected so that
        one bad item cannot block the others, and any other failure goes to each row."""
        batch = items(recs)
        if not batch:
            return
        for point in before:
            crash_point(point)
        try:
            sub = await submit(batch)
        except Exception as exc:
            if isinstance(exc, RejectedByChain) and len(recs) > 1:
                half = len(recs) // 2
                log.warning("batch_bisected", stage=st.name, size=len(recs), reason=describe(exc))
                for part in (recs[:half], recs[half:]):
                    await self._submit_batch(
                        st, part, items, submit, before=before, after=after, event=event, to=to
                    )
                return
            for rec in recs:
                await self._failed(st, rec, exc)
            return
        for point in after:
            crash_point(point)
        log.info(event, chain=st.chain, size=len(recs), tx_hash=sub.tx_hash)
        self.metrics.batch_submitted(st.chain or "", to, len(recs))
        await self._all_submitted(st, recs, to, sub)

    async def _recheck_delivery(self, st: Stage, batch: list[MessageRecord]) -> None:
        """A delivery whose result fact has not come. A result fact kept unverified is fetched
        again and verified. Otherwise the chain is read at its final block, every endpoint
        agreeing: delivered there, the fact is fetched by id (the observer's endpoint may have
        left it out) and goes the verified way, never a resubmission; not delivered while the
        submission's block is not final yet is expected (wait); not delivered at a final block
        after it, the delivery is submitted again, at most once per row and process."""
        assert st.chain is not None
        adapter = self.adapters[st.chain]
        for rec in batch:
            kept = await self._known_fact(rec, Hop.DELIVERY_RESULT)
            if kept is not None and kept.result is not None and kept.evidence is not None:
                await self._recheck_result(st, rec, adapter, kept)
                continue
            try:
                status = await adapter.delivery_status(rec.id, final=True)
            except Exception as exc:
                await self._failed(st, rec, exc)
                continue
            if status is not None:
                if not await self._fetch_result_by_id(st, rec, adapter):
                    await self._wait_longer(st, rec, "delivered; waiting for the result fact")
                continue
            await self._resubmit_once(st, rec, adapter, State.VERIFIED, State.DELIVERY_SUBMITTED)

    async def _fetch_result_by_id(
        self, st: Stage, rec: MessageRecord, adapter: ChainAdapter
    ) -> bool:
        """The delivery's result fact asked for by id (``refetch`` of a locator-less fact) and
        moved on through the verified path; False when no endpoint serves one that verifies."""
        assert st.chain is not None
        height = await self._submitted_height(rec, State.DELIVERY_SUBMITTED)
        probe = Fact(
            kind=FactKind.DELIVERY_RESULT,
            chain=st.chain,
            height=height or 0,
            block_hash="",
            tx_hash="",
            log_index=-1,
            id=rec.id,
            endpoint="",
        )
        try:
            fact = await adapter.refetch(probe, avoid=frozenset())
            if fact.result is None or fact.evidence is None or fact.id != rec.id:
                return False
            fact, relied = await self._verified_result(rec, adapter, fact)
        except Exception as exc:
            log.warning("result_fetch_failed", message_id=_hex(rec.id), reason=describe(exc))
            return False
        found = await self._result_verified(rec, st.chain, fact, relied)
        await st.release(rec.key)
        if found is not None:
            await found[0].admit(found[1])
        return True

    async def _submitted_height(self, rec: MessageRecord, state: State) -> int | None:
        """The block of the row's latest submission (its history), None if not recorded."""
        for h in reversed(await self.store.history(rec.id)):
            if h.role is rec.role and h.state is state and h.kind == "state":
                return h.height
        return None

    async def _resubmit_once(
        self, st: Stage, rec: MessageRecord, adapter: ChainAdapter, to: State, since: State
    ) -> None:
        """The chain, at its final block and every endpoint agreeing, does not have the step.
        While the submission's own block is not final that is expected; after it, the row goes
        back to be submitted once more (a lost or dropped transaction). A second time it only
        waits, visible as stuck: repeats would cost gas every ``recheck_after``."""
        height = await self._submitted_height(rec, since)
        if height is not None:
            try:
                final_head = (await adapter.status()).final_head
            except Exception as exc:
                await self._failed(st, rec, exc)
                return
            if final_head < height:
                await self._wait_longer(st, rec, f"submitted at {height}; final is {final_head}")
                return
        if rec.key in self._resubmitted:
            await self._wait_longer(st, rec, f"not {since} on chain after a resubmission")
            return
        self._resubmitted.add(rec.key)
        await self._transition(dataclasses.replace(self._move(rec, to), message=rec.message))
        await st.release(rec.key)

    async def _recheck_result(
        self, st: Stage, rec: MessageRecord, adapter: ChainAdapter, kept: Fact
    ) -> None:
        """A result fact whose evidence failed: fetched again from any endpoint and verified."""
        assert st.chain is not None
        try:
            # The kept bundle again (a trust root may have caught up), then the other endpoints.
            fact, relied = await self._verified_result(rec, adapter, kept)
        except Exception as exc:
            try:
                # Then any endpoint, its own included (it may have caught up or been fixed).
                again = await adapter.refetch(kept, avoid=frozenset())
                if again.result is None or again.evidence is None or again.id != rec.id:
                    raise exc from None
                fact, relied = await self._verified_result(rec, adapter, again)
            except Exception:
                if await self._not_delivered(adapter, rec):
                    # The kept fact may be an invention: the chain does not have the delivery,
                    # so it is submitted again (a no-op if it does after all).
                    await self._transition(
                        dataclasses.replace(self._move(rec, State.VERIFIED), message=rec.message)
                    )
                    await st.release(rec.key)
                    return
                await self._failed(st, rec, exc, own_chain=True)  # the evidence's reason
                return
        found = await self._result_verified(rec, st.chain, fact, relied)
        await st.release(rec.key)
        if found is not None:
            await found[0].admit(found[1])

    async def _not_delivered(self, adapter: ChainAdapter, rec: MessageRecord) -> bool:
        try:
            return await adapter.delivery_status(rec.id) is None
        except Exception:
            return False

    async def _wait_longer(self, st: Stage, rec: MessageRecord, why: str) -> None:
        await self.store.record_attempt(
            rec.id,
            rec.role,
            state=rec.state,
            error=why,
            next_try_at=self.clock() + self.settings.recheck_after,
            at=self.clock(),
        )
        await st.release(rec.key)

    # -- destination: forward results ---------------------------------------------------------

    async def _forward_results(self, st: Stage, batch: list[MessageRecord]) -> None:
        by_src: dict[str, list[tuple[MessageRecord, AckItem]]] = {}

        async def verified(rec: MessageRecord) -> AckItem | None:
            found = await self._bundle(rec.id, Hop.DELIVERY_RESULT)
            if rec.message is None or rec.result is None or found is None:
                await st.release(rec.key)
                return None
            # The result and its bundle were verified before the row could reach this stage
            # (``_persist_result``), and the source verifies them again with its own roots.
            return AckItem(rec.id, rec.result, found[0], found[1])

        items = await asyncio.gather(*(verified(rec) for rec in batch))
        for rec, item in zip(batch, items, strict=True):
            if item is not None:
                by_src.setdefault(rec.src_chain, []).append((rec, item))
        for src, pairs in by_src.items():
            recs = [r for r, _ in pairs]
            link = self._link(src)
            if link is None:
                for rec in recs:
                    await self._failed(st, rec, LookupError(f"no peer serves chain {src}"))
                continue
            try:
                verdicts = await link.acknowledge([a for _, a in pairs])
            except Exception as exc:
                for rec in recs:
                    await self._failed(st, rec, exc)
                continue
            crash_point("after_result_forward_before_reply")
            await self._apply_verdicts(st, recs, verdicts, State.RESULT_FORWARDED, link.name)

    # -- source: inbound acknowledge, acknowledge on chain ------------------------------------

    async def handle_acknowledge(self, peer: str, items: Sequence[AckItem]) -> Sequence[Verdict]:
        first: dict[bytes, AckItem] = {}
        for item in items:
            first.setdefault(item.id, item)
        done = await asyncio.gather(*(self._accept_ack_once(peer, i) for i in first.values()))
        by_id = dict(zip(first, done, strict=True))
        return [by_id[i.id] for i in items]

    async def _accept_ack_once(self, peer: str, item: AckItem) -> Verdict:
        key = (item.id, Role.SOURCE)
        if key in self._inflight:
            return Verdict(item.id, VerdictKind.RETRY, "this id is being verified")
        self._inflight.add(key)
        try:
            return await self._accept_ack(peer, item)
        finally:
            self._inflight.discard(key)

    async def _accept_ack(self, peer: str, item: AckItem) -> Verdict:
        rec = await self.store.get(item.id, Role.SOURCE)
        if rec is None or rec.message is None:
            return Verdict(item.id, VerdictKind.REJECTED, "unknown message", "unknown_message")
        if not self._peer_serves(peer, rec.dst_chain):
            return Verdict(
                item.id,
                VerdictKind.REJECTED,
                f"{peer} does not serve {rec.dst_chain}",
                "peer_chain",
            )
        if rec.state in {State.RESULT_VERIFIED, State.ACK_SUBMITTED, State.ACKNOWLEDGED}:
            return Verdict(item.id, VerdictKind.ACCEPTED, "already known")
        if rec.state not in {State.VERIFIED, State.FORWARDED}:
            return Verdict(item.id, VerdictKind.REJECTED, f"message is {rec.state}", "state")
        if item.result.id != item.id:
            return Verdict(item.id, VerdictKind.REJECTED, "result for another id", "result_id")
        try:
            async with self._inbound:
                verified = await self.verifier.verify_result(
                    rec.message, item.id, item.result, item.bundle
                )
        except Exception as exc:
            decision = classify(exc)
            reason = str(getattr(exc, "reason", None) or describe(exc))
            if decision is Decision.REJECT:
                check = str(getattr(exc, "check", "") or "")
                await self._record_rejected(
                    RejectedAttempt(
                        item.id, Role.SOURCE, Hop.DELIVERY_RESULT, check, reason, peer, self.clock()
                    )
                )
                log.warning(
                    "ack_rejected", peer=peer, message_id=_hex(item.id), check=check, reason=reason
                )
                return Verdict(item.id, VerdictKind.REJECTED, reason, check)
            return Verdict(item.id, VerdictKind.RETRY, reason)
        t = self._move(
            rec,
            State.RESULT_VERIFIED,
            expect={State.VERIFIED, State.FORWARDED},
            result=item.result,
            evidence=(Hop.DELIVERY_RESULT, item.bundle, f"{peer}:{item.endpoint}"),
        )
        t = dataclasses.replace(t, message=rec.message, audit=_reliance(verified))
        if await self._transition(t):
            self.ack_stages[rec.src_chain].try_admit(
                dataclasses.replace(
                    rec, state=State.RESULT_VERIFIED, result=item.result, attempts=0
                )
            )
        return Verdict(item.id, VerdictKind.ACCEPTED)

    async def _acknowledge(self, st: Stage, batch: list[MessageRecord]) -> None:
        assert st.chain is not None
        adapter = self.adapters[st.chain]
        send: list[MessageRecord] = []
        for rec in batch:
            if rec.key in st.uncertain:  # as in _deliver
                try:
                    state = await adapter.sent_state(rec.id, final=True)
                except Exception:
                    state = 0
                if state == 2:
                    await self._submitted(st, rec, State.ACK_SUBMITTED, None)
                    continue
            send.append(rec)
        await self._submit_acks(st, adapter, send)

    async def _submit_acks(
        self, st: Stage, adapter: ChainAdapter, recs: list[MessageRecord]
    ) -> None:
        await self._submit_batch(
            st,
            recs,
            lambda rs: [r.result for r in rs if r.result is not None],
            adapter.acknowledge,
            before=("before_ack_submit",),
            after=("after_ack_submit_before_receipt",),
            event="ack_submitted",
            to=State.ACK_SUBMITTED,
        )

    async def _recheck_ack(self, st: Stage, batch: list[MessageRecord]) -> None:
        """An acknowledgement whose fact has not come: the chain at its final block, every
        endpoint agreeing, decides. Acknowledged there, the row closes (the fact carries nothing
        more: acknowledgements have no evidence); not yet, as in ``_recheck_delivery``."""
        assert st.chain is not None
        adapter = self.adapters[st.chain]
        for rec in batch:
            try:
                state = await adapter.sent_state(rec.id, final=True)
            except Exception as exc:
                await self._failed(st, rec, exc)
                continue
            if state == 2:
                t = self._move(
                    rec,
                    State.ACKNOWLEDGED,
                    ack_status=rec.result.status if rec.result is not None else None,
                    error="acknowledged at the final block; its fact was not observed",
                )
                await self._transition(dataclasses.replace(t, message=rec.message))
                self._resubmitted.discard(rec.key)
                await st.release(rec.key)
                continue
            await self._resubmit_once(st, rec, adapter, State.RESULT_VERIFIED, State.ACK_SUBMITTED)


class PeerVerdict(Exception):
    """A peer answered rejected or retry: retried with backoff like an unavailable peer."""

    retryable = True

    def __init__(self, message: str, *, peer: str) -> None:
        super().__init__(message)
        self.peer = peer
