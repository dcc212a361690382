"""Ethereum transactions: EIP-2718 envelopes, hashes and inclusion proofs in ``transactionsRoot``.

The transaction trie maps ``rlp(transactionIndex)`` to the envelope, and the tx hash is
``keccak256(envelope)``:

* legacy: ``rlp([nonce, gasPrice, gas, to, value, input, v, r, s])``, ``v`` as signed (it
  includes the chain id under EIP-155)
* 0x01 (EIP-2930): ``0x01 ‖ rlp([chainId, nonce, gasPrice, gas, to, value, input, accessList,
  yParity, r, s])``
* 0x02 (EIP-1559): ``0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to,
  value, input, accessList, yParity, r, s])``
* 0x03 (EIP-4844): as 0x02 plus ``maxFeePerBlobGas, blobVersionedHashes`` before the signature;
  the block body never holds the network wrapper with blobs, commitments and proofs
* 0x04 (EIP-7702): as 0x02 plus ``authorizationList = [[chainId, address, nonce, yParity, r,
  s], ...]`` before the signature.

``to`` is null for a contract creation (legacy, 0x01, 0x02 only). A legacy tx's ``chainId``
key, which nodes print for EIP-155 txs, is not encoded; it must agree with ``v``. Input is the
standard hex JSON-RPC form (``eth_getBlockByNumber(n, true)``): ``input``, not ``data``;
``yParity`` or, failing that, ``v`` for the typed signature's parity (both must agree when
both are given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from verifier.encoding import parse_hex, parse_list, parse_object, require
from verifier.errors import MalformedEvidence, ProofMismatch
from verifier.evm.fields import UINT64_BYTES, data_bytes, is_absent, quantity, quantity_bytes
from verifier.evm.receipt import receipt_key, value_mismatch
from verifier.hashing import keccak256
from verifier.merkle.mpt import parse_proof_nodes, verify_mpt_proof
from verifier.rlp import RlpItem, encode, encode_uint

_PATH: Final = "transaction"
_CHECK: Final = "transaction_encoding"
_ADDRESS: Final = 20
_HASH: Final = 32
_FEE_1559: Final = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "to")
_SIGNATURE: Final = ("yParity", "r", "s")

TRANSACTION_FIELDS: Final[Mapping[int, tuple[str, ...]]] = {
    0x00: ("nonce", "gasPrice", "gas", "to", "value", "input", "v", "r", "s"),
    0x01: (
        "chainId",
        "nonce",
        "gasPrice",
        "gas",
        "to",
        "value",
        "input",
        "accessList",
        *_SIGNATURE,
    ),
    0x02: (*_FEE_1559, "value", "input", "accessList", *_SIGNATURE),
    0x03: (
        *_FEE_1559,
        "value",
        "input",
        "accessList",
        "maxFeePerBlobGas",
        "blobVersionedHashes",
        *_SIGNATURE,
    ),
    0x04: (*_FEE_1559, "value", "input", "accessList", "authorizationList", *_SIGNATURE),
}
"""RLP field order per transaction type, by JSON-RPC key."""
_UINT64: Final = frozenset({"nonce", "gas"})
_NO_CREATION: Final = frozenset({0x03, 0x04})


def transaction_type(tx: Mapping[str, Any]) -> int:
    """The EIP-2718 type: 0 when ``type`` is absent (pre-Berlin nodes), else 0x0-0x4."""
    if is_absent(tx, "type"):
        return 0
    tx_type = quantity(tx, "type", _PATH, max_bytes=1)
    if tx_type not in TRANSACTION_FIELDS:
        raise MalformedEvidence(
            f"transaction type 0x{tx_type:x} is not one this codec knows (0x0-0x4)",
            field=f"{_PATH}.type",
            check=_CHECK,
        )
    return tx_type


def encode_transaction(tx: Mapping[str, Any]) -> bytes:
    """The EIP-2718 envelope of a JSON-RPC transaction: the transaction trie's value."""
    tx = parse_object(tx, _PATH)
    tx_type = transaction_type(tx)
    if tx_type == 0 and not is_absent(tx, "chainId"):
        _check_legacy_chain_id(tx)
    fields = [_FIELD[name](tx, name, tx_type) for name in TRANSACTION_FIELDS[tx_type]]
    payload = encode(fields)
    return bytes((tx_type,)) + payload if tx_type else payload


def compute_transaction_hash(tx: Mapping[str, Any]) -> bytes:
    """``keccak256(envelope)``, the transaction hash."""
    return keccak256(encode_transaction(tx))


def verify_transaction_proof(
    transactions_root: bytes, tx: Mapping[str, Any], proof_hex: Sequence[str]
) -> bytes:
    """Prove ``tx`` is in the trie under ``transactions_root``; return its envelope.

    When ``tx.hash`` is given it must be ``keccak256(envelope)`` (check ``transaction_hash``);
    the proven value must be the envelope (check ``transaction_proof``).
    """
    tx = parse_object(tx, _PATH)
    key = receipt_key(quantity(tx, "transactionIndex", _PATH, max_bytes=UINT64_BYTES))
    nodes = parse_proof_nodes(proof_hex, check="transaction_proof")
    envelope = encode_transaction(tx)
    if not is_absent(tx, "hash"):
        claimed = data_bytes(tx, "hash", _PATH, length=_HASH)
        computed = keccak256(envelope)
        if computed != claimed:
            raise ProofMismatch(
                "transaction hash differs from keccak256 of its envelope",
                check="transaction_hash",
                expected="0x" + claimed.hex(),
                computed="0x" + computed.hex(),
            )
    proven = verify_mpt_proof(transactions_root, key, nodes, check="transaction_proof")
    if proven != envelope:
        raise value_mismatch(proven, envelope, check="transaction_proof", what="transaction")
    return envelope


