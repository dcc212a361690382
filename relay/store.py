"""The relay's durable state: one interface, its record types, and nothing about SQL.

Every message has one row per *role* this gateway plays for it (a gateway serving both chains of
a route holds a source row and a destination row for the same id). A row changes state only
through :meth:`Store.transition`, which is conditional on the expected current state and writes
the state, its history row and (through :data:`AuditHook`) the audit record in one transaction:
a retried or duplicated step finds the state already moved and is a no-op. Transient failures
never change the state; :meth:`Store.record_attempt` adds an attempt, its error and the next try.

The SQLite implementation is ``relay/sqlite_store.py``; a server database implements the same
interface and runs the same conformance suite (``tests/unit/relay/test_store.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from adapters.base import Evidence, Fact, FactKind
from verifier.messages import DeliveryResult, DeliveryStatus, Message

NEVER: Final = float("inf")
"""``next_try_at`` of a row that no automatic retry will pick up (an operator must act)."""

MAX_ERROR_CHARS: Final = 512
"""Errors are stored truncated: an endpoint's garbage must not grow the database."""
REJECTED_PER_ID: Final = 5
REJECTED_TOTAL: Final = 10_000
ATTEMPTS_KEPT: Final = 5
"""Failed-attempt history rows kept per id, role and state (the newest): a message retried
every ``retry_max`` for days must not grow the history without bound. The row's ``attempts``
counts them all."""
"""Requirement 19: rejected attempts are kept bounded, per id and in total (oldest dropped)."""


class Role(StrEnum):
    SOURCE = "source"
    DESTINATION = "destination"


class State(StrEnum):
    # Source gateway
    OBSERVED = "observed"
    VERIFIED = "verified"
    REJECTED = "rejected"
    FORWARDED = "forwarded"
    RESULT_VERIFIED = "result_verified"
    ACK_SUBMITTED = "ack_submitted"
    ACKNOWLEDGED = "acknowledged"
    # Destination gateway (``verified`` is shared: only verified messages are persisted there)
    DELIVERY_SUBMITTED = "delivery_submitted"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    RESULT_FORWARDED = "result_forwarded"


TERMINAL: Final = frozenset(
    {
        (Role.SOURCE, State.REJECTED),
        (Role.SOURCE, State.ACKNOWLEDGED),
        (Role.DESTINATION, State.RESULT_FORWARDED),
    }
)


class Hop(StrEnum):
    """Which fact an evidence bundle proves (kept once per id and hop)."""

    MESSAGE_SENT = "message_sent"
    DELIVERY_RESULT = "delivery_result"


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    hop: Hop
    bundle: Mapping[str, Any]
    endpoint: str
    at: float


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: bytes
    role: Role
    state: State
    src_chain: str
    dst_chain: str
    message: Message | None
    result: DeliveryResult | None
    ack_status: DeliveryStatus | None
    attempts: int
    last_error: str | None
    next_try_at: float
    created_at: float
    updated_at: float
    state_since: float
    """When the row entered its current state (a message "stuck" is old here)."""
    row: int
    """Insertion order; the keyset for :meth:`Store.list_messages` pagination."""

    @property
    def key(self) -> tuple[bytes, Role]:
        return (self.id, self.role)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    """The global change sequence: ``WatchMessages`` resumes after a seq it has seen."""
    id: bytes
    role: Role
    state: State
    at: float
    kind: str
    """``state`` for a state change, ``attempt`` for a failed attempt (state unchanged)."""
    height: int | None = None
    tx_hash: str | None = None
    error: str | None = None
    src_chain: str = ""
    dst_chain: str = ""


@dataclass(frozen=True, slots=True)
class StuckMessage:
    id: bytes
    role: Role
    state: State
    src_chain: str
    dst_chain: str
    age: float
    """Seconds since the row entered its current state."""
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RejectedAttempt:
    id: bytes
    role: Role
    hop: Hop
    check: str
    reason: str
    peer: str
    at: float


@dataclass(frozen=True, slots=True)
class Transition:
    """One conditional state change and what it records.

    ``expect`` None means "the row must not exist yet" (an insert); otherwise the row's state
    must be one of ``expect``. ``message`` is required on insert.
    """

    id: bytes
    role: Role
    to: State
    expect: frozenset[State] | None
    at: float
    message: Message | None = None
    result: DeliveryResult | None = None
    ack_status: DeliveryStatus | None = None
    evidence: tuple[Hop, Mapping[str, Any], str] | None = None
    """(hop, bundle, endpoint); kept once per (id, hop): a second copy is ignored..."""
    replace_evidence: bool = False
    """...unless this is set: a bundle that verified replaces whatever copy is kept (the
    source's observed bundle after a refetch, an unverified result kept by an older version)."""
    replace_message: bool = False
    """Replace the row's message body with ``message``: a refetched body that verified against
    the id replaces one a lying endpoint served with that id."""
    fact: Mapping[str, Any] | None = None
    """With ``evidence``: where the fact is on its own chain (:func:`fact_locator`), kept per
    (id, hop) so that its evidence can be fetched again after a restart."""
    height: int | None = None
    tx_hash: str | None = None
    error: str | None = None
    """A reason recorded with the change (e.g. the verifier's on ``rejected``)."""
    next_try_at: float = 0.0
    """When the new state's stage may pick the row up (0: at once)."""
    audit: Any = None
    """What a verification relied on (``relay.audit.Reliance``: the bundle's digest and the
    trust it was verified under), for the audit record written in the same transaction; typed
    loosely because ``relay.audit`` builds on this module."""


