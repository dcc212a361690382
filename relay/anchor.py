"""Anchored audit checkpoints: the gateway publishes its signed checkpoints' heads on a chain
(``contracts/AuditAnchor.sol``), and an auditor compares an export with what was anchored.

An export can be re-written and re-signed by whoever holds the audit key (the operator); the
anchors, once in the chain's blocks, cannot. The gateway side is :class:`Anchorer` (a task of
the active replica, relay/app.py); the auditor side is :func:`read_anchors` and
:func:`check_anchors` (``gateway audit anchors``, cli/audit_anchors.py). docs/audit.md,
"Anchored checkpoints", describes both.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from adapters.base import AdapterError, ChainAdapter, Submission
from adapters.evm.rpc import EvmEndpoint
from adapters.fisco.bodies import parse_log
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoEndpoint
from relay.audit import CHECKPOINT_TYPE, RECORD_TYPE, Checkpoint, canonical_json
from relay.config import GatewayConfig
from verifier.hashing import HashScheme, hasher_for, keccak256

log = structlog.get_logger("relay.anchor")

_SIGNATURE: Final = b"Anchored(address,uint64,bytes32,bytes32)"
FISCO_TOPICS: Final = frozenset("0x" + hasher_for(s)(_SIGNATURE).hex() for s in HashScheme)
"""A FISCO chain hashes with keccak256 or SM3 (its crypto suite): either names the event."""
FISCO_LOG_RANGE: Final = 1000
ANCHORED_TOPIC: Final = "0x" + keccak256(_SIGNATURE).hex()
POLL_SECONDS: Final = 2.0
BACKOFF_FIRST_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0


def checkpoint_digest(cp: Checkpoint) -> bytes:
    """sha256 of the checkpoint line's canonical JSON, signature included
    (``jq -cSaj . | sha256sum`` of the export's checkpoint line)."""
    return hashlib.sha256(canonical_json(cp.to_json())).digest()


class CheckpointSource(Protocol):
    async def audit_checkpoint(self, seq: int = 0) -> Checkpoint | None: ...


class Anchorer:
    """Anchors every ``every``-th new signed checkpoint (the newest one when several are due)
    with ``adapter.anchor``; a failure is logged and retried with backoff, never raised."""

    def __init__(
        self,
        store: CheckpointSource,
        adapter: ChainAdapter,
        *,
        contract: bytes,
        every: int = 1,
        poll_seconds: float = POLL_SECONDS,
        backoff_first: float = BACKOFF_FIRST_S,
        backoff_max: float = BACKOFF_MAX_S,
    ) -> None:
        self.store, self.adapter, self.contract = store, adapter, contract
        self.every, self.poll = max(1, every), poll_seconds
        self.backoff = (backoff_first, backoff_max)
        self.last_seen = 0
        """The newest checkpoint seq looked at."""
        self.pending = 0
        """New checkpoints seen since the last anchor; the first one found is due at once."""
        self.anchored: list[tuple[int, Submission]] = []

    async def step(self) -> Submission | None:
        """Count the new checkpoints; anchor the newest when ``every`` are due. Raises the
        adapter's error (the caller retries)."""
        latest = await self.store.audit_checkpoint()
        if latest is None or (latest.seq <= self.last_seen and self.pending < self.every):
            return None  # nothing new, and no failed anchor to retry
        if self.last_seen == 0 and not self.anchored:
            self.pending = self.every  # after a start: what the last run anchored is unknown
        elif latest.seq > self.last_seen:
            seq = self.last_seen
            while (cp := await self.store.audit_checkpoint(seq + 1)) is not None:
                self.pending += 1
                seq = cp.seq
                if seq >= latest.seq:
                    break
        self.last_seen = latest.seq
        if self.pending < self.every:
            return None
        submission = await self.adapter.anchor(
            self.contract, latest.seq, bytes.fromhex(latest.head_hash), checkpoint_digest(latest)
        )
        self.pending = 0
        self.anchored.append((latest.seq, submission))
        log.info(
            "audit_anchored",
            seq=latest.seq,
            chain=self.adapter.chain,
            tx_hash=submission.tx_hash,
            height=submission.height,
        )
        return submission

    async def run(self) -> None:
        """Until cancelled."""
        delay = 0.0
        while True:
            await asyncio.sleep(delay or self.poll)
            try:
                await self.step()
            except Exception as exc:  # the chain refused or is unreachable, the store is closing
                delay = min(max(delay * 2, self.backoff[0]), self.backoff[1])
                log.warning(
                    "audit_anchor_failed",
                    chain=self.adapter.chain,
                    reason=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                )
                continue
            delay = 0.0


def anchorer(
    config: GatewayConfig, store: CheckpointSource, adapters: Mapping[str, ChainAdapter]
) -> Anchorer | None:
    """``[audit] anchor_chain``'s anchorer (None when not configured): the chain's adapter
    sends from its relayer account (config validation refuses a chain not served here)."""
    settings = config.audit
    if settings.anchor_chain is None or settings.anchor_contract is None:
        return None
    log.info(
        "audit_anchoring",
        chain=settings.anchor_chain,
        contract=settings.anchor_contract,
        every=settings.anchor_every,
    )
    return Anchorer(
        store,
        adapters[settings.anchor_chain],
        contract=bytes.fromhex(settings.anchor_contract[2:]),
        every=settings.anchor_every,
    )


# ---------------------------------------------------------------------------------------------
# The auditor's side


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    head_hash: str
    """hex, no 0x (as in the export)."""
    checkpoint_digest: str
    by: str
    """The anchoring account, 0x + 40 lowercase hex."""
    block: int
    tx_hash: str


class AnchorReadError(Exception):
    """The chain's answer could not be read as Anchored events."""


async def read_anchors(
    url: str,
    contract: str,
    *,
    by: str | None = None,
    family: str = "evm",
    group: str = "group0",
    timeout: float = 30.0,
) -> list[Anchor]:
    """The ``Anchored`` events of ``contract`` (by ``by`` only, if given), in chain order,
    read with ``eth_getLogs`` from an EVM JSON-RPC endpoint, or with FISCO BCOS's ``getLogs``
    (``family="fisco"``, plain HTTP, ``group``)."""
    if family == "fisco":
        return await _read_fisco(url, contract, by=by, group=group, timeout=timeout)
    endpoint = EvmEndpoint(url, chain="anchor", chain_id=0, call_timeout=timeout)
    topics: list[Any] = [ANCHORED_TOPIC]
    if by is not None:
        topics.append("0x" + "00" * 12 + by.lower().removeprefix("0x"))
    try:
        logs = await endpoint.call(
            "eth_getLogs",
            [{"address": contract, "fromBlock": "0x0", "toBlock": "latest", "topics": topics}],
        )
    except AdapterError as exc:
        raise AnchorReadError(str(exc)) from None
    finally:
        await endpoint.close()
    if not isinstance(logs, list):
        raise AnchorReadError("eth_getLogs did not answer a list")
    return [_anchor(entry) for entry in logs if not _removed(entry)]


async def _read_fisco(
    url: str, contract: str, *, by: str | None, group: str, timeout: float
) -> list[Anchor]:
    client = FiscoRpcClient(FiscoEndpoint(url), chain="anchor", group=group, timeout=timeout)
    address = bytes.fromhex(contract.removeprefix("0x"))
    out: list[Anchor] = []
    try:
        head = await client.call("getBlockNumber")
        if not isinstance(head, int) or isinstance(head, bool):
            raise AnchorReadError("getBlockNumber is not an integer")
        for lo in range(0, head + 1, FISCO_LOG_RANGE):
            query = {
                "fromBlock": hex(lo),
                "toBlock": hex(min(head, lo + FISCO_LOG_RANGE - 1)),
                "address": [contract.lower()],
                "topics": [],
            }
            result = await client.request("getLogs", [group, query])
            if not isinstance(result, list):
                raise AnchorReadError("getLogs did not answer a list")
            for entry in result:
                parsed = parse_log(entry, address)
                if parsed is None:
                    raise AnchorReadError("getLogs answered a malformed log")
                decoded, at = parsed
                out.append(
                    _anchor(
                        {
                            "topics": ["0x" + t.hex() for t in decoded.topics],
                            "data": "0x" + decoded.data.hex(),
                            "blockNumber": hex(at.height),
                            "transactionHash": at.tx_hash,
                        },
                        topics=FISCO_TOPICS,
                    )
                )
    except AdapterError as exc:
        raise AnchorReadError(str(exc)) from None
    finally:
        await client.close()
    return [a for a in out if by is None or a.by == by.lower()]


def _removed(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("removed") is True


def _anchor(entry: object, *, topics: frozenset[str] = frozenset({ANCHORED_TOPIC})) -> Anchor:
    try:
        assert isinstance(entry, dict)
        found = entry["topics"]
        data = bytes.fromhex(str(entry["data"]).removeprefix("0x"))
        if len(found) != 3 or str(found[0]).lower() not in topics or len(data) != 64:
            raise ValueError("not an Anchored event")
        return Anchor(
            seq=int(str(found[2]), 16),
            head_hash=data[:32].hex(),
            checkpoint_digest=data[32:].hex(),
            by="0x" + str(found[1])[-40:].lower(),
            block=int(str(entry["blockNumber"]), 16),
            tx_hash=str(entry["transactionHash"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise AnchorReadError(f"a log is not an Anchored event: {exc}") from None


@dataclass(frozen=True, slots=True)
class AnchorResult:
    anchor: Anchor
    status: str
    """``match``, ``rewritten``, ``checkpoint_differs``, ``truncated`` or ``before_export``."""
    detail: str

    @property
    def ok(self) -> bool:
        return self.status in {"match", "before_export"}

    def to_json(self) -> dict[str, Any]:
        a = self.anchor
        return {
            "seq": a.seq,
            "block": a.block,
            "tx_hash": a.tx_hash,
            "by": a.by,
            "head_hash": a.head_hash,
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
        }


def export_heads(lines: Iterable[str]) -> tuple[dict[int, str], dict[int, str]]:
    """The export's record hashes and checkpoint digests (hex) by seq. The export must have
    been verified (``relay.audit.verify_export``) first: nothing else is checked here."""
    records: dict[int, str] = {}
    checkpoints: dict[int, str] = {}
    for text in lines:
        if not text.strip():
            continue
        obj: Any = json.loads(text)
        if not isinstance(obj, dict):
            continue
        if obj.get("type") == RECORD_TYPE:
            records[int(obj["seq"])] = str(obj["hash"])
        elif obj.get("type") == CHECKPOINT_TYPE:
            checkpoints[int(obj["seq"])] = hashlib.sha256(canonical_json(obj)).hexdigest()
    return records, checkpoints


def check_anchors(
    anchors: Sequence[Anchor], records: Mapping[int, str], checkpoints: Mapping[int, str]
) -> list[AnchorResult]:
    """Each anchor against the export: the record at its seq must have its head hash (and the
    checkpoint line at its seq, if the export has one, its digest)."""
    first = min(records, default=1)
    last = max(records, default=0)
    results = []
    for a in anchors:
        tx = f"{a.tx_hash} (block {a.block})"
        if a.seq > last:
            results.append(
                AnchorResult(
                    a,
                    "truncated",
                    f"seq {a.seq} was anchored in tx {tx}, but the export ends at seq {last}: "
                    "records were cut off",
                )
            )
        elif a.seq < first:
            results.append(AnchorResult(a, "before_export", f"before the export (from {first})"))
        elif records[a.seq] != a.head_hash:
            results.append(
                AnchorResult(
                    a,
                    "rewritten",
                    f"history rewritten after it was anchored in tx {tx}: record hash "
                    f"{records[a.seq]}, anchored {a.head_hash}",
                )
            )
        elif a.seq in checkpoints and checkpoints[a.seq] != a.checkpoint_digest:
            results.append(
                AnchorResult(
                    a,
                    "checkpoint_differs",
                    f"the checkpoint at seq {a.seq} is not the one anchored in tx {tx}",
                )
            )
        else:
            results.append(AnchorResult(a, "match", f"anchored at block {a.block}, matches"))
    return results
