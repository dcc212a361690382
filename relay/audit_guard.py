"""The writer's guard against a rewritten audit chain: never sign what was not checked.

A database writer (not the audit key) could rewrite records and re-hash the chain after them;
a checkpoint or export-end the gateway signed next would then vouch for the forgery. So before
signing, :meth:`ChainGuard.check` walks the chain from the newest checkpoint this process or
this data folder signed (its ``(seq, hash)`` is kept in memory and in the file
:data:`ANCHOR_FILE`, outside the database) to the head: the record at that seq must still have
that hash, and every record after it must hash and link. Anything else raises
:class:`AuditChainTampered` (logged ``audit_chain_tampered``) and nothing is signed. A check
reads only the records since that checkpoint: about ``checkpoint_every``.

Limits (``docs/audit.md``): with no file and no memory (a new data folder, a PostgreSQL
replica that never signed), the anchor is the newest checkpoint in the database that this key
signed, so a writer who also deleted the checkpoints is not detected there; the file is per
replica (each PostgreSQL replica keeps its own); after restoring the database from a backup,
delete the file (the guard would otherwise stop the relay, as for a truncation).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import structlog

import relay.audit as _audit  # a cycle: each module reads the other's names at call time
from verifier.encoding import load_json
from verifier.errors import GatewayError, MalformedEvidence

log = structlog.get_logger(__name__)

ANCHOR_FILE: Final = "audit.last-checkpoint"
"""In the gateway's data folder, next to the store: the last checkpoint this folder signed."""
MAX_LINE_BYTES: Final = 1024 * 1024
"""A record or checkpoint line (a record with a 256-sealer trust set is about 40 KB)."""
MAX_LINE_DEPTH: Final = 16
"""Nesting of a record or checkpoint line (a record with its trust nests 4 deep)."""
FALLBACK_CHECKPOINTS: Final = 16
"""Checkpoints read (newest first) to find one this key signed, when no anchor is known."""


class AuditChainTampered(GatewayError):
    """The stored audit chain no longer matches what this gateway signed: nothing more is
    signed, and the relay stops (``relay.retry.classify``: STOP, never retried)."""

    def __init__(self, seq: int, detail: str) -> None:
        self.seq = seq
        self.detail = detail
        super().__init__(f"the audit chain was altered at seq {seq}: {detail}")