AuditHook = Callable[[Any, Transition, HistoryEntry], None]
"""Called inside the transition's transaction with the backend's transaction object (the SQLite
connection), so that the audit record commits or rolls back with the state change."""


@dataclass(frozen=True, slots=True)
class MessageFilter:
    src_chain: str | None = None
    dst_chain: str | None = None
    states: frozenset[State] | None = None
    role: Role | None = None
    since: float | None = None
    until: float | None = None
    """``created_at`` range, inclusive since, exclusive until."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Audit record filters, combined with AND (None: any). Times are the records' own RFC 3339
    UTC strings (``relay.audit.format_time``), which order as text."""

    message_id: str | None = None
    """0x-prefixed lowercase hex, as records hold it."""
    chain: str | None = None
    """The source or the destination chain."""
    kind: str | None = None
    state: str | None = None
    role: str | None = None
    since: str | None = None
    """Inclusive."""
    until: str | None = None
    """Exclusive."""


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[MessageRecord, ...]
    next_after: int | None
    """Pass as ``after`` for the next page; None when this was the last."""


class StoreError(Exception):
    """The store failed (disk, corruption, a bug): not a verdict on any message."""

    retryable = True


class NotFoundError(StoreError):
    retryable = False


class FencedError(StoreError):
    """This replica no longer holds the lease: the write was refused and changed nothing."""

    retryable = False


class SchemaError(StoreError):
    """The database schema is not the version this gateway knows (run ``gateway db migrate``,
    or run the gateway version that migrated it): nothing was read or written."""

    retryable = False


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def transition(self, t: Transition) -> bool:
        """Apply ``t`` if the row is in an expected state; False (no change) otherwise."""
        ...

    async def record_attempt(
        self, id: bytes, role: Role, *, state: State, error: str, next_try_at: float, at: float
    ) -> bool:
        """A failed attempt in ``state`` (unchanged); False when the row is no longer there."""
        ...

    async def record_rejected(self, attempt: RejectedAttempt) -> None:
        """A rejected attempt, kept bounded (:data:`REJECTED_PER_ID`, :data:`REJECTED_TOTAL`)."""
        ...

    async def get(self, id: bytes, role: Role) -> MessageRecord | None: ...

    async def get_any(self, id: bytes) -> tuple[MessageRecord, ...]:
        """Every row of an id (one per role)."""
        ...

    async def list_messages(
        self, flt: MessageFilter, *, after: int | None = None, limit: int = 100
    ) -> Page: ...

    async def history(self, id: bytes) -> tuple[HistoryEntry, ...]: ...

    async def changes_since(self, seq: int, *, limit: int = 1000) -> tuple[HistoryEntry, ...]:
        """State changes with seq greater than ``seq``, in order."""
        ...

    async def evidence(self, id: bytes) -> tuple[EvidenceRecord, ...]: ...

    async def fact(self, id: bytes, hop: Hop) -> Mapping[str, Any] | None:
        """The locator kept with a transition's ``fact`` or by :meth:`save_fact`, or None."""
        ...

    async def save_fact(self, id: bytes, hop: Hop, locator: Mapping[str, Any]) -> None:
        """Keep (replace) a fact's locator without a state change: an own-chain fact whose
        evidence has not verified yet, to be fetched again later."""
        ...

    async def rejected(self, id: bytes) -> tuple[RejectedAttempt, ...]: ...

    async def stuck(self, now: float, older_than: float) -> tuple[StuckMessage, ...]:
        """Non-terminal rows that have not changed state for ``older_than`` seconds."""
        ...

    async def due(
        self,
        role: Role,
        states: frozenset[State],
        now: float,
        *,
        chain: str | None = None,
        limit: int = 100,
    ) -> tuple[MessageRecord, ...]:
        """Rows in ``states`` whose next try is due, oldest first; ``chain`` filters on the
        chain the stage acts on (the destination chain for destination rows, else the source)."""
        ...

    async def count(self, role: Role, states: frozenset[State]) -> int: ...

    async def get_cursor(self, chain: str) -> str | None: ...

    async def set_cursor(self, chain: str, cursor: str, at: float) -> None: ...

    # -- leases (one active replica per gateway) and fencing ----------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take (if free or expired) or renew (if held by ``holder``) the lease ``name`` for
        ``ttl`` seconds by the DATABASE clock. Returns the fencing token, which increases
        every time the lease is taken (by another holder, or again after it expired), or None
        while another holder's lease is unexpired."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown), so that a standby takes over."""
        ...

    async def lease_holder(self, name: str) -> tuple[str, int, float] | None:
        """(holder, token, seconds left; <= 0 when expired or released), or None if never
        taken."""
        ...

    def fence(self, name: str, holder: str, token: int | None) -> None:
        """From now on every write transaction first checks, inside that transaction, that
        lease ``name`` is held by ``holder`` with ``token`` and unexpired (database clock),
        and otherwise raises :class:`FencedError` and writes nothing. None: no fencing (the
        default)."""
        ...


