"""Pieces of the offline audit verification (``relay.audit.verify_export``) that need no record
type: parsing an export line with bounds and without ambiguity, what a re-verified bundle
proves about the record it is attached to, and the trust roots an auditor should compare.

Parsing: an export comes from whoever hands it over, so each line is bounded in size and
nesting depth *before* ``json.loads`` (which recurses on the C stack once per level: a library
that raises the recursion limit, as py-evm does, turns a deep line into a crash), with the
bundle bounds of ``verifier.limits`` (an evidence line is one bundle plus its wrapper), and a
JSON object with a repeated key is refused: parsers disagree on which value wins, so such a
line could show one value and verify another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Final

from verifier.encoding import _check_shape as check_json_shape  # the bundle parser's bounds
from verifier.errors import VerificationError
from verifier.limits import MAX_BUNDLE_BYTES, MAX_JSON_DEPTH, MAX_JSON_VALUES
from verifier.messages import (
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    SEALED_EVENT,
    seal_from_event,
)
from verifier.types import Family, VerifiedEvidence

MAX_LINE_CHARS: Final = MAX_BUNDLE_BYTES + 64 * 1024
"""Characters in one export line: the largest is an evidence line, one bundle (at most
``MAX_BUNDLE_BYTES``, which the relay enforces on intake) plus its ``digest`` wrapper."""
MAX_LINE_DEPTH: Final = MAX_JSON_DEPTH + 1
"""Nesting of one export line: a bundle's bound plus the evidence line around it."""


def _signature(event: Mapping[str, Any]) -> str:
    return f"{event['name']}({','.join(i['type'] for i in event['inputs'])})"


_SENT: Final = _signature(MESSAGE_SENT_EVENT)
_DELIVERED: Final = _signature(MESSAGE_DELIVERED_EVENT)
_SEALED: Final = _signature(SEALED_EVENT)