def load_line(text: str | bytes, what: str = "line") -> Any:
    """JSON of an audit line, bounded in size and depth before parsing (``json.loads``
    recurses on the C stack; relay.app raises the recursion limit). ValueError if not."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        return load_json(raw, what=what, max_bytes=MAX_LINE_BYTES, max_depth=MAX_LINE_DEPTH)
    except MalformedEvidence as exc:
        raise ValueError(f"{what}: {exc}") from None


def parse_checkpoint(value: Any) -> _audit.Checkpoint:
    """A checkpoint object (parsed JSON), its fields typed; ValueError if it is not one."""
    if not isinstance(value, dict):
        raise ValueError("the checkpoint is not a JSON object")
    if value.get("type") != "checkpoint" or value.get("v") != 1:
        raise ValueError("not a version 1 checkpoint")
    fields = {k: v for k, v in value.items() if k not in {"type", "v"}}
    if set(fields) != {"gateway", "seq", "head_hash", "time", "signature"}:
        raise ValueError("the checkpoint's fields are not gateway, seq, head_hash, time, signature")
    if isinstance(fields["seq"], bool) or not isinstance(fields["seq"], int):
        raise ValueError("the checkpoint's seq is not an integer")
    for name in ("gateway", "head_hash", "time", "signature"):
        if not isinstance(fields[name], str):
            raise ValueError(f"the checkpoint's {name} is not a string")
    return _audit.Checkpoint(**fields)


def tampered(seq: int, detail: str) -> AuditChainTampered:
    """The error, logged (``audit_chain_tampered``)."""
    exc = AuditChainTampered(seq, detail)
    log.error("audit_chain_tampered", seq=seq, detail=detail)
    return exc


class ChainGuard:
    """Remembers the last checkpoint signed here and checks the chain before the next one.

    A signed checkpoint is only *pending* until a later check finds it stored (its transaction
    may roll back); then it becomes the anchor, in memory and in the file. Thread-safe: the
    SQLite store signs on its thread, exports check on theirs.
    """

    def __init__(self, key: _audit.AuditKey, gateway: str, state_path: Path | None = None) -> None:
        self.key = key
        self.gateway = gateway
        self.state_path = state_path
        self._lock = threading.Lock()
        self._anchor: _audit.ChainHead | None = None
        self._loaded = False
        self._pending: tuple[_audit.ChainHead, str] | None = None

    # -- the anchor -----------------------------------------------------------------------------

    def pending(self) -> _audit.ChainHead | None:
        with self._lock:
            return self._pending[0] if self._pending is not None else None

    def settle(self, stored: str | None) -> None:
        """``stored``: the checkpoint line the database holds at the pending seq (None: none).
        The same line: it committed, and becomes the anchor; else it rolled back."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and stored == pending[1]:
            self._promote(pending[0])

    def signed(self, cp: _audit.Checkpoint, line: str) -> None:
        with self._lock:
            self._pending = (_audit.ChainHead(cp.seq, cp.head_hash), line)

    def known(self) -> _audit.ChainHead | None:
        """The newest checkpoint this process or data folder signed and saw stored."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                loaded = self._read_file()
                if loaded is not None and (self._anchor is None or loaded.seq > self._anchor.seq):
                    self._anchor = loaded
            return self._anchor

    def from_checkpoints(self, lines: Iterable[str]) -> _audit.ChainHead | None:
        """The first of ``lines`` (newest first) that is a checkpoint this key signed."""
        for line in lines:
            try:
                cp = parse_checkpoint(load_line(line, "checkpoint"))
            except ValueError:
                continue
            if cp.gateway == self.gateway and cp.verify(self.key.public_key):
                return _audit.ChainHead(cp.seq, cp.head_hash)
        return None

    def _promote(self, anchor: _audit.ChainHead) -> None:
        with self._lock:
            if self._anchor is not None and anchor.seq <= self._anchor.seq:
                return
            self._anchor = anchor
        self._write_file(anchor)

    def _read_file(self) -> _audit.ChainHead | None:
        if self.state_path is None:
            return None
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditChainTampered(0, f"{self.state_path}: unreadable: {exc}") from None
        try:
            d = json.loads(text)
            if d.get("gateway") != self.gateway:
                raise ValueError(f"written by gateway {d.get('gateway')!r}")
            seq, hash_ = d["seq"], d["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(hash_, str):
                raise ValueError("seq or hash of the wrong type")
        except (ValueError, KeyError, AttributeError) as exc:
            raise AuditChainTampered(0, f"{self.state_path} is not an anchor: {exc}") from None
        return _audit.ChainHead(seq, hash_)

    def _write_file(self, anchor: _audit.ChainHead) -> None:
        path = self.state_path
        if path is None:
            return
        tmp = path.with_name(path.name + ".tmp")
        body = json.dumps({"gateway": self.gateway, "seq": anchor.seq, "hash": anchor.hash})
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # the anchor in memory still guards this process
            log.warning("audit_anchor_write_failed", path=str(path), error=str(exc))
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- the check ------------------------------------------------------------------------------

    def check(
        self,
        anchor: _audit.ChainHead | None,
        rows: Iterable[tuple[int, str, str]],
        head: _audit.ChainHead,
    ) -> None:
        """``rows``: (seq, hash, record line) from ``anchor.seq`` (1 without an anchor) to
        ``head.seq``, in seq order. Raises :class:`AuditChainTampered` unless the record at the
        anchor still has its hash and each later one hashes and links up to ``head``."""
        try:
            self._check(anchor, rows, head)
        except AuditChainTampered as exc:
            log.error("audit_chain_tampered", seq=exc.seq, detail=exc.detail, head_seq=head.seq)
            raise

    def _check(
        self,
        anchor: _audit.ChainHead | None,
        rows: Iterable[tuple[int, str, str]],
        head: _audit.ChainHead,
    ) -> None:
        if anchor is not None and head.seq < anchor.seq:
            raise AuditChainTampered(
                head.seq + 1, f"records after seq {head.seq} are gone (signed up to {anchor.seq})"
            )
        expect_seq = anchor.seq if anchor is not None else 1
        prev_hash = _audit.GENESIS_HASH
        for seq, stored_hash, line in rows:
            if seq != expect_seq:
                raise AuditChainTampered(expect_seq, f"seq {expect_seq} is missing")
            if anchor is not None and seq == anchor.seq:
                if stored_hash != anchor.hash:
                    raise AuditChainTampered(seq, "the record differs from the signed one")
                prev_hash, expect_seq = stored_hash, seq + 1
                continue
            try:
                r = _audit.record_from_json(load_line(line, f"seq {seq}"))
            except (_audit.RecordFormatError, ValueError, TypeError, KeyError) as exc:
                raise AuditChainTampered(seq, f"not a record: {exc}") from None
            if r.seq != seq or r.hash != stored_hash or r.compute_hash() != r.hash:
                raise AuditChainTampered(seq, "the record does not hash to its stated hash")
            if r.prev_hash != prev_hash:
                raise AuditChainTampered(seq, f"does not link to seq {seq - 1}")
            prev_hash, expect_seq = r.hash, seq + 1
        if expect_seq != head.seq + 1 or prev_hash != head.hash:
            raise AuditChainTampered(expect_seq, "the chain does not reach the head")