def _check_legacy_chain_id(tx: Mapping[str, Any]) -> None:
    """A legacy tx's ``chainId`` is not signed on its own: it must be the one ``v`` encodes."""
    chain_id = quantity(tx, "chainId", _PATH)
    v = quantity(tx, "v", _PATH)
    if v not in (2 * chain_id + 35, 2 * chain_id + 36):
        raise MalformedEvidence(
            f"chainId {chain_id} is not the one v {v} encodes (EIP-155)",
            field=f"{_PATH}.chainId",
            check=_CHECK,
        )


def _uint(tx: Mapping[str, Any], name: str, _tx_type: int) -> bytes:
    max_bytes = UINT64_BYTES if name in _UINT64 else 32
    return quantity_bytes(tx, name, _PATH, max_bytes=max_bytes)


def _data(tx: Mapping[str, Any], name: str, _tx_type: int) -> bytes:
    return data_bytes(tx, name, _PATH)


def _to(tx: Mapping[str, Any], name: str, tx_type: int) -> bytes:
    if is_absent(tx, name):
        if tx_type in _NO_CREATION:
            raise MalformedEvidence(
                f"type 0x{tx_type:x} transactions cannot create contracts", field=f"{_PATH}.to"
            )
        return b""
    return data_bytes(tx, name, _PATH, length=_ADDRESS)


def _y_parity(obj: Mapping[str, Any], path: str) -> bytes:
    parity = None if is_absent(obj, "yParity") else quantity(obj, "yParity", path, max_bytes=1)
    v = None if is_absent(obj, "v") else quantity(obj, "v", path)
    if parity is None and v is None:
        raise MalformedEvidence("missing field (nor is v given)", field=f"{path}.yParity")
    if parity is not None and v is not None and parity != v:
        raise MalformedEvidence(f"yParity {parity} differs from v {v}", field=f"{path}.yParity")
    value = parity if parity is not None else v
    if value not in (0, 1):
        raise MalformedEvidence("must be 0 or 1", field=f"{path}.yParity")
    return encode_uint(value or 0)


def _signature_parity(tx: Mapping[str, Any], _name: str, _tx_type: int) -> bytes:
    return _y_parity(tx, _PATH)


def _access_list(tx: Mapping[str, Any], name: str, _tx_type: int) -> bytes | list[RlpItem]:
    entries = parse_list(require(tx, name, _PATH), f"{_PATH}.{name}")
    out: list[RlpItem] = []
    for i, raw in enumerate(entries):
        path = f"{_PATH}.{name}[{i}]"
        entry = parse_object(raw, path)
        keys = parse_list(require(entry, "storageKeys", path), f"{path}.storageKeys")
        out.append(
            [
                data_bytes(entry, "address", path, length=_ADDRESS),
                [
                    parse_hex(k, f"{path}.storageKeys[{j}]", length=_HASH)
                    for j, k in enumerate(keys)
                ],
            ]
        )
    return out


def _blob_hashes(tx: Mapping[str, Any], name: str, _tx_type: int) -> bytes | list[RlpItem]:
    hashes = parse_list(require(tx, name, _PATH), f"{_PATH}.{name}")
    return [parse_hex(h, f"{_PATH}.{name}[{i}]", length=_HASH) for i, h in enumerate(hashes)]


def _authorizations(tx: Mapping[str, Any], name: str, _tx_type: int) -> bytes | list[RlpItem]:
    entries = parse_list(require(tx, name, _PATH), f"{_PATH}.{name}")
    out: list[RlpItem] = []
    for i, raw in enumerate(entries):
        path = f"{_PATH}.{name}[{i}]"
        auth = parse_object(raw, path)
        out.append(
            [
                quantity_bytes(auth, "chainId", path),
                data_bytes(auth, "address", path, length=_ADDRESS),
                quantity_bytes(auth, "nonce", path, max_bytes=UINT64_BYTES),
                _y_parity(auth, path),
                quantity_bytes(auth, "r", path),
                quantity_bytes(auth, "s", path),
            ]
        )
    return out


_FieldEncoder = Callable[[Mapping[str, Any], str, int], "bytes | list[RlpItem]"]
_FIELD: Final[Mapping[str, _FieldEncoder]] = {
    "chainId": _uint,
    "nonce": _uint,
    "gasPrice": _uint,
    "maxPriorityFeePerGas": _uint,
    "maxFeePerGas": _uint,
    "maxFeePerBlobGas": _uint,
    "gas": _uint,
    "to": _to,
    "value": _uint,
    "input": _data,
    "accessList": _access_list,
    "blobVersionedHashes": _blob_hashes,
    "authorizationList": _authorizations,
    "v": _uint,
    "r": _uint,
    "s": _uint,
    "yParity": _signature_parity,
}