class LineError(ValueError):
    """A line is not acceptable JSON: too long, too deep, not JSON, or a key repeated."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise LineError(f"the key {k!r} appears twice in one object")
        obj[k] = v
    return obj


def parse_line(text: str) -> Any:
    """One export line as JSON, bounded before parsing; :class:`LineError` says why not."""
    if len(text) > MAX_LINE_CHARS:
        raise LineError(f"longer than {MAX_LINE_CHARS} characters")
    try:
        check_json_shape(
            text.encode("utf-8", "replace"),
            "line",
            max_depth=MAX_LINE_DEPTH,
            max_values=MAX_JSON_VALUES,
        )
    except VerificationError as exc:
        raise LineError(exc.reason) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except LineError:
        raise
    except (ValueError, RecursionError) as exc:
        raise LineError(f"not JSON ({exc})") from None


def bounded_lines(stream: IO[str]) -> Iterator[str]:
    """The stream's lines, none read into memory beyond :data:`MAX_LINE_CHARS` + 1 characters:
    a longer line comes out cut at that length (and :func:`parse_line` refuses it)."""
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        yield line


# ---------------------------------------------------------------------------------------------
# What a bundle proves


@dataclass(frozen=True, slots=True)
class Claim:
    """The fields of a record that its evidence must prove (None: the record states none)."""

    message_id: str
    hop: str | None
    height: int | None
    tx_hash: str | None
    summary: Mapping[str, Any] | None
    """The record's ``trust`` summary: its ``gateway`` must be the proven log's emitter."""


def unbound(claim: Claim, bundle: Mapping[str, Any], ev: VerifiedEvidence) -> str | None:
    """Why the verified bundle ``ev`` does not prove ``claim`` (None when it does).

    The same binding as ``relay.verify`` makes online, as far as a record allows: the proven
    event is the gateway's event of the record's hop (EVM ``MessageSent`` / ``MessageDelivered``
    with the record's id, in the block at the record's height and the transaction it names;
    FISCO a ``Sealed`` log listing the id among its sent ids, or holding result hashes for a
    delivery result, in a block at or after the record's height, since a later ``seal()``
    commits the recorded transaction), emitted by the gateway the record's trust summary
    names. A FISCO seal lists result *hashes*, which cover the result itself (not in the
    export): the id of a FISCO delivery result is bound only through the seal that lists it.
    """
    try:
        return _unbound(claim, bundle, ev)
    except (KeyError, TypeError, ValueError, VerificationError) as exc:
        return f"the proven event lacks the gateway event's fields ({exc})"


def _unbound(claim: Claim, bundle: Mapping[str, Any], ev: VerifiedEvidence) -> str | None:
    if ev.event is None or ev.log is None:
        return "the bundle proves no event (no log_index or no event in the trust)"
    name = {_SENT: "MessageSent", _DELIVERED: "MessageDelivered", _SEALED: "Sealed"}.get(
        ev.event.signature, ev.event.signature
    )
    args = dict(ev.event.args)
    mid = claim.message_id.lower()
    if claim.hop == "message_sent":
        if name == "MessageSent":
            if "0x" + bytes(args["id"]).hex() != mid:
                return f"the bundle proves MessageSent of 0x{bytes(args['id']).hex()}"
        elif name == "Sealed":
            ids = {"0x" + x.hex() for x in seal_from_event(ev.event).sent_ids}
            if mid not in ids:
                return f"the proven Sealed log does not list message {claim.message_id}"
        else:
            return f"the bundle proves {ev.event.signature}, not the gateway's MessageSent"
    elif claim.hop == "delivery_result":
        if name == "MessageDelivered":
            if "0x" + bytes(args["id"]).hex() != mid:
                return f"the bundle proves MessageDelivered of 0x{bytes(args['id']).hex()}"
        elif name == "Sealed":
            if not seal_from_event(ev.event).result_hashes:
                return "the proven Sealed log holds no delivery result"
        else:
            return f"the bundle proves {ev.event.signature}, not the gateway's MessageDelivered"
    else:
        return f"the record names hop {claim.hop!r}: nothing says what the bundle must prove"
    if name == "Sealed":
        # FISCO: the record names the body's transaction (sendMessage, or the delivery), which
        # a later seal() transaction commits: the seal is at or after the recorded height.
        if claim.height is not None and claim.height > ev.block_number:
            return (
                f"the record states height {claim.height}, after the proven seal's block "
                f"{ev.block_number}"
            )
    else:
        if claim.height is not None and claim.height != ev.block_number:
            return (
                f"the record states height {claim.height}, the bundle proves block "
                f"{ev.block_number}"
            )
        receipt = bundle.get("receipt")
        proven_tx = receipt.get("transactionHash") if isinstance(receipt, Mapping) else None
        if claim.tx_hash is not None and str(proven_tx or "").lower() != claim.tx_hash.lower():
            return f"the record states transaction {claim.tx_hash}, the bundle's is {proven_tx}"
    emitter = "0x" + ev.log.address.hex()
    named = claim.summary.get("gateway") if claim.summary is not None else None
    if isinstance(named, str) and named.lower() != emitter:
        return f"the record's trust names gateway {named}, the proven log is from {emitter}"
    return None


RootKey = tuple[str, ...]


def trust_root(
    trust: Mapping[str, Any], summary: Mapping[str, Any] | None, ev: VerifiedEvidence
) -> tuple[RootKey, dict[str, Any], tuple[int, str] | None]:
    """The trust root a bundle was re-verified under, to list for the auditor: a key (one
    entry per distinct root), its description, and for EVM the (height, block hash) relied on.

    FISCO: the sealer set's digest (sha256 of the sorted ``[node_id, weight]`` pairs, as
    ``relay.trust`` summarises it), chain and group id and the pinned gateway. EVM: the chain
    id from the record's summary (the trust object holds only the block hash, which the bundle's
    own header yields: re-verification is self-consistency there, and the hashes must be
    compared with a node the auditor trusts) and the emitting gateway.
    """
    emitter = "0x" + ev.log.address.hex() if ev.log is not None else None
    if ev.family is Family.FISCO_BCOS_3:
        pairs = sorted(
            (str(s.get("node_id")), int(s.get("weight", 0)))
            for s in trust.get("sealers", [])
            if isinstance(s, Mapping)
        )
        digest = hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()
        call = trust.get("call")
        gateway = call.get("to") if isinstance(call, Mapping) else emitter
        root = {
            "family": ev.family.value,
            "chain_id": trust.get("chainID"),
            "group_id": trust.get("groupID"),
            "sealer_set": digest,
            "sealers": len(pairs),
            "gateway": gateway,
        }
        fisco = ("fisco", str(root["chain_id"]), str(root["group_id"]), digest, str(gateway))
        return fisco, root, None
    chain_id = summary.get("chain_id") if summary is not None else None
    root = {"family": ev.family.value, "chain_id": chain_id, "gateway": emitter, "blocks": []}
    evm = ("evm", str(chain_id), str(emitter))
    return evm, root, (ev.block_number, "0x" + ev.block_hash.hex())


def describe_roots(roots: list[dict[str, Any]]) -> str:
    """The trust roots in one line, for the VERIFIED line."""
    parts = []
    for r in roots:
        if r["family"] == Family.FISCO_BCOS_3.value:
            parts.append(
                f"FISCO chain {r['chain_id']}/group {r['group_id']} sealer set "
                f"{str(r['sealer_set'])[:16]}… ({r['sealers']} sealers, gateway {r['gateway']})"
            )
        else:
            parts.append(
                f"EVM chain id {r['chain_id']} gateway {r['gateway']}: {len(r['blocks'])} block "
                "hash(es) relied on, each only as the bundle's own (compare with a node you "
                "trust; --json lists them)"
            )
    return "; ".join(parts) if parts else "none"
