"""Ethereum receipts: consensus encoding, strict decoding and inclusion proofs in ``receiptsRoot``.

The receipt trie maps ``rlp(transactionIndex)`` to the consensus encoding of the receipt:

* legacy (type 0): ``rlp([status_or_root, cumulativeGasUsed, logsBloom, logs])``
* typed (EIP-2718, types 0x01-0x04): ``type_byte ‖ rlp([status, cumulativeGasUsed, logsBloom,
  logs])``, the same payload for every type (EELS ``prague/blocks.py::encode_receipt``)
* ``status`` 1 is ``0x01`` and 0 is the empty string; receipts before Byzantium (EIP-658, block
  4,370,000) hold the 32-byte post-state ``root`` instead, which JSON-RPC prints as ``root``
* ``logs`` = ``[[address, [topic, ...], data], ...]`` in log order.

Only committed fields are read from JSON-RPC receipts: ``gasUsed``, ``effectiveGasPrice``,
``from``, ``to``, ``contractAddress``, ``blobGasUsed``, ``logIndex``... are derived by the node,
not committed, and never trusted. Chain-specific types (OP-stack deposits 0x7e, Arbitrum
0x64-0x6a) have other encodings and are rejected. Receipts are read in the standard hex form of
``eth_getBlockReceipts``; other JSON dialects must be normalised by the adapter first.

Hostile receipts are bounded (``verifier.limits``) before they cost anything: the log count is
checked before the proof is walked, and topics and data sizes before a log is decoded from hex.
The proof is walked before the receipt is re-encoded, so a bad proof costs only its hashing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from verifier.encoding import parse_hex, parse_list, parse_object, require
from verifier.errors import MalformedEvidence, ProofMismatch
from verifier.evm.fields import UINT64_BYTES, data_bytes, is_absent, quantity, quantity_bytes
from verifier.hashing import keccak256
from verifier.limits import (
    MAX_LOG_DATA_BYTES,
    MAX_LOGS_PER_RECEIPT,
    MAX_TOPICS_PER_LOG,
    check_count,
)
from verifier.merkle.mpt import parse_proof_nodes, verify_mpt_proof
from verifier.rlp import Decoded, decode, decode_uint, encode, encode_uint
from verifier.types import DecodedLog

RECEIPT_TYPES: Final = frozenset({0x01, 0x02, 0x03, 0x04})
"""Typed receipts this codec knows (EIP-2930, EIP-1559, EIP-4844, EIP-7702); 0 is legacy."""
MAX_TOPICS: Final = MAX_TOPICS_PER_LOG
BLOOM_LENGTH: Final = 256
ADDRESS_LENGTH: Final = 20
HASH_LENGTH: Final = 32
_CHECK: Final = "receipt_encoding"
_PATH: Final = "receipt"


EvmLog = DecodedLog  # one log type for both families: address, topics, data


@dataclass(frozen=True, slots=True)
class EvmReceipt:
    """A receipt decoded from its consensus bytes (``encoded``), e.g. the value a proof proved.

    ``status`` is None exactly for pre-Byzantium receipts, which carry ``post_state`` instead.
    """

    tx_type: int
    status: int | None
    post_state: bytes | None
    cumulative_gas_used: int
    logs_bloom: bytes
    logs: tuple[EvmLog, ...]
    encoded: bytes


def receipt_key(transaction_index: int) -> bytes:
    """The trie key of the receipt (or transaction) at ``transaction_index``: rlp(index)."""
    if isinstance(transaction_index, bool) or not isinstance(transaction_index, int):
        raise MalformedEvidence("expected an integer", field="transactionIndex")
    if not 0 <= transaction_index < 1 << 64:
        raise MalformedEvidence(f"index {transaction_index} out of range", field="transactionIndex")
    return encode(encode_uint(transaction_index))


def receipt_type(receipt: Mapping[str, Any], path: str = _PATH) -> int:
    """The receipt's EIP-2718 type: 0 when ``type`` is absent (pre-Berlin nodes), else 0-4."""
    if is_absent(receipt, "type"):
        return 0
    tx_type = quantity(receipt, "type", path, max_bytes=1)
    if tx_type and tx_type not in RECEIPT_TYPES:
        raise MalformedEvidence(
            f"receipt type 0x{tx_type:x} is not one this codec knows (0x0-0x4)",
            field=f"{path}.type",
            check=_CHECK,
        )
    return tx_type


