"""The audit trail: one hash-chained record per relay decision, signed checkpoints of the
chain's head, a versioned JSON Lines export, and its offline verification.

Records are written by :meth:`AuditLog.hook` inside the store's transaction (the store's
:data:`relay.store.AuditHook`), so a state change and its record commit or roll back together
and a restarted gateway continues from the head it finds in the database: no gap, no fork.

Everything an auditor recomputes is canonical JSON (sorted keys, no whitespace, non-ASCII as
``\\uXXXX`` escapes, integers and strings only): ``jq -cSaj 'del(.hash)' | sha256sum`` (``-j``:
no trailing newline, which would be hashed too) gives a record's hash. The formats are
specified byte for byte in ``docs/audit.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import relay.audit_guard as _guard  # a cycle: each module reads the other's names at call time
from relay.audit_check import Claim, LineError, parse_line, trust_root, unbound
from relay.store import HistoryEntry, Hop, RejectedAttempt, Role, State, Transition
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle
from verifier.types import VerifiedEvidence

RECORD_TYPE: Final = "audit-record"
CHECKPOINT_TYPE: Final = "checkpoint"
EXPORT_END_TYPE: Final = "export-end"
RECORD_VERSION: Final = 1
EXPORT_FORMAT: Final = "interop-audit-export/1"
GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of seq 1: 32 zero bytes, hex."""
CHECKPOINT_DOMAIN: Final = b"interop-audit-checkpoint/1\n"
EXPORT_END_DOMAIN: Final = b"interop-audit-export-end/1\n"
"""Signed messages start with a domain line, so a checkpoint signature can never be replayed
as an export-end signature (or as anything else the key signs)."""

DEFAULT_CHECKPOINT_RECORDS: Final = 1000
DEFAULT_CHECKPOINT_SECONDS: Final = 60.0
_MAX_JSON_INT: Final = 2**53 - 1
"""Larger integers lose precision in jq (doubles): refused, so hand checks always agree."""


class AuditKind(StrEnum):
    """What a record says happened; ``docs/audit.md`` explains each."""

    # Source role
    FACT_OBSERVED = "fact_observed"
    EVIDENCE_VERIFIED = "evidence_verified"
    EVIDENCE_REJECTED = "evidence_rejected"
    FORWARDED = "forwarded"
    RESULT_VERIFIED = "result_verified"
    ACK_SUBMITTED = "ack_submitted"
    ACK_REQUEUED = "ack_requeued"
    ACKNOWLEDGED = "acknowledged"
    # Destination role
    ACCEPTED_FROM_PEER = "accepted_from_peer"
    DELIVERY_SUBMITTED = "delivery_submitted"
    DELIVERY_REQUEUED = "delivery_requeued"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    RESULT_FORWARDED = "result_forwarded"
    # Either role, no state change
    ATTEMPT_REJECTED = "attempt_rejected"


