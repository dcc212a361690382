"""FISCO BCOS 3.x block headers from ``getBlockByNumber``/``getBlockByHash`` JSON.

The header hash is ``H`` over a plain concatenation of the hashed fields, not over TARS
(``bcos-tars-protocol/impl/TarsHashable.h``)::

    be_i32(version) ‖ Σ(be_i64(parent.number) ‖ parent.hash) ‖ txsRoot ‖ receiptsRoot ‖ stateRoot
    ‖ be_i64(number) ‖ gasUsed (ASCII decimal) ‖ be_i64(timestamp) ‖ be_i64(sealer)
    ‖ Σ sealerList[i] (64 bytes each) ‖ extraData ‖ Σ be_i64(consensusWeights[i])

``signatureList`` is not hashed. Genesis (number 0) is built with only number, version and
extraData set: its three roots and ``gasUsed`` are EMPTY in the hashed data although the RPC
prints 32 zero bytes and ``"0"``. Block 0 is therefore hashed with empty values, and its JSON
must show exactly those printed defaults (else a changed root would go unnoticed).

The header's lists are bounded (``verifier.limits``) before their items are parsed:
``sealerList`` and ``consensusWeights`` by the sealer bound, ``signatureList`` by the signature
bound (at most one per sealer), ``parentInfo`` by the parent bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from verifier.encoding import (
    parse_decimal_string,
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    require,
)
from verifier.errors import MalformedEvidence, ProofMismatch
from verifier.hashing import Hasher
from verifier.limits import (
    MAX_PARENT_INFO,
    MAX_SEALERS,
    MAX_SIGNATURES_PER_HEADER,
    check_count,
)

SEALER_KEY_LENGTH: Final = 64
_ZERO_ROOT: Final = bytes(32)


@dataclass(frozen=True, slots=True)
class FiscoHeader:
    """A parsed header. ``hash`` is recomputed, never copied from the JSON."""

    number: int
    hash: bytes
    version: int
    txs_root: bytes
    receipts_root: bytes
    sealer_list: tuple[bytes, ...]
    consensus_weights: tuple[int, ...]
    signatures: tuple[tuple[int, bytes], ...]
    state_root: bytes
    parent_info: tuple[tuple[int, bytes], ...]
    gas_used: str
    timestamp: int
    sealer: int
    extra_data: bytes


@dataclass(frozen=True, slots=True)
class _HashedFields:
    version: int
    parent_info: tuple[tuple[int, bytes], ...]
    txs_root: bytes
    receipts_root: bytes
    state_root: bytes
    number: int
    gas_used: str
    timestamp: int
    sealer: int
    sealer_list: tuple[bytes, ...]
    extra_data: bytes
    consensus_weights: tuple[int, ...]


def compute_header_hash(block: Mapping[str, Any], hasher: Hasher) -> bytes:
    """The header hash recomputed from the JSON fields (genesis quirk applied)."""
    return _hash_fields(_parse_hashed_fields(block), hasher)


def parse_header(block: Mapping[str, Any], hasher: Hasher) -> FiscoHeader:
    """Parse and hash a header; if the JSON carries ``hash`` it must equal the recomputed one."""
    fields = _parse_hashed_fields(block)
    digest = _hash_fields(fields, hasher)
    if "hash" in block:
        claimed = parse_hex(block["hash"], "block.hash", length=32)
        if claimed != digest:
            raise ProofMismatch(
                "header hash recomputed from the fields differs from block.hash",
                check="header_hash",
                expected="0x" + claimed.hex(),
                computed="0x" + digest.hex(),
            )
    return FiscoHeader(
        number=fields.number,
        hash=digest,
        version=fields.version,
        txs_root=fields.txs_root,
        receipts_root=fields.receipts_root,
        sealer_list=fields.sealer_list,
        consensus_weights=fields.consensus_weights,
        signatures=_parse_signatures(block),
        state_root=fields.state_root,
        parent_info=fields.parent_info,
        gas_used=fields.gas_used,
        timestamp=fields.timestamp,
        sealer=fields.sealer,
        extra_data=fields.extra_data,
    )


def _hash_fields(f: _HashedFields, hasher: Hasher) -> bytes:
    parts = [f.version.to_bytes(4, "big")]
    for number, parent_hash in f.parent_info:
        parts += (number.to_bytes(8, "big"), parent_hash)
    if f.number == 0:  # genesis: roots and gasUsed were never set
        parts.append(f.number.to_bytes(8, "big"))
    else:
        parts += (f.txs_root, f.receipts_root, f.state_root, f.number.to_bytes(8, "big"))
        parts.append(f.gas_used.encode("ascii"))
    parts += (f.timestamp.to_bytes(8, "big"), f.sealer.to_bytes(8, "big"))
    parts += f.sealer_list
    parts.append(f.extra_data)
    parts += (w.to_bytes(8, "big") for w in f.consensus_weights)
    return hasher(b"".join(parts))


def _parse_hashed_fields(block: Mapping[str, Any]) -> _HashedFields:
    block = parse_object(block, "block")
    number = parse_int(require(block, "number", "block"), "block.number")
    fields = _HashedFields(
        version=parse_int(require(block, "version", "block"), "block.version", bits=32),
        parent_info=_parse_parent_info(require(block, "parentInfo", "block")),
        txs_root=parse_hex(require(block, "txsRoot", "block"), "block.txsRoot", length=32),
        receipts_root=parse_hex(
            require(block, "receiptsRoot", "block"), "block.receiptsRoot", length=32
        ),
        state_root=parse_hex(require(block, "stateRoot", "block"), "block.stateRoot", length=32),
        number=number,
        gas_used=parse_decimal_string(require(block, "gasUsed", "block"), "block.gasUsed"),
        timestamp=parse_int(require(block, "timestamp", "block"), "block.timestamp"),
        sealer=parse_int(require(block, "sealer", "block"), "block.sealer"),
        sealer_list=_parse_sealer_list(require(block, "sealerList", "block")),
        extra_data=parse_hex(require(block, "extraData", "block"), "block.extraData"),
        consensus_weights=_parse_weights(require(block, "consensusWeights", "block")),
    )
    if number == 0:
        _check_genesis_defaults(fields)
    return fields


def _check_genesis_defaults(f: _HashedFields) -> None:
    for name, root in (
        ("txsRoot", f.txs_root),
        ("receiptsRoot", f.receipts_root),
        ("stateRoot", f.state_root),
    ):
        if root != _ZERO_ROOT:
            raise MalformedEvidence(
                "genesis root is not hashed, so it must print as 32 zero bytes",
                check="header_hash",
                field=f"block.{name}",
            )
    if f.gas_used != "0":
        raise MalformedEvidence(
            'genesis gasUsed is not hashed, so it must print as "0"',
            check="header_hash",
            field="block.gasUsed",
        )


def _parse_parent_info(value: object) -> tuple[tuple[int, bytes], ...]:
    parents = []
    items = parse_list(value, "block.parentInfo")
    check_count(len(items), MAX_PARENT_INFO, field="block.parentInfo", what="parents")
    for i, item in enumerate(items):
        path = f"block.parentInfo[{i}]"
        entry = parse_object(item, path)
        number = parse_int(require(entry, "blockNumber", path), f"{path}.blockNumber")
        digest = parse_hex(require(entry, "blockHash", path), f"{path}.blockHash", length=32)
        parents.append((number, digest))
    return tuple(parents)


def _parse_sealer_list(value: object) -> tuple[bytes, ...]:
    items = parse_list(value, "block.sealerList")
    check_count(len(items), MAX_SEALERS, field="block.sealerList", what="sealers")
    return tuple(
        parse_hex(item, f"block.sealerList[{i}]", length=SEALER_KEY_LENGTH)
        for i, item in enumerate(items)
    )


def _parse_weights(value: object) -> tuple[int, ...]:
    items = parse_list(value, "block.consensusWeights")
    check_count(len(items), MAX_SEALERS, field="block.consensusWeights", what="weights")
    return tuple(parse_int(item, f"block.consensusWeights[{i}]") for i, item in enumerate(items))


def _parse_signatures(block: Mapping[str, Any]) -> tuple[tuple[int, bytes], ...]:
    signatures = []
    items = parse_list(require(block, "signatureList", "block"), "block.signatureList")
    check_count(
        len(items), MAX_SIGNATURES_PER_HEADER, field="block.signatureList", what="signatures"
    )
    for i, item in enumerate(items):
        path = f"block.signatureList[{i}]"
        entry = parse_object(item, path)
        index = parse_int(require(entry, "sealerIndex", path), f"{path}.sealerIndex")
        signature = parse_hex(require(entry, "signature", path), f"{path}.signature")
        if not signature:
            raise MalformedEvidence("empty signature", field=f"{path}.signature")
        signatures.append((index, signature))
    return tuple(signatures)