StoreFactory = Callable[[], Store]


# ---------------------------------------------------------------------------------------------
# Serialisation shared by every backend (bytes as 0x-hex in JSON).


def message_to_json(m: Message) -> str:
    return json.dumps(
        {
            "src_chain": m.src_chain,
            "src_gateway": "0x" + m.src_gateway.hex(),
            "dst_chain": m.dst_chain,
            "nonce": m.nonce,
            "sender": "0x" + m.sender.hex(),
            "receiver": "0x" + m.receiver.hex(),
            "payload": "0x" + m.payload.hex(),
            "timeout": m.timeout,
        },
        sort_keys=True,
    )


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def message_from_json(text: str) -> Message:
    d = json.loads(text)
    return Message(
        src_chain=d["src_chain"],
        src_gateway=_hex(d["src_gateway"]),
        dst_chain=d["dst_chain"],
        nonce=int(d["nonce"]),
        sender=_hex(d["sender"]),
        receiver=_hex(d["receiver"]),
        payload=_hex(d["payload"]),
        timeout=int(d["timeout"]),
    )


def result_to_json(r: DeliveryResult) -> str:
    return json.dumps(
        {
            "id": "0x" + r.id.hex(),
            "dst_chain": r.dst_chain,
            "dst_gateway": "0x" + r.dst_gateway.hex(),
            "status": int(r.status),
            "result": "0x" + r.result.hex(),
        },
        sort_keys=True,
    )


def result_from_json(text: str) -> DeliveryResult:
    d = json.loads(text)
    return DeliveryResult(
        id=_hex(d["id"]),
        dst_chain=d["dst_chain"],
        dst_gateway=_hex(d["dst_gateway"]),
        status=DeliveryStatus(int(d["status"])),
        result=_hex(d["result"]),
    )


def fact_locator(fact: Fact, *, with_bundle: bool = False) -> dict[str, Any]:
    """Where an observed fact is. The body is kept with the row and a verified bundle in the
    evidence table; ``with_bundle`` keeps an unverified one here (never as evidence), which a
    FISCO refetch reads its seal transaction from."""
    bundle = fact.evidence.bundle if with_bundle and fact.evidence is not None else None
    return {
        "bundle": bundle,
        "result": result_to_json(fact.result) if fact.result is not None else None,
        "kind": str(fact.kind),
        "chain": fact.chain,
        "height": fact.height,
        "block_hash": fact.block_hash,
        "tx_hash": fact.tx_hash,
        "log_index": fact.log_index,
        "endpoint": fact.endpoint,
        "src_chain": fact.src_chain,
        "result_hash": "0x" + fact.result_hash.hex() if fact.result_hash is not None else None,
    }


def fact_from_locator(
    id: bytes,
    locator: Mapping[str, Any],
    *,
    message: Message | None,
    result: DeliveryResult | None,
    evidence: Evidence | None,
) -> Fact:
    """The fact again from its locator, enough for ``ChainAdapter.refetch``; ``result`` (the
    row's verified one) is preferred to the observed one the locator kept."""
    rh = locator.get("result_hash")
    kept = locator.get("result")
    if result is None and isinstance(kept, str):
        result = result_from_json(kept)
    return Fact(
        kind=FactKind(locator["kind"]),
        chain=str(locator["chain"]),
        height=int(locator["height"]),
        block_hash=str(locator["block_hash"]),
        tx_hash=str(locator["tx_hash"]),
        log_index=int(locator["log_index"]),
        id=id,
        endpoint=str(locator["endpoint"]),
        message=message,
        result=result,
        result_hash=_hex(rh) if isinstance(rh, str) else None,
        src_chain=locator.get("src_chain"),
        evidence=evidence,
    )


def truncate_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class Bounds:
    """Storage bounds a backend enforces (overridable in tests)."""

    rejected_per_id: int = REJECTED_PER_ID
    rejected_total: int = REJECTED_TOTAL
