"""The one place that decides what a failure means: retry later, reject the attempt, or stop.

Every stage of the pipeline hands its exceptions to :func:`classify`; nothing else in the relay
inspects error types. Retries back off exponentially with jitter between ``initial`` and
``maximum``; each attempt and its error are recorded on the message's row, and a message that
has not changed state for ``stuck_after`` is reported (``message_stuck`` warning, and the store's
stuck query), never left silent.

A :class:`FencedError` (this replica lost the gateway's lease, relay/replica.py) is ``STOP``
and, besides, stops the pipeline: the replica that started it is told through
:data:`on_fenced`, and goes back to standby.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import structlog

from adapters.base import AdapterError, ConfigurationError, RejectedByChain
from relay.audit_guard import AuditChainTampered
from relay.links import LinkUnavailable
from relay.store import NEVER, FencedError, Role, State, Store, StoreError
from relay.trust import EvidenceRejected, NotYetTrusted

log = structlog.get_logger(__name__)

MAX_EXPONENT: Final = 32

on_fenced: ContextVar[Callable[[FencedError], None] | None] = ContextVar("on_fenced", default=None)
"""Set by the replica around starting its pipeline, whose tasks inherit it: the first
:class:`FencedError` any of them classifies stops that pipeline (relay/replica.py)."""


class Decision(StrEnum):
    RETRY = "retry"
    """Transient (an endpoint, a peer, a trust root not final yet): back off and try again."""
    REJECT = "reject"
    """The evidence of this attempt failed verification: never retried, never forwarded."""
    STOP = "stop"
    """Retrying cannot help (the chain refused, the configuration is wrong, a bug): no
    automatic retry; the message shows as stuck until an operator acts."""


def classify(exc: BaseException, *, own_chain: bool = False) -> Decision:
    """``own_chain``: the evidence of a fact this gateway read from a chain it serves. Its
    endpoints may lie or lag, but the fact itself cannot be forged by them into a verdict on
    the message (requirement 13): a failed check is retried (other endpoints, a later try) and
    shows as stuck, never a terminal rejection. A peer's bundle is a verdict on that attempt.
    A :class:`FencedError` also tells the replica to stop the pipeline (:data:`on_fenced`)."""
    if isinstance(exc, FencedError):
        stop_pipeline = on_fenced.get()
        if stop_pipeline is not None:
            stop_pipeline(exc)
        return Decision.STOP
    if isinstance(exc, AuditChainTampered):
        return Decision.STOP  # the stored audit chain was altered: an operator must look
    if isinstance(exc, EvidenceRejected):
        return Decision.RETRY if own_chain else Decision.REJECT
    if isinstance(exc, NotYetTrusted):
        return Decision.RETRY
    if isinstance(exc, LinkUnavailable | StoreError | TimeoutError):
        return Decision.RETRY
    if isinstance(exc, ConfigurationError | RejectedByChain):
        return Decision.STOP
    if isinstance(exc, AdapterError):
        return Decision.RETRY if exc.retryable else Decision.STOP
    if isinstance(exc, ConnectionError) or getattr(exc, "retryable", None) is True:
        return Decision.RETRY
    return Decision.STOP


def describe(exc: BaseException) -> str:
    """The text stored as ``last_error`` and logged as ``reason``: type and message, no trace."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    next_try_at: float
    reason: str


@dataclass
class RetryPolicy:
    initial: float = 1.0
    maximum: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds before try ``attempt + 1`` (``attempt`` >= 1 failures so far): exponential,
        capped, and jittered to 50-100 % so that many messages failing together spread out."""
        base = min(self.maximum, self.initial * 2.0 ** min(max(attempt - 1, 0), MAX_EXPONENT))
        return base * (0.5 + self.rng.random() / 2)

    def outcome(
        self, exc: BaseException, attempt: int, now: float, *, own_chain: bool = False
    ) -> Outcome:
        decision = classify(exc, own_chain=own_chain)
        at = now + self.delay(attempt) if decision is Decision.RETRY else NEVER
        return Outcome(decision, at, describe(exc))


class StuckReporter:
    """Logs each stuck row once per state it is stuck in (the store's query shows all)."""

    def __init__(self, store: Store, stuck_after: float) -> None:
        self.store = store
        self.stuck_after = stuck_after
        self._reported: set[tuple[bytes, Role, State]] = set()

    async def report(self, now: float) -> int:
        stuck = await self.store.stuck(now, self.stuck_after)
        current = {(s.id, s.role, s.state) for s in stuck}
        self._reported &= current
        for s in stuck:
            key = (s.id, s.role, s.state)
            if key in self._reported:
                continue
            self._reported.add(key)
            log.warning(
                "message_stuck",
                message_id="0x" + s.id.hex(),
                role=str(s.role),
                stage=str(s.state),
                src_chain=s.src_chain,
                dst_chain=s.dst_chain,
                age_s=round(s.age, 1),
                attempts=s.attempts,
                reason=s.last_error,
            )
        return len(stuck)
