"""AuditService: the auditor's read-only view of this gateway's audit trail (docs/api.md).

Auditors may call every method; a peer gateway may call ``TraceMessage`` only (it asks for this
gateway's part of one message's life, with its own mutual-TLS identity), for messages to or from
a chain it serves, and gets this gateway's part alone, so that two gateways tracing never call
each other in a loop. The part's chain segment shows the peer the records between the
message's first record and the checkpoint, other messages' included (what links them to it).
Everything else is refused before any read. The trail itself is written by the store
(``relay/sqlite_store.py``), in the transaction of each state change; this module only reads it.

A trace's peer part is verified here before it is returned: its chain segment must hash and
link, hold the message's records, and end at a checkpoint signed by the peer's audit key as
this gateway's configuration pins it (``[peers.X] audit_key``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import grpc
import grpc.aio
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import timestamp_pb2

from protos.interop.v1 import audit_pb2, audit_pb2_grpc, interop_pb2
from relay.audit import (
    AuditKey,
    AuditKind,
    AuditRecord,
    Checkpoint,
    RecordFormatError,
    canonical_json,
    format_time,
    public_hex,
    record_from_json,
    sign_checkpoint,
)
from relay.audit_guard import load_line, parse_checkpoint
from relay.grpc.auth import Principal, PrincipalKind, current_principal
from relay.store import AuditFilter

log = structlog.get_logger(__name__)

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
MAX_TRACE_RECORDS: Final = 1000
"""A message has a few dozen records; more is a flood of rejected attempts, cut here."""
MAX_SEGMENT: Final = 20_000
"""Lines of a trace's chain segment (other messages' records between the message's first
record and the checkpoint): beyond this the part is refused as too large to check."""
FOLLOW_POLL_S: Final = 0.5
PEER_TRACE_TIMEOUT_S: Final = 10.0


class AuditReader(Protocol):
    """What the servicer reads (``relay.sqlite_store.SqliteStore`` with an audit log)."""

    async def audit_records(
        self, flt: AuditFilter, *, after: int = 0, limit: int = 100
    ) -> tuple[tuple[AuditRecord, ...], int | None]: ...

    async def audit_lines(self, first: int, last: int) -> tuple[str, ...]: ...

    async def audit_checkpoint(self, seq: int = 0) -> Checkpoint | None: ...

    async def audit_head(self) -> tuple[int, str] | None: ...

    async def audit_export(self, now: float, *, from_seq: int = 1) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class PeerAudit:
    """A peer whose part of a trace this gateway fetches: its chains, its pinned audit key
    (None: its part is shown unverified) and the pinned mutual-TLS channel to it."""

    name: str
    chains: tuple[str, ...]
    public_key: Ed25519PublicKey | None
    channel: Callable[[], Awaitable[grpc.aio.Channel]]


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self,
        store: AuditReader,
        *,
        gateway: str,
        key: AuditKey,
        peers: Sequence[PeerAudit] = (),
        clock: Callable[[], float] = time.time,
        follow_poll: float = FOLLOW_POLL_S,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._key = key
        self._peers = tuple(peers)
        self._clock = clock
        self._poll = follow_poll
        self._closed = asyncio.Event()

    def close(self) -> None:
        """End FollowRecords streams (the server is draining)."""
        self._closed.set()

    # -- methods ---------------------------------------------------------------------------------

    async def QueryRecords(  # noqa: N802 - the gRPC method name
        self,
        request: audit_pb2.QueryRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.QueryRecordsResponse:
        await _require(context, auditor_only=True)
        flt = await _filter(request, context)
        after = 0
        if request.page_token:
            if not request.page_token.isdigit():
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "bad page_token")
            after = int(request.page_token)
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        records, next_after = await self._store.audit_records(flt, after=after, limit=size)
        cp = await self._store.audit_checkpoint()
        response = audit_pb2.QueryRecordsResponse(
            records=[record_to_proto(r) for r in records],
            next_page_token=str(next_after) if next_after is not None else "",
        )
        if cp is not None:
            response.checkpoint.CopyFrom(self._checkpoint(cp, self._key.public_key))
        return response

    async def FollowRecords(  # noqa: N802 - the gRPC method name
        self,
        request: audit_pb2.FollowRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.AuditRecord]:
        await _require(context, auditor_only=True)
        after = max(int(request.from_seq), 1) - 1
        while not self._closed.is_set():
            records, _ = await self._store.audit_records(AuditFilter(), after=after, limit=500)
            for r in records:
                yield record_to_proto(r)
                after = r.seq
            if not records:
                # Polling the table: records are written by the store thread in others'
                # transactions, and a poll costs one indexed read.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), self._poll)

    async def GetCheckpoint(  # noqa: N802 - the gRPC method name
        self,
        request: audit_pb2.GetCheckpointRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.Checkpoint:
        await _require(context, auditor_only=True)
        cp = await self._store.audit_checkpoint(int(request.seq))
        if cp is None:
            what = f"at or after seq {request.seq}" if request.seq else "yet"
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"no checkpoint {what}")
        assert cp is not None
        return self._checkpoint(cp, self._key.public_key)

    async def ExportRecords(  # noqa: N802 - the gRPC method name
        self,
        request: audit_pb2.ExportRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.ExportLine]:
        await _require(context, auditor_only=True)
        lines = await self._store.audit_export(self._clock(), from_seq=max(1, request.from_seq))
        for line in lines:
            yield audit_pb2.ExportLine(line=line)

    async def TraceMessage(  # noqa: N802 - the gRPC method name
        self,
        request: audit_pb2.TraceMessageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.TraceMessageResponse:
        principal = await _require(context, auditor_only=False)
        if len(request.id) != 32:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "id must be 32 bytes")
        own = await self._own_part(request.id)
        if principal.kind is PrincipalKind.PEER:
            # A peer traces only messages of the chains it serves: its own traffic here.
            served = next((set(p.chains) for p in self._peers if p.name == principal.name), set())
            if not any({r.src_chain, r.dst_chain} & served for r in own.records):
                await _abort(context, grpc.StatusCode.NOT_FOUND, "no record of it for this peer")
        parts = [own]
        if principal.kind is PrincipalKind.AUDITOR:
            chains = {c for r in own.records for c in (r.src_chain, r.dst_chain)}
            for peer in self._peers:
                if own.records and not chains & set(peer.chains):
                    continue
                parts.append(await self._peer_part(peer, request.id))
        if not any(p.records for p in parts):
            await _abort(context, grpc.StatusCode.NOT_FOUND, "no gateway has a record of it")
        return audit_pb2.TraceMessageResponse(id=request.id, parts=parts)

    # -- trace parts -----------------------------------------------------------------------------

    async def _own_part(self, id: bytes) -> audit_pb2.GatewayTrace:
        part = audit_pb2.GatewayTrace(
            gateway=self._gateway, public_key=_raw(self._key.public_key), local=True
        )
        records, part.truncated = await self._message_records("0x" + id.hex())
        if not records:
            part.verified = True
            return part
        part.records.extend(record_to_proto(r) for r in records)
        cp = await self._store.audit_checkpoint(records[-1].seq)
        if cp is None:
            # No periodic checkpoint covers the records yet: sign the current head now (a
            # checkpoint is a statement about the head, valid whenever it is signed).
            head = await self._store.audit_head()
            assert head is not None
            cp = sign_checkpoint(
                self._key, gateway=self._gateway, seq=head[0], head_hash=head[1], at=self._clock()
            )
        if cp.seq - records[0].seq >= MAX_SEGMENT:
            part.problem = f"the chain segment to the checkpoint exceeds {MAX_SEGMENT} records"
            return part
        part.segment_json.extend(await self._store.audit_lines(records[0].seq, cp.seq))
        part.checkpoint.CopyFrom(self._checkpoint(cp, self._key.public_key))
        problem = verify_part(part, self._key.public_key, message_id=id)
        part.verified, part.problem = problem is None, problem or ""
        return part

    async def _message_records(self, message_id: str) -> tuple[list[AuditRecord], bool]:
        """The message's records, in seq order, and whether some were left out: at most
        MAX_TRACE_RECORDS, but every state-change record (a flood of rejected attempts must
        not push them out); only ``attempt_rejected`` records are ever cut."""
        records, more = await self._store.audit_records(
            AuditFilter(message_id=message_id), limit=MAX_TRACE_RECORDS
        )
        if more is None:
            return list(records), False
        kept = {r.seq: r for r in records}
        for kind in AuditKind:
            if kind is AuditKind.ATTEMPT_REJECTED:
                continue
            after = records[-1].seq
            while True:
                page, after_next = await self._store.audit_records(
                    AuditFilter(message_id=message_id, kind=str(kind)), after=after, limit=MAX_PAGE
                )
                kept.update((r.seq, r) for r in page)
                if after_next is None:
                    break
                after = after_next
        return [kept[seq] for seq in sorted(kept)], True

    async def _peer_part(self, peer: PeerAudit, id: bytes) -> audit_pb2.GatewayTrace:
        missing = audit_pb2.GatewayTrace(gateway=peer.name, local=False)
        if peer.public_key is not None:
            missing.public_key = _raw(peer.public_key)
        try:
            stub = audit_pb2_grpc.AuditServiceStub(await peer.channel())
            answer = await stub.TraceMessage(
                audit_pb2.TraceMessageRequest(id=id), timeout=PEER_TRACE_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                missing.verified = True  # nothing to show, nothing to check
                return missing
            missing.problem = f"peer {peer.name}: {exc.code().name}: {exc.details()}"
            log.warning("audit_trace_peer_failed", peer=peer.name, code=exc.code().name)
            return missing
        except Exception as exc:  # a pin mismatch, an unreachable peer
            missing.problem = f"peer {peer.name}: {exc}"
            log.warning("audit_trace_peer_failed", peer=peer.name, error=str(exc))
            return missing
        if not answer.parts:
            missing.problem = f"peer {peer.name} answered no part"
            return missing
        part = audit_pb2.GatewayTrace()
        part.CopyFrom(answer.parts[0])
        part.local = False
        part.verified, part.problem = False, ""
        part.ClearField("public_key")
        if peer.public_key is None:
            part.problem = (
                f"not verified: no audit_key is configured for peer {peer.name} "
                f"([peers.{peer.name}] audit_key)"
            )
            return part
        part.public_key = _raw(peer.public_key)
        if part.gateway != peer.name:
            part.problem = f"the peer calls itself {part.gateway!r}, configured as {peer.name!r}"
            return part
        try:
            problem = verify_part(part, peer.public_key, message_id=id)
        except Exception as exc:  # the peer's part is hostile input: never the whole trace
            log.warning("audit_trace_peer_unverifiable", peer=peer.name, error=repr(exc)[:200])
            problem = f"the peer's part could not be checked: {type(exc).__name__}"
        part.verified, part.problem = problem is None, problem or ""
        return part

    def _checkpoint(self, cp: Checkpoint, key: Ed25519PublicKey) -> audit_pb2.Checkpoint:
        return checkpoint_to_proto(cp, key)


# -- verification of a trace part ----------------------------------------------------------------


def verify_part(
    part: audit_pb2.GatewayTrace, key: Ed25519PublicKey, *, message_id: bytes | None = None
) -> str | None:
    """None when the part's segment hashes and links, starts at the message's first record,
    ends at a checkpoint signed by ``key``, and every record of the message in it is shown
    (``attempt_rejected`` ones may be left out when the part says it is truncated); else why
    not. What is checked is what is shown: seq and message id come from each ``record_json``
    (the proto's copies of them are ignored). Every line is bounded in size and depth before
    it is parsed (a peer's lines are hostile input)."""
    if not part.records:
        return None
    if not part.HasField("checkpoint") or not part.checkpoint.checkpoint_json:
        return "no signed checkpoint"
    if len(part.segment_json) > MAX_SEGMENT or len(part.records) > len(part.segment_json):
        return f"more lines than a trace holds ({len(part.segment_json)} in the segment)"
    try:
        segment = [_parse_record(line) for line in part.segment_json]
        shown = [_parse_record(r.record_json) for r in part.records]
    except (RecordFormatError, ValueError, TypeError, KeyError) as exc:
        return f"a line is not a record: {exc}"
    try:
        cp = parse_checkpoint(load_line(part.checkpoint.checkpoint_json, "checkpoint"))
    except (ValueError, TypeError) as exc:
        return f"the checkpoint is not a version 1 checkpoint: {exc}"
    if not segment:
        return "empty chain segment"
    problem = _check_segment(segment, part.gateway)
    if problem is not None:
        return problem
    target = "0x" + message_id.hex() if message_id is not None else shown[0].message_id
    problem = _check_shown(segment, shown, target, truncated=part.truncated)
    if problem is not None:
        return problem
    if not cp.verify(key):
        return "the checkpoint's signature does not verify with the pinned audit key"
    head = segment[-1]
    if cp.seq != head.seq or cp.head_hash != head.hash or cp.gateway != part.gateway:
        return f"the checkpoint (seq {cp.seq}) does not sign the segment's head (seq {head.seq})"
    return None


def _parse_record(text: str) -> AuditRecord:
    return record_from_json(load_line(text, "record"))


def _check_segment(segment: Sequence[AuditRecord], gateway: str) -> str | None:
    prev: AuditRecord | None = None
    for r in segment:
        if r.compute_hash() != r.hash:
            return f"seq {r.seq}: the record does not hash to its stated hash"
        if r.gateway != gateway:
            return f"seq {r.seq}: a record of gateway {r.gateway!r}"
        if prev is not None and (r.seq != prev.seq + 1 or r.prev_hash != prev.hash):
            return f"seq {r.seq}: does not link to seq {prev.seq}"
        prev = r
    return None


def _check_shown(
    segment: Sequence[AuditRecord], shown: Sequence[AuditRecord], target: str, *, truncated: bool
) -> str | None:
    """The records shown are the message's records of the segment, all of them (rejected
    attempts excepted when truncated), and the segment starts at the first of them."""
    by_seq = {r.seq: r for r in segment}
    last = 0
    for r in shown:
        if r.seq <= last:
            return f"seq {r.seq}: records shown out of order or twice"
        last = r.seq
        kept = by_seq.get(r.seq)
        if kept is None or kept.line() != r.line():
            return f"seq {r.seq}: the record shown is not the one in the chain"
        if r.message_id != target:
            return f"seq {r.seq}: a record of another message ({r.message_id})"
    if segment[0].message_id != target or shown[0].seq != segment[0].seq:
        return f"the chain segment (seq {segment[0].seq}) does not start at the message's record"
    shown_seqs = {r.seq for r in shown}
    for r in segment:
        if r.message_id != target or r.seq in shown_seqs:
            continue
        if not (truncated and r.kind is AuditKind.ATTEMPT_REJECTED):
            return f"seq {r.seq}: a record of the message is in the chain but not shown"
    return None


# -- conversion -----------------------------------------------------------------------------------


def record_to_proto(r: AuditRecord) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        seq=r.seq,
        time=_timestamp(r.time),
        gateway=r.gateway,
        kind=audit_pb2.AuditKind.Value("AUDIT_KIND_" + str(r.kind).upper()),  # type: ignore[arg-type]
        message_id=bytes.fromhex(r.message_id.removeprefix("0x")),
        role=interop_pb2.Role.Value("ROLE_" + r.role.upper()),  # type: ignore[arg-type]
        src_chain=r.src_chain,
        dst_chain=r.dst_chain,
        state=interop_pb2.MessageState.Value("MESSAGE_STATE_" + r.state.upper()),  # type: ignore[arg-type]
        height=r.height or 0,
        tx_hash=r.tx_hash or "",
        hop=r.hop or "",
        endpoint=r.endpoint or "",
        peer=r.peer or "",
        evidence_digest=bytes.fromhex(r.evidence_digest) if r.evidence_digest else b"",
        trust_digest=bytes.fromhex(r.trust_digest) if r.trust_digest else b"",
        trust_json=canonical_json(r.trust).decode() if r.trust is not None else "",
        check=r.check or "",
        reason=r.reason or "",
        prev_hash=bytes.fromhex(r.prev_hash),
        hash=bytes.fromhex(r.hash),
        record_json=r.line(),
    )


def checkpoint_to_proto(cp: Checkpoint, key: Ed25519PublicKey) -> audit_pb2.Checkpoint:
    return audit_pb2.Checkpoint(
        gateway=cp.gateway,
        seq=cp.seq,
        head_hash=bytes.fromhex(cp.head_hash),
        time=_timestamp(cp.time),
        signature=bytes.fromhex(cp.signature),
        public_key=_raw(key),
        checkpoint_json=canonical_json(cp.to_json()).decode(),
    )


def _raw(key: Ed25519PublicKey) -> bytes:
    return bytes.fromhex(public_hex(key))


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(at)
    return ts


_KIND_NAMES: Final[Mapping[int, str]] = {
    v: n.removeprefix("AUDIT_KIND_").lower()
    for n, v in audit_pb2.AuditKind.items()
    if v != audit_pb2.AUDIT_KIND_UNSPECIFIED
}
_STATE_NAMES: Final[Mapping[int, str]] = {
    v: n.removeprefix("MESSAGE_STATE_").lower()
    for n, v in interop_pb2.MessageState.items()
    if n != "MESSAGE_STATE_UNSPECIFIED"
}
_ROLE_NAMES: Final[Mapping[int, str]] = {
    v: n.removeprefix("ROLE_").lower()
    for n, v in interop_pb2.Role.items()
    if n != "ROLE_UNSPECIFIED"
}


async def _filter(
    request: audit_pb2.QueryRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> AuditFilter:
    if request.message_id and len(request.message_id) != 32:
        await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "message_id must be 32 bytes")
    unknown = [
        name
        for name, value, known in (
            ("kind", request.kind, _KIND_NAMES),
            ("state", request.state, _STATE_NAMES),
            ("role", request.role, _ROLE_NAMES),
        )
        if value and value not in known
    ]
    if unknown:
        await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"unknown {', '.join(unknown)}")

    def when(field: str) -> str | None:
        if not request.HasField(field):
            return None
        ts: timestamp_pb2.Timestamp = getattr(request, field)
        return format_time(ts.seconds + ts.nanos / 1e9)

    return AuditFilter(
        message_id="0x" + request.message_id.hex() if request.message_id else None,
        chain=request.chain or None,
        kind=_KIND_NAMES.get(request.kind),
        state=_STATE_NAMES.get(request.state),
        role=_ROLE_NAMES.get(request.role),
        since=when("since"),
        until=when("until"),
    )


async def _require(context: grpc.aio.ServicerContext[Any, Any], *, auditor_only: bool) -> Principal:
    """Auditors may call everything; a peer TraceMessage only (the interceptor lets both kinds
    reach the service, this decides per method)."""
    principal = current_principal.get()
    allowed = (
        {PrincipalKind.AUDITOR} if auditor_only else {PrincipalKind.AUDITOR, PrincipalKind.PEER}
    )
    if principal is None or principal.kind not in allowed:
        kind = principal.kind.value if principal is not None else "caller"
        await _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"a {kind} may not call this")
    assert principal is not None
    return principal


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str
) -> None:
    await context.abort(code, message)
    raise AssertionError("abort returned")