def encode_receipt(receipt: Mapping[str, Any]) -> bytes:
    """The consensus encoding of a JSON-RPC receipt: the value stored in the receipt trie."""
    receipt = parse_object(receipt, _PATH)
    tx_type = receipt_type(receipt)
    if not is_absent(receipt, "root"):
        if tx_type:
            raise MalformedEvidence(
                "typed receipts carry a status, not a post-state root",
                field=f"{_PATH}.root",
                check=_CHECK,
            )
        outcome = data_bytes(receipt, "root", _PATH, length=HASH_LENGTH)
    else:
        status = quantity(receipt, "status", _PATH, max_bytes=1)
        if status > 1:
            raise MalformedEvidence("status must be 0x0 or 0x1", field=f"{_PATH}.status")
        outcome = b"\x01" if status else b""
    payload = encode(
        [
            outcome,
            quantity_bytes(receipt, "cumulativeGasUsed", _PATH, max_bytes=UINT64_BYTES),
            data_bytes(receipt, "logsBloom", _PATH, length=BLOOM_LENGTH),
            _encode_logs(receipt),
        ]
    )
    return bytes((tx_type,)) + payload if tx_type else payload


def _json_logs(receipt: Mapping[str, Any]) -> list[Any]:
    """The receipt's ``logs`` list, at most :data:`MAX_LOGS_PER_RECEIPT` long (a cheap check)."""
    logs = parse_list(require(receipt, "logs", _PATH), f"{_PATH}.logs")
    check_count(len(logs), MAX_LOGS_PER_RECEIPT, field=f"{_PATH}.logs", what="logs")
    return logs


def _encode_logs(receipt: Mapping[str, Any]) -> list[list[Any]]:
    out = []
    for i, raw in enumerate(_json_logs(receipt)):
        path = f"{_PATH}.logs[{i}]"
        log = parse_object(raw, path)
        topics = parse_list(require(log, "topics", path), f"{path}.topics")
        check_count(len(topics), MAX_TOPICS, field=f"{path}.topics", what="topics")
        data = require(log, "data", path)
        if isinstance(data, str):  # checked on the text, before decoding it
            size = (len(data) - 1) // 2  # "0x" and two digits a byte: an upper bound
            check_count(size, MAX_LOG_DATA_BYTES, field=f"{path}.data", what="bytes of data")
        out.append(
            [
                data_bytes(log, "address", path, length=ADDRESS_LENGTH),
                [
                    parse_hex(t, f"{path}.topics[{j}]", length=HASH_LENGTH)
                    for j, t in enumerate(topics)
                ],
                parse_hex(data, f"{path}.data"),
            ]
        )
    return out


def decode_receipt(value: bytes) -> EvmReceipt:
    """Decode consensus receipt bytes strictly (check ``receipt_encoding``)."""
    if not value:
        raise MalformedEvidence("empty receipt encoding", check=_CHECK)
    first = value[0]
    if first >= 0xC0:
        tx_type, body = 0, value
    elif first in RECEIPT_TYPES:
        tx_type, body = first, value[1:]
    else:
        raise MalformedEvidence(f"unknown receipt type byte 0x{first:02x}", check=_CHECK)
    fields = decode(body, check=_CHECK)
    if not isinstance(fields, list) or len(fields) != 4:
        raise MalformedEvidence("receipt is not a list of 4 items", check=_CHECK)
    outcome, cumulative, bloom, logs = fields
    status, post_state = _decode_outcome(outcome, tx_type)
    if not isinstance(cumulative, bytes) or not isinstance(bloom, bytes):
        raise MalformedEvidence("cumulativeGasUsed and logsBloom must be strings", check=_CHECK)
    if len(bloom) != BLOOM_LENGTH:
        raise MalformedEvidence(f"logsBloom of {len(bloom)} bytes", check=_CHECK)
    return EvmReceipt(
        tx_type=tx_type,
        status=status,
        post_state=post_state,
        cumulative_gas_used=decode_uint(
            cumulative, field="cumulativeGasUsed", check=_CHECK, max_bytes=UINT64_BYTES
        ),
        logs_bloom=bloom,
        logs=_decode_logs(logs),
        encoded=bytes(value),
    )


