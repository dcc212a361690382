"""The one interface between the relay and a chain, and the errors every adapter raises.

An adapter watches one chain's gateway contract, reports cross-chain *facts* with the evidence
bundle (``interop-evidence/1``) that proves each, and submits the gateway's transactions. It never
verifies: adapters are untrusted data sources, and the relay checks every bundle against its own
trust roots (``verifier.evidence.verify_bundle``). An endpoint that serves a wrong block, receipt
or proof therefore shows up as a bundle that fails there; :meth:`ChainAdapter.refetch` asks for
the same fact again from other endpoints, and every fact and error names the endpoint involved.

The relay imports this module only; ``adapters/evm`` and ``adapters/fisco`` never import each
other, so a new chain family is one new folder that passes ``tests/integration/adapters``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from verifier.encoding import load_json
from verifier.errors import MalformedEvidence
from verifier.messages import DeliveryResult, DeliveryStatus, Message

T = TypeVar("T")

Cursor = str
"""Where to resume observing: opaque to the relay, which persists it as text after each page."""


class FactKind(StrEnum):
    MESSAGE_SENT = "message_sent"
    DELIVERY_RESULT = "delivery_result"
    ACKNOWLEDGED = "acknowledged"
    UNUSABLE_SEAL = "unusable_seal"
    """FISCO BCOS: a ``Sealed`` log of the gateway whose transaction every endpoint serves as
    something other than exactly ``seal()`` (another SDK's nonce, a version other than 0...):
    its entries are consumed on chain but nothing proves them. The relay requeues the seal
    (:meth:`ChainAdapter.requeue` with ``seal_number``) so that the next seal emits them."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A bundle that proves a fact, and where its parts came from."""

    bundle: dict[str, Any]
    """``interop-evidence/1``, with ``trust`` filled from the adapter's configuration so that
    ``gateway verify`` checks it on its own; the relay replaces ``trust`` with its own root."""
    endpoint: str
    """The endpoint that served the block, receipt and proof."""
    seal_number: int | None = None
    """FISCO BCOS: the ``seal()`` whose ``Sealed`` log the bundle proves; None on EVM chains."""


@dataclass(frozen=True, slots=True)
class Fact:
    """A cross-chain fact from a final block of the configured gateway contract.

    ``message_sent`` carries ``message`` (its id checked by the adapter against the event and,
    on FISCO, found in a seal); ``delivery_result`` carries ``result`` and ``src_chain``;
    ``acknowledged`` carries ``ack_status``. The relay re-checks all of it against ``evidence``.
    """

    kind: FactKind
    chain: str
    height: int
    block_hash: str
    tx_hash: str
    log_index: int
    """The fact's own log (``MessageSent``, ``MessageDelivered``, ``MessageAcknowledged``) in
    its receipt; on FISCO the evidence proves the seal's log instead (``evidence.bundle``)."""
    id: bytes
    endpoint: str
    message: Message | None = None
    result: DeliveryResult | None = None
    result_hash: bytes | None = None
    src_chain: str | None = None
    ack_status: DeliveryStatus | None = None
    evidence: Evidence | None = None
    """None for ``acknowledged``: the source gateway reads those from its own chain."""
    seal_number: int | None = None
    """``unusable_seal``: the seal to requeue (``id`` is then empty)."""
    reason: str | None = None
    """``unusable_seal``: why the seal's transaction cannot be evidence."""


@dataclass(frozen=True, slots=True)
class FactPage:
    facts: tuple[Fact, ...]
    cursor: Cursor
    """Persist this after handling ``facts``; observing resumes there."""
    final_height: int
    """The chain's final head when the page was read; the page covers blocks up to it at most."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A transaction the chain included (not yet final)."""

    tx_hash: str
    height: int
    endpoint: str
    gas_used: int | None = None


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    url: str
    healthy: bool
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    chain: str
    head: int
    final_head: int
    timestamp: int
    """The latest block's time in seconds (FISCO's milliseconds are converted)."""
    endpoints: tuple[EndpointHealth, ...] = field(default=())


@runtime_checkable
class ChainAdapter(Protocol):
    """One chain, its gateway contract, its endpoints and its relayer key."""

    chain: str
    """The configured chain name (``verifier.messages.CHAIN_NAME``)."""

    def initial_cursor(self, height: int = 0) -> Cursor:
        """A cursor that observes from ``height`` on."""
        ...

    async def facts(self, cursor: Cursor, *, max_blocks: int = 1000) -> FactPage:
        """Facts in final blocks after ``cursor``, in chain order, with evidence.

        A page covers at most ``max_blocks`` blocks. Facts of reverted transactions are never
        reported, nor logs of any contract other than the configured gateway.
        """
        ...

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        """The same fact, its evidence rebuilt from an endpoint not in ``avoid``."""
        ...

    async def status(self) -> ChainStatus: ...

    async def send_message(
        self, dst_chain: str, receiver: bytes, payload: bytes, timeout: int
    ) -> tuple[bytes, Submission]:
        """``sendMessage`` from the adapter's sender account (never the relayer's)."""
        ...

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        """``deliverMessages`` for (id, message) pairs; delivered ids are no-ops on chain."""
        ...

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        """``acknowledgeResults`` on this (the source) chain; acknowledged ids are no-ops."""
        ...

    async def seal(self, *, force: bool = False) -> Submission | None:
        """Make pending sent ids and results provable; None when there is nothing to do now.

        FISCO BCOS: a ``seal()`` transaction when entries are pending, paced so that entries
        batch (``force`` seals whatever is pending at once). EVM chains: always None, their logs
        are evidence by themselves. Call it periodically: pacing never strands an entry.
        """
        ...

    async def requeue(self, seal_number: int) -> Submission:
        """Put a seal's entries back in the queues so that the next seal emits them again."""
        ...

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        """What this (destination) chain recorded for a message, at the latest block; with
        ``final``, at the final block as every answering endpoint agrees (see :func:`agreed`)."""
        ...

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        """0 unknown, 1 pending, 2 acknowledged, on this (source) chain at the latest block;
        with ``final``, at the final block as every answering endpoint agrees."""
        ...

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        """``AuditAnchor.anchor(seq, head_hash, checkpoint_digest)`` on ``contract`` from the
        relayer account (relay/anchor.py); ``ConfigurationError`` where not supported."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Errors. The relay decides in one place what to do with each; ``retryable`` is the hint.


class AdapterError(Exception):
    """A chain operation failed. Never carries keys or secrets."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, chain: str, endpoint: str | None = None) -> None:
        where = f" ({chain} via {endpoint})" if endpoint else f" ({chain})"
        super().__init__(message + where)
        self.reason = message
        self.chain = chain
        self.endpoint = endpoint


class ChainUnavailable(AdapterError):
    """No endpoint could be reached (refused, reset, DNS)."""


class ChainTimeout(AdapterError):
    """An endpoint did not answer within the per-call deadline."""


class NotYetFinal(AdapterError):
    """The block or fact exists but is not final yet."""


class NotFound(AdapterError):
    """The chain does not know the block, transaction or receipt (yet)."""


class UnexpectedResponse(AdapterError):
    """An endpoint answered with something that is not a valid answer (garbage JSON, shape)."""


class RejectedByChain(AdapterError):
    """The chain refused or reverted a transaction; sending it again will not help."""

    retryable = False


class ConfigurationError(AdapterError):
    """The adapter's settings cannot work (wrong chain id, no gateway code, bad key)."""

    retryable = False


# ---------------------------------------------------------------------------------------------
# Helpers every adapter uses for what endpoints send and for what it says about them.

MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""The largest JSON-RPC answer an adapter reads (a page of logs, a block's receipts)."""
MAX_RESPONSE_VALUES: Final = 4_000_000
"""JSON values in one answer: a 10,000-transaction block's receipts with their logs fit."""


def display_url(url: str) -> str:
    """An endpoint as logs, errors and facts name it: scheme, host and port only.

    Provider URLs often carry an API key in the path, the query or the user part
    (``https://user:pass@host/v2/KEY``); none of that is printed. A path is shown as ``/…``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable endpoint URL>"
    if ":" in host:
        host = f"[{host}]"
    path = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{path}"


def parse_json_answer(raw: bytes, *, what: str) -> Any:
    """An endpoint's JSON answer, bounded in size, values and nesting before it is built.

    ``json.loads`` recurses on the C stack per nesting level and stops only at the recursion
    limit, which web3's dependencies (py_ecc) and py-evm raise to 100,000: an answer of
    ``[[[[...`` would crash the process instead of raising. Raises ``ValueError`` (the caller
    maps it to :class:`UnexpectedResponse` naming the endpoint).
    """
    try:
        return load_json(
            raw, what=what, max_bytes=MAX_RESPONSE_BYTES, max_values=MAX_RESPONSE_VALUES
        )
    except MalformedEvidence as exc:
        raise ValueError(str(exc)) from None


def endpoint_names(urls: Sequence[str]) -> tuple[str, ...]:
    """How each configured endpoint is named in facts, errors, logs and ``refetch(avoid=)``:
    :func:`display_url`, made unique with ``#2``, ``#3``... when two display alike."""
    names: list[str] = []
    for url in urls:
        base = display_url(url)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return tuple(names)


async def agreed(
    chain: str,
    names: Sequence[str],
    ask: Callable[[str], Awaitable[T]],
    *,
    what: str,
) -> T:
    """``ask(name)`` on every endpoint; the answers of those that answer must all be equal.

    One endpoint's word must not confirm what that same endpoint reported (a lying endpoint
    inventing a fact and then confirming it): a state the relay acts on without evidence is
    read from all of them. No answer at all, or a disagreement, is a retryable
    UnexpectedResponse naming the endpoints.
    """
    answers: dict[str, T] = {}
    errors: list[str] = []
    for name in names:
        try:
            answers[name] = await ask(name)
        except AdapterError as exc:
            if not exc.retryable:
                raise
            errors.append(f"{name}: {exc.reason}")
    if not answers:
        raise UnexpectedResponse(
            f"{what}: no endpoint answered ({'; '.join(errors) or 'none configured'})",
            chain=chain,
        )
    values = list(answers.values())
    if any(v != values[0] for v in values[1:]):
        detail = ", ".join(f"{n}={v!r}" for n, v in answers.items())
        raise UnexpectedResponse(f"{what}: endpoints disagree ({detail})", chain=chain)
    return values[0]
