"""``InteropService``: the developer API over a running gateway's node, store and verifier.

Every method answers with a status code and a short readable message, never a traceback. The
errors of the layers below are mapped to codes in one place, :func:`map_error`; the servicer's
own refusals are :class:`ApiError`. A failed *verification* in ``VerifyEvidence`` is a normal
answer (``valid = false`` with the check and reason), not an error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import grpc
import grpc.aio
import structlog
from google.protobuf import duration_pb2, timestamp_pb2

from adapters.base import AdapterError, ChainStatus
from protos.interop.v1 import common_pb2, interop_pb2, interop_pb2_grpc
from relay.grpc.auth import current_principal
from relay.grpc.convert import (
    ConversionError,
    bundle_from_json,
    evidence_to_proto,
    message_to_proto,
    result_to_proto,
)
from relay.node import InvalidRequest, SentMessage
from relay.store import (
    TERMINAL,
    HistoryEntry,
    MessageFilter,
    MessageRecord,
    Role,
    State,
    Store,
    StoreError,
)
from relay.trust import (
    EvidenceRejected,
    FiscoTrustConfig,
    NotYetTrusted,
    TrustConfig,
    TrustRoot,
    TrustStore,
)
from relay.verify import FactVerifier, check_family
from verifier.errors import VerificationError
from verifier.events import DecodedEvent, decode_event, parse_event_abi
from verifier.evidence import verify_bundle
from verifier.evm.header import parse_header as parse_evm_header
from verifier.fisco.header import parse_header as parse_fisco_header
from verifier.hashing import hasher_for, keccak256
from verifier.limits import MAX_BUNDLE_BYTES
from verifier.messages import (
    CHAIN_NAME,
    MESSAGE_ACKNOWLEDGED_EVENT,
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
)
from verifier.types import VerifiedEvidence

log = structlog.get_logger(__name__)

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
WATCH_BATCH: Final = 500
SENT_MEMORY: Final = 10_000
STATUS_TIMEOUT_S: Final = 5.0
"""A chain status read waits at most this long: ListChains must answer even if a chain hangs."""
LOOKUP_MEMORY: Final = 4096
"""(chain, height) pairs whose block hash this service had agreed recently: asking again costs
no endpoint call (the trust store caches as many), so it is not charged to a budget."""


@dataclass(frozen=True, slots=True)
class VerifyLimits:
    """What ``VerifyEvidence`` may spend (relay-protocol requirement 19).

    A self-consistent fake EVM block passes a bundle's own checks and then costs a round of
    calls to every configured endpoint for its height, so both the bundles verified at once
    (all callers together) and each caller's block-hash lookups not already agreed are bounded.
    """

    max_concurrent: int
    """Bundles verified at once, all callers together; more are RESOURCE_EXHAUSTED at once."""
    lookups_per_second: float
    """Per principal: EVM block-hash lookups for heights not agreed recently, sustained..."""
    lookup_burst: int
    """...and at once after a quiet period."""

    def __post_init__(self) -> None:
        if self.max_concurrent < 1 or self.lookup_burst < 1 or self.lookups_per_second <= 0:
            raise ValueError("VerifyLimits: every limit must be positive")


_STATE_TO_PROTO: Final = {
    State.OBSERVED: interop_pb2.MESSAGE_STATE_OBSERVED,
    State.VERIFIED: interop_pb2.MESSAGE_STATE_VERIFIED,
    State.REJECTED: interop_pb2.MESSAGE_STATE_REJECTED,
    State.FORWARDED: interop_pb2.MESSAGE_STATE_FORWARDED,
    State.RESULT_VERIFIED: interop_pb2.MESSAGE_STATE_RESULT_VERIFIED,
    State.ACK_SUBMITTED: interop_pb2.MESSAGE_STATE_ACK_SUBMITTED,
    State.ACKNOWLEDGED: interop_pb2.MESSAGE_STATE_ACKNOWLEDGED,
    State.DELIVERY_SUBMITTED: interop_pb2.MESSAGE_STATE_DELIVERY_SUBMITTED,
    State.DELIVERED: interop_pb2.MESSAGE_STATE_DELIVERED,
    State.EXPIRED: interop_pb2.MESSAGE_STATE_EXPIRED,
    State.RESULT_FORWARDED: interop_pb2.MESSAGE_STATE_RESULT_FORWARDED,
}
_STATE_FROM_PROTO: Final = {v: k for k, v in _STATE_TO_PROTO.items()}
_ROLE_TO_PROTO: Final = {
    Role.SOURCE: interop_pb2.ROLE_SOURCE,
    Role.DESTINATION: interop_pb2.ROLE_DESTINATION,
}
_ROLE_FROM_PROTO: Final = {v: k for k, v in _ROLE_TO_PROTO.items()}


class ApiError(Exception):
    """A refusal with its status code; ``message`` is safe to show to the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def map_error(exc: BaseException, what: str) -> tuple[grpc.StatusCode, str]:
    """The one mapping from the lower layers' error types to status codes and messages."""
    if isinstance(exc, ApiError):
        return exc.code, exc.message
    if isinstance(exc, InvalidRequest):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, AdapterError):
        code = grpc.StatusCode.UNAVAILABLE if exc.retryable else grpc.StatusCode.FAILED_PRECONDITION
        return code, f"chain {exc.chain}: {exc.reason}"
    if isinstance(exc, NotYetTrusted):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, StoreError):
        return grpc.StatusCode.UNAVAILABLE, f"the gateway's store cannot {what} now; retry later"
    if isinstance(exc, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, f"the gateway timed out trying to {what}"
    return grpc.StatusCode.INTERNAL, f"the gateway failed to {what}"


class MessageSender(Protocol):
    """``GatewayNode.send_message``'s shape (the node, or a fake in tests)."""

    async def send_message(
        self, src_chain: str, dst_chain: str, receiver: bytes, payload: bytes, timeout_seconds: int
    ) -> SentMessage: ...


class StatusReader(Protocol):
    """Something that can say where a chain stands: an adapter, or a remote chain's reader."""

    async def status(self) -> ChainStatus: ...


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """A chain as ``ListChains`` shows it: ``reader`` None when nothing here can read it."""

    name: str
    family: str
    local: bool
    reader: StatusReader | None
    note: str = ""
    """Shown as the status's ``error`` when there is no reader (e.g. who serves it)."""


async def _guarded(
    context: grpc.aio.ServicerContext[Any, Any], what: str, call: Awaitable[Any]
) -> Any:
    try:
        return await call
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        code, message = map_error(exc, what)
        if code is grpc.StatusCode.INTERNAL:
            log.error("api_call_failed", call=what, error=type(exc).__name__, exc_info=True)
        else:
            log.info("api_call_refused", call=what, code=code.name, reason=message)
        await context.abort(code, message)
        raise AssertionError("abort returned") from exc


class InteropService(interop_pb2_grpc.InteropServiceServicer):
    def __init__(
        self,
        *,
        sender: MessageSender,
        store: Store,
        verifier: FactVerifier,
        chains: Sequence[ChainEntry],
        stuck_after: float,
        verify_limits: VerifyLimits,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        watch_poll: float = 0.2,
    ) -> None:
        self._sender = sender
        self._verify_limits = verify_limits
        self._verifying = 0
        self._lookups = _LookupBudget(verify_limits, monotonic)
        self._store = store
        self._verifier = verifier
        self._chains = {c.name: c for c in chains}
        self._served = [c.name for c in chains if c.local]
        self._stuck_after = stuck_after
        self._clock = clock
        self._watch_poll = watch_poll
        self._closing = asyncio.Event()
        self._sent: OrderedDict[bytes, str] = OrderedDict()
        """Ids sent through this service and not observed yet, with what to tell a caller
        (observation waits for finality, so GetMessage right after SendMessage finds no row)."""

    def close(self) -> None:
        """End every ``WatchMessages`` stream cleanly (the server is stopping)."""
        self._closing.set()

    # -- SendMessage ---------------------------------------------------------------------------

    async def SendMessage(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.SendMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.SendMessageResponse:
        result: interop_pb2.SendMessageResponse = await _guarded(
            context, "send the message", self._send(request)
        )
        return result

    async def _send(
        self, request: interop_pb2.SendMessageRequest
    ) -> interop_pb2.SendMessageResponse:
        src = request.src_chain or self._only_served()
        _check_chain(src, "src_chain")
        _check_chain(request.dst_chain, "dst_chain")
        if len(request.receiver) != 20:
            raise _invalid(f"receiver must be 20 bytes, not {len(request.receiver)}")
        if request.timeout_seconds == 0:
            raise _invalid("timeout_seconds must be > 0 (0 would expire at once)")
        sent = await self._sender.send_message(
            src, request.dst_chain, request.receiver, request.payload, request.timeout_seconds
        )
        stored = await self._store.get(sent.id, Role.SOURCE)
        self._remember(sent, src)
        response = interop_pb2.SendMessageResponse(
            id=sent.id,
            tx_hash=_tx_bytes(sent.submission.tx_hash),
            height=sent.submission.height,
        )
        if stored is not None and stored.message is not None:
            response.message.CopyFrom(message_to_proto(stored.message))
        else:  # not observed yet (that waits for finality): what this call itself fixed
            cfg = self._verifier.chains.get(src)
            response.message.CopyFrom(
                common_pb2.Message(
                    src_chain=src,
                    src_gateway=cfg.gateway if cfg is not None else b"",
                    dst_chain=request.dst_chain,
                    receiver=request.receiver,
                    payload=request.payload,
                    timeout=sent.timeout,
                )
            )
        return response

    def _remember(self, sent: SentMessage, src: str) -> None:
        self._sent[sent.id] = (
            f"message 0x{sent.id.hex()} was sent in transaction {sent.submission.tx_hash} "
            f"(block {sent.submission.height} of {src}) and is not observed yet: it is "
            "recorded once that block is final"
        )
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    def _only_served(self) -> str:
        if len(self._served) != 1:
            raise _invalid(
                "src_chain is empty and this gateway serves "
                f"{len(self._served)} chains ({', '.join(self._served)}): name one"
            )
        return self._served[0]

    # -- GetMessage / ListMessages -------------------------------------------------------------

    async def GetMessage(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.GetMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.MessageStatus:
        result: interop_pb2.MessageStatus = await _guarded(
            context, "read the message", self._get(request.id)
        )
        return result

    async def _get(self, mid: bytes) -> interop_pb2.MessageStatus:
        _check_id(mid)
        rows = await self._store.get_any(mid)
        if not rows:
            note = self._sent.get(mid, f"message 0x{mid.hex()} is not known here")
            raise ApiError(grpc.StatusCode.NOT_FOUND, note)
        self._sent.pop(mid, None)
        primary = next((r for r in rows if r.role is Role.SOURCE), rows[0])
        status = self._status(primary)
        if not status.HasField("message"):
            for r in rows:
                if r.message is not None:
                    status.message.CopyFrom(message_to_proto(r.message))
        if not status.HasField("result"):
            for r in rows:
                if r.result is not None:
                    status.result.CopyFrom(result_to_proto(r.result))
        history = sorted(await self._store.history(mid), key=lambda h: h.seq)
        status.timeline.extend(_entry(h) for h in history)
        return status

    def _status(self, rec: MessageRecord) -> interop_pb2.MessageStatus:
        now = self._clock()
        age = max(0.0, now - rec.state_since)
        status = interop_pb2.MessageStatus(
            id=rec.id,
            role=_ROLE_TO_PROTO[rec.role],
            src_chain=rec.src_chain,
            dst_chain=rec.dst_chain,
            state=_STATE_TO_PROTO[rec.state],
            attempts=rec.attempts,
            last_error=rec.last_error or "",
            age=_duration(age),
            stuck=self._is_stuck(rec, now),
            created=_timestamp(rec.created_at),
        )
        if rec.message is not None:
            status.message.CopyFrom(message_to_proto(rec.message))
        if rec.result is not None:
            status.result.CopyFrom(result_to_proto(rec.result))
        if math.isfinite(rec.next_try_at) and rec.next_try_at > now:
            status.next_attempt.CopyFrom(_timestamp(rec.next_try_at))
        return status

    def _is_stuck(self, rec: MessageRecord, now: float) -> bool:
        terminal = (rec.role, rec.state) in TERMINAL
        return not terminal and now - rec.state_since > self._stuck_after

    async def ListMessages(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.ListMessagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.ListMessagesResponse:
        result: interop_pb2.ListMessagesResponse = await _guarded(
            context, "list messages", self._list(request)
        )
        return result

    async def _list(
        self, request: interop_pb2.ListMessagesRequest
    ) -> interop_pb2.ListMessagesResponse:
        flt = _filter(request)
        size = request.page_size or DEFAULT_PAGE_SIZE
        size = min(size, MAX_PAGE_SIZE)
        fingerprint = _filter_digest(request)
        after = _parse_token(request.page_token, fingerprint) if request.page_token else None
        page = await self._store.list_messages(flt, after=after, limit=size)
        now = self._clock()
        items = [
            self._status(r) for r in page.items if not request.stuck_only or self._is_stuck(r, now)
        ]
        token = "" if page.next_after is None else _make_token(page.next_after, fingerprint)
        return interop_pb2.ListMessagesResponse(items=items, next_page_token=token)

    # -- WatchMessages ---------------------------------------------------------------------------

    async def WatchMessages(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.WatchMessagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[interop_pb2.StatusChange]:
        for name, field in ((request.src_chain, "src_chain"), (request.dst_chain, "dst_chain")):
            if name:
                await _guarded(context, "watch messages", _async_check_chain(name, field))
        seq = request.from_sequence
        while not self._closing.is_set():
            changes: tuple[HistoryEntry, ...] = await _guarded(
                context, "watch messages", self._store.changes_since(seq, limit=WATCH_BATCH)
            )
            for change in changes:
                seq = change.seq
                if request.src_chain and change.src_chain != request.src_chain:
                    continue
                if request.dst_chain and change.dst_chain != request.dst_chain:
                    continue
                yield _change(change)
            if len(changes) < WATCH_BATCH:
                await self._wait_closing(self._watch_poll)

    async def _wait_closing(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # -- GetEvidence / VerifyEvidence ----------------------------------------------------------

    async def GetEvidence(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.GetEvidenceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.GetEvidenceResponse:
        result: interop_pb2.GetEvidenceResponse = await _guarded(
            context, "read the evidence", self._evidence(request.id)
        )
        return result

    async def _evidence(self, mid: bytes) -> interop_pb2.GetEvidenceResponse:
        _check_id(mid)
        rows = await self._store.get_any(mid)
        if not rows:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"message 0x{mid.hex()} is not known here")
        src, dst = rows[0].src_chain, rows[0].dst_chain
        hops = []
        for ev in sorted(
            await self._store.evidence(mid), key=lambda e: (e.hop != "message_sent", e.at)
        ):
            hops.append(
                interop_pb2.HopEvidence(
                    hop=ev.hop.value,
                    chain=src if ev.hop == "message_sent" else dst,
                    evidence=evidence_to_proto(ev.bundle, ev.endpoint),
                    stored=_timestamp(ev.at),
                )
            )
        return interop_pb2.GetEvidenceResponse(id=mid, hops=hops)

    async def VerifyEvidence(  # noqa: N802 - the gRPC method name
        self,
        request: interop_pb2.VerifyEvidenceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> interop_pb2.VerifyEvidenceResponse:
        result: interop_pb2.VerifyEvidenceResponse = await _guarded(
            context, "verify the bundle", self._verify(request)
        )
        return result

    async def _verify(
        self, request: interop_pb2.VerifyEvidenceRequest
    ) -> interop_pb2.VerifyEvidenceResponse:
        """Parsing and verifying both count against ``max_concurrent`` (a 16 MiB bundle costs
        CPU before any check); the counter's test and increment share one step of the loop."""
        if self._verifying >= self._verify_limits.max_concurrent:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._verifying} bundles are being verified (the limit); retry later",
            )
        self._verifying += 1
        try:
            return await self._verify_one(request)
        finally:
            self._verifying -= 1

    async def _verify_one(
        self, request: interop_pb2.VerifyEvidenceRequest
    ) -> interop_pb2.VerifyEvidenceResponse:
        raw = request.bundle_json
        if not raw:
            raise _invalid("bundle_json is empty")
        if len(raw) > MAX_BUNDLE_BYTES:
            raise _invalid(f"bundle_json is {len(raw)} bytes; at most {MAX_BUNDLE_BYTES}")
        try:
            bundle = bundle_from_json(raw, "bundle_json")
        except ConversionError as exc:
            return interop_pb2.VerifyEvidenceResponse(
                valid=False, check="bundle_format", reason=str(exc), chain=request.chain
            )
        chain = request.chain or _named_chain(bundle)
        cfg = self._trust_config(chain)
        trust = self._verifier.trust
        if not isinstance(cfg, FiscoTrustConfig):  # FISCO roots are configuration: no calls
            principal = current_principal.get()
            trust = _BudgetedTrust(trust, self._lookups, principal.name if principal else "")
        return await check_bundle(cfg, trust, bundle)

    def _trust_config(self, chain: str) -> TrustConfig:
        if not chain:
            raise _invalid("name the chain: the bundle's chain_id names no chain")
        cfg = self._verifier.chains.get(chain)
        if cfg is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"chain {chain!r} is not configured here")
        return cfg

    # -- ListChains / GetChainStatus -----------------------------------------------------------

    async def ListChains(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.ListChainsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.ListChainsResponse:
        del request
        entries = sorted(self._chains.values(), key=lambda c: (not c.local, c.name))
        statuses = await _guarded(
            context, "read the chains", asyncio.gather(*(self._chain(c) for c in entries))
        )
        return interop_pb2.ListChainsResponse(chains=statuses)

    async def GetChainStatus(  # noqa: N802 - the gRPC method name
        self,
        request: interop_pb2.GetChainStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> interop_pb2.ChainStatus:
        entry = self._chains.get(request.chain)
        if entry is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"chain {request.chain!r} is not configured here"
            )
            raise AssertionError("abort returned")
        result: interop_pb2.ChainStatus = await _guarded(
            context, "read the chain", self._chain(entry)
        )
        return result

    async def _chain(self, entry: ChainEntry) -> interop_pb2.ChainStatus:
        out = interop_pb2.ChainStatus(chain=entry.name, family=entry.family, local=entry.local)
        if entry.reader is None:
            out.error = entry.note or "remote chain: nothing here reads it"
            return out
        try:
            async with asyncio.timeout(STATUS_TIMEOUT_S):
                status = await entry.reader.status()
        except (AdapterError, TimeoutError) as exc:
            code, message = map_error(exc, "read the chain")
            del code
            out.error = message
            return out
        out.head, out.final_head = status.head, status.final_head
        out.head_time.CopyFrom(_timestamp(float(status.timestamp)))
        out.endpoints.extend(
            interop_pb2.EndpointHealth(
                endpoint=e.url, healthy=e.healthy, last_error=e.last_error or ""
            )
            for e in status.endpoints
        )
        if entry.local:
            observed = _cursor_height(await self._store.get_cursor(entry.name))
            if observed is not None:
                out.lag = max(0, status.final_head - observed)
        if entry.note:
            out.error = entry.note
        return out


# ---------------------------------------------------------------------------------------------
# VerifyEvidence: a caller's bundle against this gateway's own trust root.


class _LookupBudget:
    """Per principal, a token bucket of EVM block-hash lookups for heights not agreed lately."""

    def __init__(self, limits: VerifyLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._agreed: OrderedDict[tuple[str, int], None] = OrderedDict()

    def charge(self, principal: str, chain: str, height: int) -> None:
        """Take one lookup from ``principal``'s budget unless the height was agreed lately;
        ApiError RESOURCE_EXHAUSTED when the budget is spent."""
        if (chain, height) in self._agreed:
            self._agreed.move_to_end((chain, height))
            return
        now, limits = self._clock(), self._limits
        tokens, stamp = self._buckets.pop(principal, (float(limits.lookup_burst), now))
        tokens = min(float(limits.lookup_burst), tokens + (now - stamp) * limits.lookups_per_second)
        self._buckets[principal] = (tokens, now)
        if len(self._buckets) > LOOKUP_MEMORY:  # principals are configured: a bound only
            self._buckets.popitem(last=False)
        if tokens < 1.0:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"block-hash lookup budget spent ({limits.lookups_per_second:g}/s, burst "
                f"{limits.lookup_burst}, for heights this gateway has not checked lately); "
                "retry later",
            )
        self._buckets[principal] = (tokens - 1.0, now)

    def agreed(self, chain: str, height: int) -> None:
        self._agreed[(chain, height)] = None
        self._agreed.move_to_end((chain, height))
        if len(self._agreed) > LOOKUP_MEMORY:
            self._agreed.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _BudgetedTrust:
    """The trust store, with each lookup charged to the caller's :class:`_LookupBudget`."""

    trust: TrustStore
    budget: _LookupBudget
    principal: str

    async def root_for(self, chain: str, *, height: int, block_hash: str) -> TrustRoot:
        self.budget.charge(self.principal, chain, height)
        root = await self.trust.root_for(chain, height=height, block_hash=block_hash)
        self.budget.agreed(chain, height)
        return root


async def check_bundle(
    cfg: TrustConfig, trust: TrustStore, bundle: Mapping[str, Any]
) -> interop_pb2.VerifyEvidenceResponse:
    """Verify ``bundle`` with its ``trust`` replaced by this gateway's root for ``cfg.chain``.

    Checked, in order: the bundle's family and crypto are the chain's; the bundle's own hashes
    (header, receipt proof, and for FISCO the sealer quorum of the configured set and the
    transaction binding); EVM: the block hash equals the one k of n own endpoints agree on at
    finality; a named log is from the chain's configured gateway contract and decodes as one of
    its events. A verdict is ``valid = false`` with the check; NotYetTrusted propagates.
    """
    out = interop_pb2.VerifyEvidenceResponse(chain=cfg.chain, family=cfg.family.value)
    try:
        evidence = await _verify_with_root(cfg, trust, bundle)
    except EvidenceRejected as exc:
        out.valid, out.check, out.reason = False, exc.check, str(exc.reason)
        return out
    except VerificationError as exc:
        out.valid, out.check, out.reason = False, exc.check, exc.reason
        return out
    out.block_number = evidence.block_number
    out.block_hash = evidence.block_hash
    if evidence.receipt_status is not None:
        out.receipt_status = evidence.receipt_status
    if evidence.log_index is not None:
        out.log_index = evidence.log_index
    if evidence.log is not None:
        if evidence.log.address != cfg.gateway:
            out.valid, out.check = False, "gateway"
            out.reason = (
                f"the proven log is from 0x{evidence.log.address.hex()}, not the configured "
                f"gateway 0x{cfg.gateway.hex()} of {cfg.chain}"
            )
            return out
        event = evidence.event or _decode_gateway_event(evidence)
        if event is None:
            out.valid, out.check = False, "event"
            out.reason = "the proven log is none of the gateway contract's events"
            return out
        out.event_json = json.dumps(event.as_json(), sort_keys=True)
    out.valid = True
    return out


async def _verify_with_root(
    cfg: TrustConfig, trust: TrustStore, bundle: Mapping[str, Any]
) -> VerifiedEvidence:
    check_family(cfg, bundle)
    document = dict(bundle)
    document["chain_id"] = cfg.chain
    if isinstance(cfg, FiscoTrustConfig):
        header = parse_fisco_header(
            _object(document.get("block")), hasher_for(cfg.crypto.hash_scheme)
        )
        root = await trust.root_for(
            cfg.chain, height=header.number, block_hash="0x" + header.hash.hex()
        )
        document["trust"] = copy.deepcopy(dict(root.trust))
        return await asyncio.to_thread(verify_bundle, document)
    # EVM: the bundle's own hashes first, so a bundle that fails on its own costs no endpoint
    # call; then its header hash must be the one our endpoints agree on at finality.
    own_hash = "0x" + parse_evm_header(_object(document.get("block"))).hash.hex()
    document["trust"] = {"block_hash": own_hash}
    evidence = await asyncio.to_thread(verify_bundle, document)
    root = await trust.root_for(cfg.chain, height=evidence.block_number, block_hash=own_hash)
    trusted = str(root.trust.get("block_hash", "")).lower()
    if trusted != own_hash:
        raise EvidenceRejected(
            f"block {evidence.block_number}: the header hashes to {own_hash}, this gateway's "
            f"endpoints agree on {trusted}",
            check="header_trust",
        )
    return evidence


def _decode_gateway_event(evidence: VerifiedEvidence) -> DecodedEvent | None:
    """An EVM log decoded as the gateway event whose topic it carries (strictly)."""
    assert evidence.log is not None
    for entry in (MESSAGE_SENT_EVENT, MESSAGE_DELIVERED_EVENT, MESSAGE_ACKNOWLEDGED_EVENT):
        try:
            return decode_event(evidence.log, parse_event_abi(entry), keccak256)
        except VerificationError:
            continue
    return None


def _object(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EvidenceRejected("block is not a JSON object", check="bundle_format")
    return value


# ---------------------------------------------------------------------------------------------
# Conversions and checks (pure).


def _invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _check_chain(name: str, field: str) -> None:
    if CHAIN_NAME.fullmatch(name) is None:
        raise _invalid(f"{field} {name!r} is not a chain name (1-32 of a-z, 0-9 and '-')")


async def _async_check_chain(name: str, field: str) -> None:
    _check_chain(name, field)


def _check_id(mid: bytes) -> None:
    if len(mid) != 32:
        raise _invalid(f"id must be 32 bytes, not {len(mid)}")


def _named_chain(bundle: Mapping[str, Any]) -> str:
    value = bundle.get("chain_id")
    return value if isinstance(value, str) and CHAIN_NAME.fullmatch(value) else ""


def _tx_bytes(tx_hash: str) -> bytes:
    try:
        return bytes.fromhex(tx_hash.removeprefix("0x"))
    except ValueError:
        return b""


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    whole = math.floor(seconds)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def _entry(h: HistoryEntry) -> interop_pb2.TimelineEntry:
    return interop_pb2.TimelineEntry(
        state=_STATE_TO_PROTO[h.state],
        time=_timestamp(h.at),
        kind=h.kind,
        height=h.height or 0,
        tx_hash=_tx_bytes(h.tx_hash or ""),
        error=h.error or "",
    )


def _change(h: HistoryEntry) -> interop_pb2.StatusChange:
    return interop_pb2.StatusChange(
        sequence=h.seq,
        id=h.id,
        role=_ROLE_TO_PROTO[h.role],
        state=_STATE_TO_PROTO[h.state],
        src_chain=h.src_chain,
        dst_chain=h.dst_chain,
        entry=_entry(h),
    )


def _filter(request: interop_pb2.ListMessagesRequest) -> MessageFilter:
    for name, field in ((request.src_chain, "src_chain"), (request.dst_chain, "dst_chain")):
        if name:
            _check_chain(name, field)
    state = _STATE_FROM_PROTO.get(request.state) if request.state else None
    if request.state and state is None:
        raise _invalid(f"state {request.state} is not a MessageState")
    role = _ROLE_FROM_PROTO.get(request.role) if request.role else None
    if request.role and role is None:
        raise _invalid(f"role {request.role} is not a Role")
    since = request.since.ToNanoseconds() / 1e9 if request.HasField("since") else None
    until = request.until.ToNanoseconds() / 1e9 if request.HasField("until") else None
    states = frozenset({state}) if state is not None else None
    if request.stuck_only and states is None:
        # Terminal states are never stuck: leave them out in the query, so pages stay full.
        states = frozenset(State) - {s for _, s in TERMINAL}
    return MessageFilter(
        src_chain=request.src_chain or None,
        dst_chain=request.dst_chain or None,
        states=states,
        role=role,
        since=since,
        until=until,
    )


def _filter_digest(request: interop_pb2.ListMessagesRequest) -> str:
    """Ties a page token to its filters: a token reused with other filters is refused."""
    copy = interop_pb2.ListMessagesRequest()
    copy.CopyFrom(request)
    copy.page_token = ""
    copy.page_size = 0
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:16]


def _make_token(after: int, fingerprint: str) -> str:
    raw = json.dumps({"v": 1, "after": after, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_token(token: str, fingerprint: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after, f = data["after"], data["f"]
        if data["v"] != 1 or not isinstance(after, int) or after < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise _invalid("page_token is not a token this gateway issued") from None
    if f != fingerprint:
        raise _invalid("page_token belongs to a listing with other filters")
    return after


def _cursor_height(cursor: str | None) -> int | None:
    """The last block observed, from an adapter cursor (``{"next": height, ...}``)."""
    if cursor is None:
        return None
    try:
        value = json.loads(cursor).get("next")
    except (ValueError, AttributeError):
        return None
    return value - 1 if isinstance(value, int) and value > 0 else None


__all__ = [
    "ApiError",
    "ChainEntry",
    "InteropService",
    "MessageSender",
    "StatusReader",
    "map_error",
]