CLOSING_KINDS: Final = frozenset({AuditKind.ACKNOWLEDGED, AuditKind.RESULT_FORWARDED})
"""The kinds that close a message's row (its terminal states besides a rejection)."""


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, ASCII only (``jq -cSa`` prints the same bytes)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def evidence_digest(obj: Mapping[str, Any]) -> str:
    """sha256 hex of a bundle or trust object: canonical JSON with raw UTF-8 (``jq -cS``).

    The same encoding as ``relay.verify.evidence_digest``, kept here so that the offline
    check does not import the relay's network stack (a test pins the two together).
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def format_time(at: float) -> str:
    """RFC 3339, UTC, microseconds: a string, since JSON floats differ between tools."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_plain(value: object, path: str) -> None:
    """Records hold only what every JSON tool prints identically: no floats, no huge ints."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_JSON_INT:
            raise ValueError(f"{path}: integer {value} exceeds 2**53-1")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: key {k!r} is not a string")
            _check_plain(v, f"{path}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not allowed in an audit record")


def _plain(value: Any) -> Any:
    """Mappings and tuples as JSON data (a fresh copy the record owns)."""
    loaded: Any = json.loads(json.dumps(value))
    return loaded


# ---------------------------------------------------------------------------------------------
# Records


class ChainHead(NamedTuple):
    """The last record's seq and hash: all the next record needs to chain."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Reliance:
    """What a decision relied on: the bundle (by digest) and the trust object it was verified
    under (``TrustRoot.trust``, with ``event`` on EVM) plus the trust root's summary."""

    evidence_digest: str
    trust: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None

    @property
    def trust_digest(self) -> str | None:
        return evidence_digest(self.trust) if self.trust is not None else None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: str
    gateway: str
    kind: AuditKind
    message_id: str
    role: str
    src_chain: str
    dst_chain: str
    state: str
    prev_hash: str
    height: int | None = None
    tx_hash: str | None = None
    hop: str | None = None
    endpoint: str | None = None
    """Where the evidence came from: an endpoint name, or ``peer:endpoint`` from a peer."""
    peer: str | None = None
    evidence_digest: str | None = None
    """sha256 hex of the bundle relied on, canonical JSON (``relay.verify.evidence_digest``)."""
    trust_digest: str | None = None
    """sha256 hex of the trust object the bundle was verified under (same encoding)."""
    trust: Mapping[str, Any] | None = None
    """The trust root's summary: which sealer set and quorum, or which endpoints agreed."""
    check: str | None = None
    reason: str | None = None
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Everything but ``hash``: what the hash covers."""
        return {
            "type": RECORD_TYPE,
            "v": RECORD_VERSION,
            "seq": self.seq,
            "time": self.time,
            "gateway": self.gateway,
            "kind": str(self.kind),
            "message_id": self.message_id,
            "role": self.role,
            "src_chain": self.src_chain,
            "dst_chain": self.dst_chain,
            "state": self.state,
            "height": self.height,
            "tx_hash": self.tx_hash,
            "hop": self.hop,
            "endpoint": self.endpoint,
            "peer": self.peer,
            "evidence_digest": self.evidence_digest,
            "trust_digest": self.trust_digest,
            "trust": _plain(self.trust) if self.trust is not None else None,
            "check": self.check,
            "reason": self.reason,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return sha256_hex(canonical_json(self.body()))

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    def line(self) -> str:
        return canonical_json(self.to_json()).decode()


class RecordFormatError(ValueError):
    """A line is not a record of this version (its field and the problem are named)."""


_RECORD_FIELDS: Final = frozenset(AuditRecord.__slots__) | {"type", "v"}


def record_from_json(d: Mapping[str, Any]) -> AuditRecord:
    """Parse strictly: a record with a field too many or too few is not a record."""
    if d.get("type") != RECORD_TYPE or d.get("v") != RECORD_VERSION:
        raise RecordFormatError(f"not a version {RECORD_VERSION} audit record")
    keys = set(d)
    if keys != _RECORD_FIELDS:
        extra, missing = sorted(keys - _RECORD_FIELDS), sorted(_RECORD_FIELDS - keys)
        raise RecordFormatError(f"fields differ: extra {extra}, missing {missing}")
    try:
        _check_plain(dict(d), "record")
        return AuditRecord(
            seq=_int(d["seq"], "seq"),
            time=_str(d["time"], "time"),
            gateway=_str(d["gateway"], "gateway"),
            kind=AuditKind(d["kind"]),
            message_id=_str(d["message_id"], "message_id"),
            role=_str(d["role"], "role"),
            src_chain=_str(d["src_chain"], "src_chain"),
            dst_chain=_str(d["dst_chain"], "dst_chain"),
            state=_str(d["state"], "state"),
            prev_hash=_str(d["prev_hash"], "prev_hash"),
            height=_opt_int(d["height"], "height"),
            tx_hash=_opt_str(d["tx_hash"], "tx_hash"),
            hop=_opt_str(d["hop"], "hop"),
            endpoint=_opt_str(d["endpoint"], "endpoint"),
            peer=_opt_str(d["peer"], "peer"),
            evidence_digest=_opt_str(d["evidence_digest"], "evidence_digest"),
            trust_digest=_opt_str(d["trust_digest"], "trust_digest"),
            trust=_opt_obj(d["trust"], "trust"),
            check=_opt_str(d["check"], "check"),
            reason=_opt_str(d["reason"], "reason"),
            hash=_str(d["hash"], "hash"),
        )
    except ValueError as exc:  # the enum's, and _check_plain's
        raise RecordFormatError(str(exc)) from None


def _int(v: object, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecordFormatError(f"{name} must be an integer")
    return v


def _opt_int(v: object, name: str) -> int | None:
    return None if v is None else _int(v, name)


def _str(v: object, name: str) -> str:
    if not isinstance(v, str):
        raise RecordFormatError(f"{name} must be a string")
    return v


def _opt_str(v: object, name: str) -> str | None:
    return None if v is None else _str(v, name)


def _opt_obj(v: object, name: str) -> Mapping[str, Any] | None:
    if v is not None and not isinstance(v, Mapping):
        raise RecordFormatError(f"{name} must be an object or null")
    return v


def kind_of(t: Transition) -> AuditKind:
    """The record kind of a state change (the pipeline's transitions, ``relay/pipeline.py``)."""
    expect = t.expect or frozenset()
    if t.role is Role.SOURCE:
        by_state = {
            State.OBSERVED: AuditKind.FACT_OBSERVED,
            State.VERIFIED: AuditKind.EVIDENCE_VERIFIED,
            State.REJECTED: AuditKind.EVIDENCE_REJECTED,
            State.FORWARDED: AuditKind.FORWARDED,
            State.ACK_SUBMITTED: AuditKind.ACK_SUBMITTED,
            State.ACKNOWLEDGED: AuditKind.ACKNOWLEDGED,
        }
        if t.to is State.RESULT_VERIFIED:
            # Back from ack_submitted: the acknowledgement did not land and is sent again.
            if expect and expect <= {State.ACK_SUBMITTED}:
                return AuditKind.ACK_REQUEUED
            return AuditKind.RESULT_VERIFIED
    else:
        by_state = {
            State.DELIVERY_SUBMITTED: AuditKind.DELIVERY_SUBMITTED,
            State.DELIVERED: AuditKind.DELIVERED,
            State.EXPIRED: AuditKind.EXPIRED,
            State.RESULT_FORWARDED: AuditKind.RESULT_FORWARDED,
        }
        if t.to is State.VERIFIED:
            return AuditKind.ACCEPTED_FROM_PEER if t.expect is None else AuditKind.DELIVERY_REQUEUED
    kind = by_state.get(t.to)
    if kind is None:
        raise ValueError(f"no audit kind for {t.role} -> {t.to}")
    return kind


_CHECK_REASON: Final = re.compile(r"^\[([^\]]*)\] (.*)$", re.DOTALL)


def _split_error(error: str | None) -> tuple[str | None, str | None]:
    """``"[check] reason"`` (how the pipeline records a rejection) into its parts."""
    if error is None:
        return None, None
    m = _CHECK_REASON.match(error)
    if m is None:
        return None, error
    return m.group(1) or None, m.group(2)


def _peer_of(endpoint: str | None, kind: AuditKind) -> str | None:
    """Evidence from a peer is kept as ``peer:endpoint`` (``relay/pipeline.py``)."""
    if endpoint is None:
        return None
    if kind in {AuditKind.ACCEPTED_FROM_PEER, AuditKind.RESULT_VERIFIED}:
        return endpoint.partition(":")[0]
    return None


def record_from_transition(
    transition: Transition,
    entry: HistoryEntry,
    *,
    gateway: str,
    prev: AuditRecord | ChainHead | None,
    relied: Reliance | None = None,
) -> AuditRecord:
    """The record of one state change, chained after ``prev`` (None: the first record).

    ``relied`` names the bundle and trust a verification relied on; without it a transition
    that carries a bundle records that bundle's digest (no trust: not yet verified).
    """
    kind = kind_of(transition)
    hop: str | None = None
    endpoint: str | None = None
    digest = relied.evidence_digest if relied is not None else None
    if transition.evidence is not None:
        ev_hop, bundle, endpoint = transition.evidence
        hop = str(ev_hop)
        if digest is None:
            digest = evidence_digest(bundle)
    elif relied is not None:
        hop = str(
            Hop.DELIVERY_RESULT
            if kind in {AuditKind.RESULT_VERIFIED, AuditKind.DELIVERED, AuditKind.EXPIRED}
            else Hop.MESSAGE_SENT
        )
    check, reason = _split_error(entry.error)
    return _chain(
        AuditRecord(
            seq=0,
            time=format_time(entry.at),
            gateway=gateway,
            kind=kind,
            message_id=_hex(entry.id),
            role=str(entry.role),
            src_chain=entry.src_chain,
            dst_chain=entry.dst_chain,
            state=str(entry.state),
            prev_hash="",
            height=entry.height,
            tx_hash=entry.tx_hash,
            hop=hop,
            endpoint=endpoint,
            peer=_peer_of(endpoint, kind),
            evidence_digest=digest,
            trust_digest=relied.trust_digest if relied is not None else None,
            trust=relied.summary if relied is not None else None,
            check=check,
            reason=reason,
        ),
        prev,
    )


def record_from_rejected(
    attempt: RejectedAttempt,
    *,
    gateway: str,
    src_chain: str,
    dst_chain: str,
    state: State,
    prev: AuditRecord | ChainHead | None,
    evidence: str | None = None,
) -> AuditRecord:
    """A rejected attempt (no state change): a peer's forward or result, or an own-chain
    endpoint's bundle (``peer`` ``local``), with the verifier's check and reason."""
    return _chain(
        AuditRecord(
            seq=0,
            time=format_time(attempt.at),
            gateway=gateway,
            kind=AuditKind.ATTEMPT_REJECTED,
            message_id=_hex(attempt.id),
            role=str(attempt.role),
            src_chain=src_chain,
            dst_chain=dst_chain,
            state=str(state),
            prev_hash="",
            hop=str(attempt.hop),
            peer=attempt.peer,
            evidence_digest=evidence,
            check=attempt.check or None,
            reason=attempt.reason,
        ),
        prev,
    )


def _chain(r: AuditRecord, prev: AuditRecord | ChainHead | None) -> AuditRecord:
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    unhashed = AuditRecord(**{**_fields(r), "seq": seq, "prev_hash": prev_hash, "hash": ""})
    _check_plain(unhashed.body(), "record")
    return AuditRecord(**{**_fields(unhashed), "hash": unhashed.compute_hash()})


def _fields(r: AuditRecord) -> dict[str, Any]:
    return {name: getattr(r, name) for name in AuditRecord.__slots__}


# ---------------------------------------------------------------------------------------------
# Keys and checkpoints


class AuditKeyError(Exception):
    """The audit key file or a public key text is unusable."""


class AuditKey:
    """The gateway's Ed25519 audit key (PKCS#8 PEM, unencrypted, mode 0600)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> AuditKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> AuditKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise AuditKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditKeyError(f"{path}: not an Ed25519 key")
        return cls(key)

    def save(self, key_path: Path, pub_path: Path) -> None:
        """The private key created 0600 (never readable by others, even briefly)."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(key_path, 0o600)
        pub_path.write_bytes(public_pem(self.public_key))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    @property
    def public_hex(self) -> str:
        return public_hex(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key as 64 hex digits, base64 of the 32 raw bytes, or PEM (``audit.pub``)."""
    text = text.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise AuditKeyError("the PEM public key is not Ed25519")
            return key
        raw = (
            bytes.fromhex(text.removeprefix("0x"))
            if re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text)
            else base64.b64decode(text, validate=True)
        )
        if len(raw) != 32:
            raise AuditKeyError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"not an Ed25519 public key (hex, base64 or PEM): {exc}") from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "my chain's record ``seq`` has hash ``head_hash``"."""

    gateway: str
    seq: int
    head_hash: str
    time: str
    signature: str = ""
    """Ed25519 over ``CHECKPOINT_DOMAIN + canonical_json(body())``, hex."""

    def body(self) -> dict[str, Any]:
        return {
            "type": CHECKPOINT_TYPE,
            "v": RECORD_VERSION,
            "gateway": self.gateway,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "time": self.time,
        }

    def message(self) -> bytes:
        return CHECKPOINT_DOMAIN + canonical_json(self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def verify(self, key: Ed25519PublicKey) -> bool:
        return _verify_sig(key, self.signature, self.message())


@dataclass(frozen=True, slots=True)
class ExportEnd:
    """The export's last line: the head it was exported at, signed, so that records cut off
    the end (after the last checkpoint) are detected."""

    gateway: str
    from_seq: int
    seq: int
    head_hash: str
    records: int
    checkpoints: int
    """How many checkpoint lines the export holds: a removed one is detected."""
    time: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "type": EXPORT_END_TYPE,
            "v": RECORD_VERSION,
            "gateway": self.gateway,
            "from_seq": self.from_seq,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "time": self.time,
        }

    def message(self) -> bytes:
        return EXPORT_END_DOMAIN + canonical_json(self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def verify(self, key: Ed25519PublicKey) -> bool:
        return _verify_sig(key, self.signature, self.message())


def _verify_sig(key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        key.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_checkpoint(
    key: AuditKey, *, gateway: str, seq: int, head_hash: str, at: float
) -> Checkpoint:
    cp = Checkpoint(gateway, seq, head_hash, format_time(at))
    return Checkpoint(cp.gateway, cp.seq, cp.head_hash, cp.time, key.sign(cp.message()).hex())


def sign_export_end(
    key: AuditKey,
    *,
    gateway: str,
    from_seq: int,
    head: AuditRecord | None,
    records: int,
    checkpoints: int,
    at: float,
) -> ExportEnd:
    end = ExportEnd(
        gateway,
        from_seq,
        head.seq if head is not None else from_seq - 1,
        head.hash if head is not None else GENESIS_HASH,
        records,
        checkpoints,
        format_time(at),
    )
    return ExportEnd(**{**_end_fields(end), "signature": key.sign(end.message()).hex()})


def _end_fields(e: ExportEnd) -> dict[str, Any]:
    return {name: getattr(e, name) for name in ExportEnd.__slots__}


# ---------------------------------------------------------------------------------------------
# The log: policy, SQLite tables written inside the store's transaction, export


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """A checkpoint after ``every_records`` records, or once ``every_seconds`` have passed
    since the last one and records were added (a head that did not move is not re-signed)."""

    every_records: int = DEFAULT_CHECKPOINT_RECORDS
    every_seconds: float = DEFAULT_CHECKPOINT_SECONDS

    def __post_init__(self) -> None:
        if self.every_records < 1 or self.every_seconds <= 0:
            raise ValueError("checkpoint policy: every_records >= 1 and every_seconds > 0")

    def due(self, *, head_seq: int, last_seq: int, last_at: float | None, now: float) -> bool:
        if head_seq <= last_seq:
            return False
        if head_seq - last_seq >= self.every_records:
            return True
        return last_at is not None and now - last_at >= self.every_seconds


_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS audit_records (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, "
    "record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (seq INTEGER PRIMARY KEY, at REAL NOT NULL, "
    "checkpoint TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_evidence (digest TEXT PRIMARY KEY, bundle TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_trust (digest TEXT PRIMARY KEY, trust TEXT NOT NULL)",
    # Append-only by construction: nothing in this module updates or deletes, and these
    # triggers refuse it from anyone else's SQL too.
    "CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records "
    "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records "
    "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END",
    # INSERT OR REPLACE deletes the old row without firing a DELETE trigger (recursive_triggers
    # is off): an insert must extend the chain, never land at or below its head.
    "CREATE TRIGGER IF NOT EXISTS audit_records_append_at_head BEFORE INSERT ON audit_records "
    "WHEN NEW.seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit_records) "
    "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END",
    *(
        stmt
        for table in ("audit_checkpoints", "audit_evidence", "audit_trust")
        for stmt in (
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
        )
    ),
    "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_append_at_head BEFORE INSERT ON "
    "audit_checkpoints WHEN NEW.seq <= (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints) "
    "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    # A digest names its content: a second insert of one is skipped (INSERT OR IGNORE's
    # case), never allowed to replace the first (INSERT OR REPLACE).
    "CREATE TRIGGER IF NOT EXISTS audit_evidence_keep_first BEFORE INSERT ON audit_evidence "
    "WHEN EXISTS (SELECT 1 FROM audit_evidence WHERE digest = NEW.digest) "
    "BEGIN SELECT RAISE(IGNORE); END",
    "CREATE TRIGGER IF NOT EXISTS audit_trust_keep_first BEFORE INSERT ON audit_trust "
    "WHEN EXISTS (SELECT 1 FROM audit_trust WHERE digest = NEW.digest) "
    "BEGIN SELECT RAISE(IGNORE); END",
)


class AuditLog:
    """Appends records in the caller's SQLite transaction; signs checkpoints by policy.

    The head is read from the database on every append, never cached: after a rollback or a
    SIGKILL the next record links to what was committed, so the chain has no gap or fork.
    """

    def __init__(
        self,
        gateway: str,
        key: AuditKey,
        policy: CheckpointPolicy | None = None,
        *,
        state_path: Path | None = None,
    ) -> None:
        """``state_path``: the file keeping the last checkpoint signed here, outside the
        database (``relay.audit_guard.ANCHOR_FILE`` in the data folder; None: memory only)."""
        self.gateway = gateway
        self.key = key
        self.policy = policy or CheckpointPolicy()
        self.guard = _guard.ChainGuard(key, gateway, state_path)
        self._schema_on: sqlite3.Connection | None = None
        """The connection last seen with the schema in place: appends on it skip the ~16
        ``CREATE ... IF NOT EXISTS`` statements (about 140 µs per append, measured)."""

    @staticmethod
    def ensure_schema(conn: sqlite3.Connection) -> None:
        for stmt in _SCHEMA:
            conn.execute(stmt)

    def _schema(self, conn: sqlite3.Connection) -> None:
        if self._schema_on is not conn:
            self.ensure_schema(conn)
            self._schema_on = conn

    @staticmethod
    def head(conn: sqlite3.Connection) -> ChainHead | None:
        row = conn.execute(
            "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return ChainHead(int(row[0]), str(row[1])) if row is not None else None

    def hook(self, conn: Any, t: Transition, entry: HistoryEntry) -> None:
        """:data:`relay.store.AuditHook`: the record of ``t``, in the store's transaction.

        ``t.audit`` (a :class:`Reliance`), when the transition carries one, names the trust
        the verification used; the store's wiring adds that field.
        """
        relied = getattr(t, "audit", None)
        bundle = t.evidence[1] if t.evidence is not None else None
        self.append_transition(
            conn, t, entry, relied=relied if isinstance(relied, Reliance) else None, bundle=bundle
        )

    def append_transition(
        self,
        conn: sqlite3.Connection,
        t: Transition,
        entry: HistoryEntry,
        *,
        relied: Reliance | None = None,
        bundle: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        self._schema(conn)
        record = record_from_transition(
            t, entry, gateway=self.gateway, prev=self.head(conn), relied=relied
        )
        return self._append(conn, record, bundle=bundle, relied=relied, at=entry.at)

    def append_rejected(
        self,
        conn: sqlite3.Connection,
        attempt: RejectedAttempt,
        *,
        src_chain: str,
        dst_chain: str,
        state: State,
        bundle: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        self._schema(conn)
        record = record_from_rejected(
            attempt,
            gateway=self.gateway,
            src_chain=src_chain,
            dst_chain=dst_chain,
            state=state,
            prev=self.head(conn),
            evidence=evidence_digest(bundle) if bundle is not None else None,
        )
        return self._append(conn, record, bundle=bundle, relied=None, at=attempt.at)

    def _append(
        self,
        conn: sqlite3.Connection,
        record: AuditRecord,
        *,
        bundle: Mapping[str, Any] | None,
        relied: Reliance | None,
        at: float,
    ) -> AuditRecord:
        conn.execute(
            "INSERT INTO audit_records (seq, hash, record) VALUES (?,?,?)",
            (record.seq, record.hash, record.line()),
        )
        if bundle is not None and record.evidence_digest == evidence_digest(bundle):
            conn.execute(
                "INSERT OR IGNORE INTO audit_evidence (digest, bundle) VALUES (?,?)",
                (record.evidence_digest, json.dumps(bundle, sort_keys=True)),
            )
        if relied is not None and relied.trust is not None:
            conn.execute(
                "INSERT OR IGNORE INTO audit_trust (digest, trust) VALUES (?,?)",
                (relied.trust_digest, json.dumps(relied.trust, sort_keys=True)),
            )
        self._checkpoint_if_due(conn, ChainHead(record.seq, record.hash), at)
        return record

    def checkpoint_if_due(self, conn: sqlite3.Connection, now: float) -> Checkpoint | None:
        """Also for a timer: a checkpoint when the policy says so."""
        self._schema(conn)
        return self._checkpoint_if_due(conn, self.head(conn), now)

    def _checkpoint_if_due(
        self, conn: sqlite3.Connection, head: ChainHead | None, now: float
    ) -> Checkpoint | None:
        last = conn.execute(
            "SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        first_time: str | None = None
        if last is None and head is not None:
            first = conn.execute("SELECT record FROM audit_records ORDER BY seq LIMIT 1").fetchone()
            first_time = json.loads(first[0])["time"]
        last_pair = (int(last[0]), float(last[1])) if last is not None else None
        if head is None or not self.is_due(head, last_pair, first_time, now):
            return None
        self.check_chain(conn, head)
        cp = self.sign_head(head, now)
        line = canonical_json(cp.to_json()).decode()
        conn.execute(
            "INSERT INTO audit_checkpoints (seq, at, checkpoint) VALUES (?,?,?)",
            (cp.seq, now, line),
        )
        self.guard.signed(cp, line)
        return cp

    def check_chain(self, conn: sqlite3.Connection, head: ChainHead) -> None:
        """``relay.audit_guard.ChainGuard.check`` on this database, from the last checkpoint
        signed here (the newest this key signed in the database when none is known)."""
        guard = self.guard
        pending = guard.pending()
        if pending is not None:
            row = conn.execute(
                "SELECT checkpoint FROM audit_checkpoints WHERE seq=?", (pending.seq,)
            ).fetchone()
            guard.settle(str(row[0]) if row is not None else None)
        anchor = guard.known()
        if anchor is None:
            anchor = guard.from_checkpoints(
                str(r[0])
                for r in conn.execute(
                    "SELECT checkpoint FROM audit_checkpoints WHERE seq <= ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (head.seq, _guard.FALLBACK_CHECKPOINTS),
                )
            )
        rows = conn.execute(
            "SELECT seq, hash, record FROM audit_records WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (anchor.seq if anchor is not None else 1, head.seq),
        )
        guard.check(anchor, ((int(r[0]), str(r[1]), str(r[2])) for r in rows), head)

    def is_due(
        self,
        head: ChainHead | None,
        last: tuple[int, float] | None,
        first_time: str | None,
        now: float,
    ) -> bool:
        """The policy's decision, for any database. ``last`` is the newest checkpoint's
        (seq, at); before the first one the clock runs from the first record's ``first_time``."""
        last_seq, last_at = last if last is not None else (0, None)
        if last_at is None and first_time is not None:
            last_at = _parse_time(first_time)
        return head is not None and self.policy.due(
            head_seq=head.seq, last_seq=last_seq, last_at=last_at, now=now
        )

    def sign_head(self, head: ChainHead, now: float) -> Checkpoint:
        """Sign ``head``: only after the chain up to it was checked (:meth:`check_chain`)."""
        return sign_checkpoint(
            self.key, gateway=self.gateway, seq=head.seq, head_hash=head.hash, at=now
        )

    def export_lines(
        self, conn: sqlite3.Connection, *, now: float, from_seq: int = 1
    ) -> Iterator[str]:
        """The export (``docs/audit.md``) from ``from_seq``, as JSON Lines without newlines.

        Call it in one read transaction (one snapshot). The records are checked from the last
        checkpoint signed here (``relay.audit_guard``) as they stream: the export-end is not
        signed over an altered chain (:class:`relay.audit_guard.AuditChainTampered`)."""
        # Known before the snapshot's first read, so committed before it: the snapshot must
        # hold that checkpoint's record (a chain that ends before it was truncated).
        anchor = self.guard.known()
        self._schema(conn)
        head = self.head(conn)
        if anchor is None and head is not None:
            anchor = self.guard.from_checkpoints(
                str(r[0])
                for r in conn.execute(
                    "SELECT checkpoint FROM audit_checkpoints WHERE seq <= ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (head.seq, _guard.FALLBACK_CHECKPOINTS),
                )
            )
        start = min(from_seq, anchor.seq) if anchor is not None else from_seq

        def records() -> Iterator[AuditRecord]:
            for (text,) in conn.execute(
                "SELECT record FROM audit_records WHERE seq >= ? ORDER BY seq", (start,)
            ):
                yield record_from_json(json.loads(text))

        def checkpoints() -> Iterator[Checkpoint]:
            for (text,) in conn.execute(
                "SELECT checkpoint FROM audit_checkpoints WHERE seq >= ? ORDER BY seq",
                (from_seq,),
            ):
                d = json.loads(text)
                yield Checkpoint(**{k: v for k, v in d.items() if k not in {"type", "v"}})

        def bundle(digest: str) -> Mapping[str, Any] | None:
            row = conn.execute(
                "SELECT bundle FROM audit_evidence WHERE digest=?", (digest,)
            ).fetchone()
            return json.loads(row[0]) if row is not None else None

        def trust(digest: str) -> Mapping[str, Any] | None:
            row = conn.execute("SELECT trust FROM audit_trust WHERE digest=?", (digest,)).fetchone()
            return json.loads(row[0]) if row is not None else None

        yield from write_export(
            records(),
            checkpoints(),
            key=self.key,
            gateway=self.gateway,
            bundles=bundle,
            trusts=trust,
            now=now,
            from_seq=from_seq,
            anchor=anchor,
            check=True,
        )


def _parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# ---------------------------------------------------------------------------------------------
# Export


def export_header(gateway: str, key: Ed25519PublicKey, *, from_seq: int, at: float) -> str:
    return canonical_json(
        {
            "type": "header",
            "format": EXPORT_FORMAT,
            "gateway": gateway,
            "public_key": public_hex(key),
            "from_seq": from_seq,
            "exported_at": format_time(at),
        }
    ).decode()


def write_export(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[Checkpoint],
    *,
    key: AuditKey,
    gateway: str,
    bundles: Any,
    trusts: Any,
    now: float,
    from_seq: int = 1,
    anchor: ChainHead | None = None,
    check: bool = False,
) -> Iterator[str]:
    """Header; then, in seq order, each record preceded by the evidence and trust lines it
    references the first time, and followed by the checkpoint at its seq; then the signed
    export-end line. ``bundles``/``trusts`` map a digest to the object (or None).

    ``check``: every record must hash and link, from ``anchor`` (the last checkpoint signed
    here: the record at its seq must have its hash; records before ``from_seq`` are read for
    this and not written) or from seq 1; else :class:`relay.audit_guard.AuditChainTampered`
    is raised and no export-end is signed."""
    yield export_header(gateway, key.public_key, from_seq=from_seq, at=now)
    cps = {cp.seq: cp for cp in checkpoints}
    seen: set[tuple[str, str]] = set()
    head: AuditRecord | None = None
    count = signed = 0
    link = _ExportLink(anchor) if check else None
    for r in records:
        if link is not None:
            link.step(r)
        if r.seq < from_seq:
            continue
        for digest, kind, lookup in (
            (r.evidence_digest, "evidence", bundles),
            (r.trust_digest, "trust", trusts),
        ):
            if digest is None or (kind, digest) in seen:
                continue
            seen.add((kind, digest))
            obj = lookup(digest)
            if obj is not None:
                field_name = "bundle" if kind == "evidence" else "trust"
                yield canonical_json({"type": kind, "digest": digest, field_name: obj}).decode()
        yield r.line()
        head, count = r, count + 1
        if r.seq in cps:
            yield canonical_json(cps[r.seq].to_json()).decode()
            signed += 1
    if link is not None:
        link.end()
    end = sign_export_end(
        key,
        gateway=gateway,
        from_seq=from_seq,
        head=head,
        records=count,
        checkpoints=signed,
        at=now,
    )
    yield canonical_json(end.to_json()).decode()


class _ExportLink:
    """The export's running chain check (``write_export``'s ``check``)."""

    def __init__(self, anchor: ChainHead | None) -> None:
        self.anchor = anchor
        self.prev: AuditRecord | None = None

    def step(self, r: AuditRecord) -> None:
        problem = ""
        if r.compute_hash() != r.hash:
            problem = "the record does not hash to its stated hash"
        elif self.prev is not None and (
            r.seq != self.prev.seq + 1 or r.prev_hash != self.prev.hash
        ):
            problem = f"does not link to seq {self.prev.seq}"
        elif self.prev is None and r.seq == 1 and r.prev_hash != GENESIS_HASH:
            problem = "seq 1 does not start the chain"
        elif self.anchor is not None and r.seq == self.anchor.seq and r.hash != self.anchor.hash:
            problem = "the record differs from the signed one"
        elif self.prev is None and self.anchor is not None and r.seq > self.anchor.seq:
            problem = f"seq {self.anchor.seq}, signed here, is missing"
        if problem:
            raise _guard.tampered(r.seq, problem)
        self.prev = r

    def end(self) -> None:
        if self.anchor is not None and (self.prev is None or self.prev.seq < self.anchor.seq):
            raise _guard.tampered(
                self.anchor.seq, "records signed here are gone (the chain ends before them)"
            )


# ---------------------------------------------------------------------------------------------
# Offline verification


class ExportFormatError(Exception):
    """The input is not an audit export (unreadable, not JSON Lines, no header)."""


class Problem(StrEnum):
    KEY = "key"
    FORMAT = "format"
    SEQ = "seq"
    HASH = "hash"
    PREV_HASH = "prev_hash"
    GATEWAY = "gateway"
    CHECKPOINT_SIGNATURE = "checkpoint_signature"
    CHECKPOINT_HEAD = "checkpoint_head"
    CHECKPOINT_MISSING = "checkpoint_missing"
    EVIDENCE_MISSING = "evidence_missing"
    EVIDENCE_DIGEST = "evidence_digest"
    EVIDENCE_INVALID = "evidence_invalid"
    TRUST_MISSING = "trust_missing"
    TRUST_DIGEST = "trust_digest"
    TRUNCATED = "truncated"
    EXPORT_END_SIGNATURE = "export_end_signature"
    EVIDENCE_UNBOUND = "evidence_unbound"
    """The bundle verifies but proves another fact than its record's (id, hop, height, tx)."""
    CHECKPOINT_ORDER = "checkpoint_order"
    """Checkpoint lines repeat a seq or go back: each must be after the previous one."""
    EVIDENCE_DUPLICATE = "evidence_duplicate"
    """Two evidence (or trust) lines claim one digest: which one a reader uses is ambiguous."""
    EVIDENCE_UNREFERENCED = "evidence_unreferenced"
    """An evidence or trust line no record references: unchecked content, refused."""
    HEADER = "header"
    """The unsigned header disagrees with the signed export-end (gateway, time, from_seq)."""
    HISTORY_REWRITTEN = "history_rewritten"
    """A checkpoint the auditor already holds (``--known-checkpoints``) has another hash."""


@dataclass(slots=True)
class VerifyReport:
    gateway: str = ""
    records: int = 0
    checkpoints: int = 0
    bundles_verified: int = 0
    """Distinct (bundle, trust) pairs re-verified with ``verifier.evidence.verify_bundle``."""
    bundles_digest_only: int = 0
    """Bundles referenced with no trust (observed, not yet verified): digest checked only."""
    first_seq: int | None = None
    last_seq: int | None = None
    first_time: str | None = None
    last_time: str | None = None
    last_checkpoint_seq: int | None = None
    unsigned_tail: int = 0
    """Records after the last periodic checkpoint (covered only by the export-end signature)."""
    bad_seq: int | None = None
    problem: Problem | None = None
    detail: str = ""
    kinds: dict[str, int] = field(default_factory=dict)
    exported_at: str | None = None
    """The export-end's signed time (the header's ``exported_at`` must equal it)."""
    trust_roots: list[dict[str, Any]] = field(default_factory=list)
    """The distinct trust roots bundles were re-verified under (``relay.audit_check``)."""
    known_checked: int = 0
    """Checkpoints the auditor already held that this export's records agree with."""
    known_beyond: int = 0
    """Checkpoints the auditor already held past this export's last record (not compared)."""

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Bad(Exception):
    def __init__(self, seq: int | None, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.problem, self.detail = seq, problem, detail


def verify_export(
    lines: Iterable[str],
    public_key: Ed25519PublicKey,
    *,
    known: Iterable[Checkpoint] = (),
) -> VerifyReport:
    """Check an export offline; the report names the first bad seq and what is wrong.

    ``known``: signed heads the auditor already holds (:func:`load_known_checkpoints`, from an
    earlier export): the record at each one's seq, if this export has it, must have its hash.

    Raises :class:`ExportFormatError` when the first line is not an export header.
    """
    parsed: list[tuple[int, dict[str, Any]]] = []
    report = VerifyReport()
    it = iter(lines)
    header = _header(it)
    report.gateway = str(header["gateway"])
    try:
        if header["public_key"] != public_hex(public_key):
            raise _Bad(
                None,
                Problem.KEY,
                f"the export names public key {header['public_key']}, not the one given "
                f"({public_hex(public_key)})",
            )
        for n, text in enumerate(it, start=2):
            if not text.strip():
                continue
            try:
                obj = parse_line(text)
            except LineError as exc:
                # The gateway writes no such line (bundles are bounded on intake): an edit.
                raise _Bad(
                    None, Problem.FORMAT, f"line {n} is not acceptable JSON: {exc}"
                ) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                raise _Bad(None, Problem.FORMAT, f"line {n} has no type")
            parsed.append((n, obj))
        _Walk(report, public_key, header, known).run(parsed)
    except _Bad as bad:
        report.bad_seq, report.problem, report.detail = bad.seq, bad.problem, bad.detail
    return report


def load_known_checkpoints(lines: Iterable[str], key: Ed25519PublicKey) -> list[Checkpoint]:
    """The signed heads in an earlier export (its checkpoint lines and its export-end) or in a
    JSON Lines file of checkpoint lines; other lines are skipped. Each must be signed by
    ``key``. Raises :class:`ExportFormatError` for a line that is not JSON, a head not signed
    by ``key``, or two signed heads of one seq that differ (the key signed two histories)."""
    heads: dict[int, Checkpoint] = {}
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = parse_line(text)
        except LineError as exc:
            raise ExportFormatError(f"line {n} is not acceptable JSON: {exc}") from None
        kind = obj.get("type") if isinstance(obj, dict) else None
        try:
            if kind == CHECKPOINT_TYPE:
                head: Checkpoint | ExportEnd = _checkpoint(obj, n, 0)
            elif kind == EXPORT_END_TYPE:
                head = _export_end(obj, n, 0)
            else:
                continue
        except _Bad as bad:
            raise ExportFormatError(bad.detail) from None
        if not head.verify(key):
            raise ExportFormatError(
                f"line {n}: the {kind} at seq {head.seq} is not signed by --key"
            )
        if head.seq < 1:  # the export-end of an export without records
            continue
        cp = Checkpoint(head.gateway, head.seq, head.head_hash, head.time, head.signature)
        prior = heads.setdefault(cp.seq, cp)
        if prior.head_hash != cp.head_hash:
            raise ExportFormatError(
                f"line {n}: two signed heads for seq {cp.seq} differ ({prior.head_hash}, "
                f"{cp.head_hash}): the key signed two histories"
            )
    return [heads[seq] for seq in sorted(heads)]


def _header(it: Iterator[str]) -> dict[str, Any]:
    try:
        first = next(it)
    except StopIteration:
        raise ExportFormatError("the file is empty") from None
    try:
        header = parse_line(first)
    except LineError as exc:
        raise ExportFormatError(f"the first line is not acceptable JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ExportFormatError("the first line is not an audit export header")
    if header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError(
            f"format {header.get('format')!r} is not {EXPORT_FORMAT!r} (this tool's version)"
        )
    fs = header.get("from_seq")
    if (
        not isinstance(header.get("gateway"), str)
        or not isinstance(header.get("public_key"), str)
        or not isinstance(header.get("exported_at"), str)
        or isinstance(fs, bool)
        or not isinstance(fs, int)
        or fs < 1
    ):
        raise ExportFormatError("the header lacks gateway, public_key, from_seq or exported_at")
    return header


def _index(
    parsed: list[tuple[int, dict[str, Any]]],
) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
    """Evidence and trust lines by (type, the digest they claim), with their line numbers
    (checked where a record uses them). One line per digest: a second is ambiguous."""
    index: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for n, obj in parsed:
        if obj["type"] in {"evidence", "trust"}:
            field_name = "bundle" if obj["type"] == "evidence" else "trust"
            digest, content = obj.get("digest"), obj.get(field_name)
            if not isinstance(digest, str) or not isinstance(content, dict):
                raise _Bad(
                    None, Problem.FORMAT, f"line {n}: {obj['type']} without digest/{field_name}"
                )
            if set(obj) != {"type", "digest", field_name}:
                raise _Bad(None, Problem.FORMAT, f"line {n}: {obj['type']} fields differ")
            first = index.setdefault((obj["type"], digest), (n, content))
            if first[0] != n:
                raise _Bad(
                    None,
                    Problem.EVIDENCE_DUPLICATE,
                    f"lines {first[0]} and {n} are both {obj['type']} {digest}: one line per "
                    "digest, or readers may use different ones",
                )
    return index


class _Walk:
    """One pass over the parsed lines in file order, stopping at the first problem."""

    def __init__(
        self,
        report: VerifyReport,
        key: Ed25519PublicKey,
        header: Mapping[str, Any],
        known: Iterable[Checkpoint],
    ) -> None:
        self.report, self.key, self.header = report, key, header
        self.from_seq: int = header["from_seq"]
        self.known = {cp.seq: cp for cp in known}
        self.prev: AuditRecord | None = None
        self.expected = self.from_seq
        self.last_cp: Checkpoint | None = None
        self.end: ExportEnd | None = None
        self.lines: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.used: set[tuple[str, str]] = set()
        self.verified: dict[tuple[str, str], VerifiedEvidence] = {}
        self.digest_only: set[str] = set()
        self.roots: dict[tuple[str, ...], dict[str, Any]] = {}
        self.blocks: dict[tuple[str, ...], set[tuple[int, str]]] = {}

    def run(self, parsed: list[tuple[int, dict[str, Any]]]) -> None:
        for cp in self.known.values():
            if cp.gateway != self.report.gateway:
                raise _Bad(
                    None,
                    Problem.GATEWAY,
                    f"the known checkpoint at seq {cp.seq} is of gateway {cp.gateway!r}, the "
                    f"export of {self.report.gateway!r}",
                )
        self.lines = _index(parsed)
        for n, obj in parsed:
            if self.end is not None:
                raise _Bad(None, Problem.FORMAT, f"line {n} follows the export-end line")
            kind = obj["type"]
            if kind == RECORD_TYPE:
                self.record(n, obj)
            elif kind == CHECKPOINT_TYPE:
                self.checkpoint(n, obj)
            elif kind == EXPORT_END_TYPE:
                self.end = _export_end(obj, n, self.expected)
            elif kind not in {"evidence", "trust"}:
                raise _Bad(self.expected, Problem.FORMAT, f"line {n}: unknown type {kind!r}")
        self.finish()

    def record(self, n: int, obj: Mapping[str, Any]) -> None:
        report = self.report
        try:
            r = record_from_json(obj)
        except RecordFormatError as exc:
            raise _Bad(self.expected, Problem.FORMAT, f"line {n}: {exc}") from None
        _check_record(r, self.prev, self.expected, report.gateway, self.from_seq)
        held = self.known.get(r.seq)
        if held is not None:
            if held.head_hash != r.hash:
                raise _Bad(
                    r.seq,
                    Problem.HISTORY_REWRITTEN,
                    f"history rewritten since the checkpoint at seq {r.seq} you already hold: "
                    f"it signed hash {held.head_hash} at {held.time}, this export has {r.hash}",
                )
            report.known_checked += 1
        _check_evidence(r, self)
        self.prev, self.expected = r, r.seq + 1
        report.records += 1
        report.kinds[str(r.kind)] = report.kinds.get(str(r.kind), 0) + 1
        if report.first_seq is None:
            report.first_seq, report.first_time = r.seq, r.time
        report.last_seq, report.last_time = r.seq, r.time

    def checkpoint(self, n: int, obj: Mapping[str, Any]) -> None:
        cp = _checkpoint(obj, n, self.expected)
        _check_signed(cp, self.prev, self.key, gateway=self.report.gateway, last=self.last_cp)
        if self.last_cp is not None and cp.seq <= self.last_cp.seq:
            raise _Bad(
                cp.seq,
                Problem.CHECKPOINT_ORDER,
                f"line {n}: a second checkpoint at seq {cp.seq} (after the one at seq "
                f"{self.last_cp.seq}): a checkpoint line was repeated, perhaps to hide a "
                "removed one",
            )
        self.last_cp = cp
        self.report.checkpoints += 1

    def add_root(self, trust: Mapping[str, Any], r: AuditRecord, ev: VerifiedEvidence) -> None:
        key, root, block = trust_root(trust, r.trust, ev)
        self.roots.setdefault(key, root)
        if block is not None:
            self.blocks.setdefault(key, set()).add(block)

    def uncovered(self, head_seq: int) -> int | None:
        """The first record no checkpoint covers (last checkpoint + 1), if the file has it."""
        first = self.last_cp.seq + 1 if self.last_cp is not None else self.from_seq
        return first if first <= head_seq else None

    def finish(self) -> None:
        report, end = self.report, self.end
        head_seq = self.prev.seq if self.prev is not None else self.from_seq - 1
        head_hash = self.prev.hash if self.prev is not None else GENESIS_HASH
        tail = self.uncovered(head_seq)
        if end is None:
            raise _Bad(
                tail if tail is not None else head_seq + 1,
                Problem.TRUNCATED,
                f"no export-end line: the export was cut after seq {head_seq}; records after "
                "the last checkpoint are covered by no signature",
            )
        if not end.verify(self.key):
            raise _Bad(tail, Problem.EXPORT_END_SIGNATURE, "the export-end signature is not valid")
        self.check_header(end)
        if end.seq != head_seq or end.head_hash != head_hash or end.records != report.records:
            # An edit after the last checkpoint (re-hashed) and a cut-off end look alike: the
            # first record no signature but this one covers is the first that may be bad.
            at = tail if tail is not None else (head_seq + 1 if end.seq > head_seq else None)
            raise _Bad(
                at,
                Problem.TRUNCATED,
                f"exported at head seq {end.seq} ({end.head_hash}) with {end.records} records, "
                f"the file ends at seq {head_seq} ({head_hash}) with {report.records}: records "
                f"after the last checkpoint were changed, or records were cut off or added",
            )
        if end.checkpoints != report.checkpoints:
            raise _Bad(
                None,
                Problem.CHECKPOINT_MISSING,
                f"the export-end states {end.checkpoints} checkpoints, the file has "
                f"{report.checkpoints}: a checkpoint line was removed or added",
            )
        for (kind, digest), (n, _) in sorted(self.lines.items(), key=lambda i: i[1][0]):
            if (kind, digest) not in self.used:
                raise _Bad(
                    None,
                    Problem.EVIDENCE_UNREFERENCED,
                    f"line {n}: {kind} {digest} is referenced by no record (content nobody "
                    "signed for, which other tools might read as evidence)",
                )
        report.exported_at = end.time
        report.bundles_verified = len(self.verified)
        report.bundles_digest_only = len(self.digest_only - {d for d, _ in self.verified})
        report.last_checkpoint_seq = self.last_cp.seq if self.last_cp is not None else None
        report.unsigned_tail = head_seq - (
            self.last_cp.seq if self.last_cp is not None else self.from_seq - 1
        )
        report.known_beyond = sum(1 for seq in self.known if seq > head_seq)
        report.trust_roots = [
            {
                **root,
                **(
                    {"blocks": [{"height": h, "block_hash": b} for h, b in sorted(self.blocks[k])]}
                    if k in self.blocks
                    else {}
                ),
            }
            for k, root in sorted(self.roots.items())
        ]

    def check_header(self, end: ExportEnd) -> None:
        """The header is unsigned: it must say what the signed export-end says."""
        h = self.header
        for name, stated, signed in (
            ("gateway", h["gateway"], end.gateway),
            ("from_seq", h["from_seq"], end.from_seq),
            ("exported_at", h["exported_at"], end.time),
        ):
            if stated != signed:
                raise _Bad(
                    None,
                    Problem.HEADER,
                    f"the header states {name} {stated!r}, the signed export-end {signed!r}: "
                    "the header was edited (an old export re-dated, renamed, or records "
                    "removed from its start)",
                )


def _check_record(
    r: AuditRecord, prev: AuditRecord | None, expected: int, gateway: str, from_seq: int
) -> None:
    if r.seq != expected:
        what = "a record is missing" if r.seq > expected else "records are reordered or inserted"
        raise _Bad(expected, Problem.SEQ, f"seq {r.seq} found where {expected} was due: {what}")
    computed = r.compute_hash()
    if computed != r.hash:
        raise _Bad(
            r.seq, Problem.HASH, f"the record's content hashes to {computed}, it states {r.hash}"
        )
    if r.gateway != gateway:
        raise _Bad(
            r.seq, Problem.GATEWAY, f"record of gateway {r.gateway!r}, export of {gateway!r}"
        )
    if prev is None and r.seq == 1 and r.prev_hash != GENESIS_HASH:
        raise _Bad(r.seq, Problem.PREV_HASH, "the first record does not link to the genesis hash")
    if prev is not None and r.prev_hash != prev.hash:
        # The previous record hashes consistently but is not the one this record followed:
        # it was replaced (and re-hashed), so it is the first bad one.
        raise _Bad(
            prev.seq,
            Problem.PREV_HASH,
            f"seq {r.seq} links to {r.prev_hash}, but seq {prev.seq} hashes to {prev.hash}: "
            f"seq {prev.seq} was replaced",
        )
    del from_seq  # an export from a later seq takes its first link as given


def _check_evidence(r: AuditRecord, w: _Walk) -> None:
    """The record's bundle and trust are in the export and hash to their digests; a bundle
    relied on with a trust is re-verified under it, and must prove this record's fact."""
    if r.evidence_digest is None:
        return
    w.used.add(("evidence", r.evidence_digest))
    found = w.lines.get(("evidence", r.evidence_digest))
    if found is None:
        raise _Bad(
            r.seq, Problem.EVIDENCE_MISSING, f"bundle {r.evidence_digest} is not in the export"
        )
    bundle = found[1]
    actual = evidence_digest(bundle)
    if actual != r.evidence_digest:
        raise _Bad(
            r.seq,
            Problem.EVIDENCE_DIGEST,
            f"the bundle exported as {r.evidence_digest} hashes to {actual}: swapped or edited",
        )
    if r.trust_digest is None:
        w.digest_only.add(r.evidence_digest)
        return
    w.used.add(("trust", r.trust_digest))
    pair = (r.evidence_digest, r.trust_digest)
    evidence = w.verified.get(pair)
    if evidence is None:
        evidence = _reverify(r, bundle, w.lines.get(("trust", r.trust_digest)))
        w.verified[pair] = evidence
        trust = w.lines[("trust", r.trust_digest)][1]
        w.add_root(trust, r, evidence)
    why = unbound(Claim(r.message_id, r.hop, r.height, r.tx_hash, r.trust), bundle, evidence)
    if why is not None:
        raise _Bad(
            r.seq,
            Problem.EVIDENCE_UNBOUND,
            f"bundle {r.evidence_digest} verifies but does not prove this record: {why}",
        )


def _reverify(
    r: AuditRecord, bundle: Mapping[str, Any], found: tuple[int, dict[str, Any]] | None
) -> VerifiedEvidence:
    """``verify_bundle`` on the bundle under the recorded trust object."""
    if found is None:
        raise _Bad(r.seq, Problem.TRUST_MISSING, f"trust {r.trust_digest} is not in the export")
    trust = found[1]
    actual = evidence_digest(trust)
    if actual != r.trust_digest:
        raise _Bad(
            r.seq,
            Problem.TRUST_DIGEST,
            f"the trust exported as {r.trust_digest} hashes to {actual}: swapped or edited",
        )
    try:
        return verify_bundle({**bundle, "trust": trust})
    except VerificationError as exc:
        raise _Bad(
            r.seq,
            Problem.EVIDENCE_INVALID,
            f"bundle {r.evidence_digest} does not verify under the recorded trust: "
            f"[{getattr(exc, 'check', '')}] {exc}",
        ) from None


def _checkpoint(obj: Mapping[str, Any], n: int, expected: int) -> Checkpoint:
    try:
        cp = Checkpoint(
            gateway=str(obj["gateway"]),
            seq=int(obj["seq"]),
            head_hash=str(obj["head_hash"]),
            time=str(obj["time"]),
            signature=str(obj["signature"]),
        )
    except (KeyError, TypeError, ValueError):
        raise _Bad(expected, Problem.FORMAT, f"line {n}: not a checkpoint") from None
    if canonical_json(cp.to_json()) != canonical_json(dict(obj)):
        raise _Bad(expected, Problem.FORMAT, f"line {n}: checkpoint fields differ from version 1")
    return cp


def _export_end(obj: Mapping[str, Any], n: int, expected: int) -> ExportEnd:
    try:
        end = ExportEnd(
            gateway=str(obj["gateway"]),
            from_seq=int(obj["from_seq"]),
            seq=int(obj["seq"]),
            head_hash=str(obj["head_hash"]),
            records=int(obj["records"]),
            checkpoints=int(obj["checkpoints"]),
            time=str(obj["time"]),
            signature=str(obj["signature"]),
        )
    except (KeyError, TypeError, ValueError):
        raise _Bad(expected, Problem.FORMAT, f"line {n}: not an export-end line") from None
    if canonical_json(end.to_json()) != canonical_json(dict(obj)):
        raise _Bad(expected, Problem.FORMAT, f"line {n}: export-end fields differ from version 1")
    return end


def _check_signed(
    cp: Checkpoint,
    prev: AuditRecord | None,
    key: Ed25519PublicKey,
    *,
    gateway: str,
    last: Checkpoint | None,
) -> None:
    after = last.seq if last is not None else 0
    if not cp.verify(key):
        raise _Bad(
            cp.seq,
            Problem.CHECKPOINT_SIGNATURE,
            f"the checkpoint at seq {cp.seq} has no valid signature",
        )
    if cp.gateway != gateway:
        raise _Bad(cp.seq, Problem.GATEWAY, f"checkpoint of gateway {cp.gateway!r}")
    if prev is None or cp.seq != prev.seq or cp.head_hash != prev.hash:
        at = f"seq {prev.seq} ({prev.hash})" if prev is not None else "no record"
        raise _Bad(
            after + 1,
            Problem.CHECKPOINT_HEAD,
            f"the signed checkpoint states seq {cp.seq} has hash {cp.head_hash}; the chain "
            f"has {at}: a record from seq {after + 1} to {cp.seq} was altered, inserted or "
            f"removed and the chain re-hashed",
        )