def _decode_outcome(outcome: Decoded, tx_type: int) -> tuple[int | None, bytes | None]:
    if outcome == b"":
        return 0, None
    if outcome == b"\x01":
        return 1, None
    if isinstance(outcome, bytes) and len(outcome) == HASH_LENGTH and tx_type == 0:
        return None, outcome
    raise MalformedEvidence("receipt status is neither 0, 1 nor a 32-byte root", check=_CHECK)


def _decode_logs(logs: Decoded) -> tuple[EvmLog, ...]:
    if not isinstance(logs, list):
        raise MalformedEvidence("logs is not a list", check=_CHECK)
    check_count(len(logs), MAX_LOGS_PER_RECEIPT, field=f"{_PATH}.logs", what="logs")
    out = []
    for i, log in enumerate(logs):
        if not isinstance(log, list) or len(log) != 3:
            raise MalformedEvidence(f"log {i} is not a list of 3 items", check=_CHECK)
        address, topics, data = log
        if not isinstance(address, bytes) or len(address) != ADDRESS_LENGTH:
            raise MalformedEvidence(f"log {i}: address is not 20 bytes", check=_CHECK)
        if not isinstance(topics, list) or len(topics) > MAX_TOPICS:
            raise MalformedEvidence(f"log {i}: topics is not a list of at most 4", check=_CHECK)
        if not all(isinstance(t, bytes) and len(t) == HASH_LENGTH for t in topics):
            raise MalformedEvidence(f"log {i}: a topic is not 32 bytes", check=_CHECK)
        if not isinstance(data, bytes):
            raise MalformedEvidence(f"log {i}: data is not a string", check=_CHECK)
        check_count(len(data), MAX_LOG_DATA_BYTES, field=f"{_PATH}.logs[{i}].data", what="bytes")
        out.append(EvmLog(address, tuple(t for t in topics if isinstance(t, bytes)), data))
    return tuple(out)


def verify_receipt_proof(
    receipts_root: bytes, receipt: Mapping[str, Any], proof_hex: Sequence[str]
) -> EvmReceipt:
    """Prove ``receipt`` (JSON-RPC) is in the trie under ``receipts_root``; return it decoded.

    The key comes from ``receipt.transactionIndex`` and the value is the receipt's own
    consensus encoding, so every committed field is checked; the returned receipt is decoded
    from the proven bytes. Raises ProofMismatch (check ``receipt_proof``) when the proven value
    differs from the receipt given.

    Cheapest first: the log count is bounded, then the proof walked (hashing at most the
    proof's own bytes), and only a receipt whose proof holds is re-encoded and compared.
    """
    receipt = parse_object(receipt, _PATH)
    key = receipt_key(quantity(receipt, "transactionIndex", _PATH, max_bytes=UINT64_BYTES))
    _json_logs(receipt)
    nodes = parse_proof_nodes(proof_hex, check="receipt_proof")
    proven = verify_mpt_proof(receipts_root, key, nodes, check="receipt_proof")
    expected = encode_receipt(receipt)
    if proven != expected:
        raise value_mismatch(proven, expected, check="receipt_proof", what="receipt")
    return decode_receipt(proven)


def value_mismatch(proven: bytes, given: bytes, *, check: str, what: str) -> ProofMismatch:
    """ProofMismatch for a proven trie value that is not the object the evidence gave."""
    at = _first_difference(proven, given)
    where = f"first difference at byte {at}" if at is not None else "one is a prefix of the other"
    return ProofMismatch(
        f"the proven value is not the {what} given ({where}; lengths {len(proven)} and "
        f"{len(given)}; keccak256 of each shown)",
        check=check,
        expected="0x" + keccak256(proven).hex(),
        computed="0x" + keccak256(given).hex(),
    )


def _first_difference(a: bytes, b: bytes, *, chunk: int = 4096) -> int | None:
    """The first index where ``a`` and ``b`` differ, or None if one is a prefix of the other.

    Chunks are compared by C-level slicing, so megabytes of equal prefix cost microseconds,
    not a Python step per byte.
    """
    common = min(len(a), len(b))
    for start in range(0, common, chunk):
        end = min(start + chunk, common)
        if a[start:end] != b[start:end]:
            return next(i for i in range(start, end) if a[i] != b[i])
    return None
