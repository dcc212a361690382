"""FISCO BCOS 3.x transaction hashes and senders.

The hash covers ``TransactionData`` only, as a plain concatenation (``TarsHashable.h``)::

    be_i32(version) ‖ chainID ‖ groupID ‖ be_i64(blockLimit) ‖ nonce ‖ to ‖ input ‖ abi
    version >= 1:  ‖ value ‖ gasPrice ‖ be_i64(gasLimit) ‖ maxFeePerGas ‖ maxPriorityFeePerGas
    version >= 2:  ‖ extension

Strings are their raw bytes, no length prefixes. ``importTime``, ``attribute``, ``extraData``,
``from`` and ``signature`` are not hashed. ``to`` is hashed exactly as the client sent it
(``"0x41a1…"``, or ``""`` for a deploy).

The JSON ``nonce`` changed form in node 3.3.0: before, the raw nonce string (a decimal string
for SDK-made transactions); since, the hex of the raw nonce bytes. The form depends on the
binary of the node that answered, which the header's compatibility ``version`` only
approximates (``nonce_encoding_for_version``); a decimal nonce of even length is also valid
hex, so the form cannot be detected from the value and must be configured or derived.

The v1/v2 fields follow the node source (not checked against real v1/v2 data): the JSON
strings ``value``, ``gasPrice``, ``maxFeePerGas``, ``maxPriorityFeePerGas`` are hashed as
printed (a node that re-formats ``value`` as a quantity would break this), ``gasLimit`` is a
JSON int and ``extension`` either ``0x``-hex or the list of byte values newer nodes print.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from verifier.encoding import (
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    parse_str,
    raw_bytes,
    require,
    utf8_bytes,
)
from verifier.errors import MalformedEvidence, VerificationError
from verifier.hashing import CryptoSuite, Hasher, keccak256, sm3
from verifier.signatures import secp256k1, sm2

NonceEncoding = Literal["hex", "decimal"]

HEX_NONCE_SINCE: Final = 0x03030000
"""Compatibility version 3.3.0: the first node release printing the nonce as hex."""
SM2_TX_SIGNATURE_LENGTH: Final = 128
_CHECK: Final = "transaction_signature"


def nonce_encoding_for_version(header_version: int) -> NonceEncoding:
    """``"hex"`` for compatibility version >= 3.3.0 (``0x03030000``), else ``"decimal"``."""
    version = parse_int(header_version, "header_version", bits=32)
    return "hex" if version >= HEX_NONCE_SINCE else "decimal"


def compute_transaction_hash(
    tx: Mapping[str, Any], hasher: Hasher, *, nonce_encoding: NonceEncoding
) -> bytes:
    """The transaction hash recomputed from ``getTransaction`` JSON."""
    tx = parse_object(tx, "tx")
    version = parse_int(require(tx, "version", "tx"), "tx.version", bits=32)
    extra: dict[str, Any] = {}
    if version >= 1:
        extra = {
            "value": _json_str(tx, "value"),
            "gas_price": _json_str(tx, "gasPrice"),
            "gas_limit": parse_int(require(tx, "gasLimit", "tx"), "tx.gasLimit"),
            "max_fee_per_gas": _json_str(tx, "maxFeePerGas"),
            "max_priority_fee_per_gas": _json_str(tx, "maxPriorityFeePerGas"),
        }
    if version >= 2:
        extra["extension"] = _parse_extension(require(tx, "extension", "tx"))
    return compute_transaction_hash_from_fields(
        version,
        _json_str(tx, "chainID"),
        _json_str(tx, "groupID"),
        parse_int(require(tx, "blockLimit", "tx"), "tx.blockLimit"),
        parse_nonce(require(tx, "nonce", "tx"), nonce_encoding),
        _json_str(tx, "to"),
        parse_hex(require(tx, "input", "tx"), "tx.input"),
        _json_str(tx, "abi"),
        hasher=hasher,
        **extra,
    )


def compute_transaction_hash_from_fields(  # noqa: PLR0917 - the TransactionData order
    version: int,
    chain_id: str,
    group_id: str,
    block_limit: int,
    nonce: bytes,
    to: str,
    input: bytes,
    abi: str,
    *,
    hasher: Hasher,
    value: str = "",
    gas_price: str = "",
    gas_limit: int = 0,
    max_fee_per_gas: str = "",
    max_priority_fee_per_gas: str = "",
    extension: bytes = b"",
) -> bytes:
    """The transaction hash from typed ``TransactionData`` fields (``nonce`` = raw nonce bytes).

    The v1 fields (``value`` … ``max_priority_fee_per_gas``) are hashed only from version 1,
    ``extension`` only from version 2; giving a non-default one to an older version raises,
    since it would be silently left out of the hash.
    """
    version = parse_int(version, "version", bits=32)
    parts = [
        version.to_bytes(4, "big"),
        utf8_bytes(chain_id, "chain_id"),
        utf8_bytes(group_id, "group_id"),
        parse_int(block_limit, "block_limit").to_bytes(8, "big"),
        raw_bytes(nonce, "nonce"),
        utf8_bytes(to, "to"),
        raw_bytes(input, "input"),
        utf8_bytes(abi, "abi"),
    ]
    v1 = (value, gas_price, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)
    if version >= 1:
        parts += (utf8_bytes(value, "value"), utf8_bytes(gas_price, "gas_price"))
        parts.append(parse_int(gas_limit, "gas_limit").to_bytes(8, "big"))
        parts += (utf8_bytes(max_fee_per_gas, "max_fee_per_gas"),)
        parts += (utf8_bytes(max_priority_fee_per_gas, "max_priority_fee_per_gas"),)
    elif v1 != ("", "", 0, "", ""):
        raise MalformedEvidence("value/gas fields are only hashed from version 1", field="version")
    if version >= 2:
        parts.append(raw_bytes(extension, "extension"))
    elif extension:
        raise MalformedEvidence("extension is only hashed from version 2", field="version")
    return hasher(b"".join(parts))


def recover_transaction_sender(tx_hash: bytes, signature: bytes, suite: CryptoSuite) -> bytes:
    """The 20-byte sender of a transaction signed over ``tx_hash``.

    secp256k1: 65 bytes ``r ‖ s ‖ v``, sender ``keccak256(recovered key)[12:]``.
    SM2: 128 bytes ``r ‖ s ‖ public key``, the signature must verify (ZA, default ID) against
    the embedded key, sender ``sm3(key)[12:]``. Raises ``VerificationError`` with
    ``check="transaction_signature"``.
    """
    if not isinstance(tx_hash, bytes) or len(tx_hash) != 32:
        raise MalformedEvidence("not a 32-byte hash", check=_CHECK, field="tx_hash")
    if not isinstance(signature, bytes):
        raise MalformedEvidence("signature must be bytes", check=_CHECK, field="signature")
    if suite is CryptoSuite.SM3_SM2:
        if len(signature) != SM2_TX_SIGNATURE_LENGTH:
            raise MalformedEvidence(
                f"SM2 transaction signature must be 128 bytes (r‖s‖pub), got {len(signature)}",
                check=_CHECK,
                field="signature",
            )
        public_key = signature[64:]
        if not sm2.verify(public_key, tx_hash, signature[:64]):
            raise VerificationError("SM2 signature does not verify", check=_CHECK)
        return sm3(public_key)[12:]
    if len(signature) != secp256k1.SIGNATURE_LENGTH:
        raise MalformedEvidence(
            f"secp256k1 transaction signature must be 65 bytes, got {len(signature)}",
            check=_CHECK,
            field="signature",
        )
    return keccak256(secp256k1.recover_public_key(tx_hash, signature, check=_CHECK))[12:]


def parse_nonce(value: object, encoding: NonceEncoding) -> bytes:
    """The raw nonce bytes from a ``getTransaction`` JSON ``nonce`` printed in ``encoding``."""
    if encoding == "hex":
        return parse_hex(value, "tx.nonce", prefix="forbidden")
    if encoding == "decimal":
        return utf8_bytes(value, "tx.nonce")
    raise MalformedEvidence(f"unknown nonce encoding {encoding!r}", field="nonce_encoding")


def _parse_extension(value: object) -> bytes:
    if isinstance(value, str):
        return parse_hex(value, "tx.extension")
    items = parse_list(value, "tx.extension")
    return bytes(parse_int(b, f"tx.extension[{i}]", bits=9) for i, b in enumerate(items))


def _json_str(tx: Mapping[str, Any], key: str) -> str:
    value = parse_str(require(tx, key, "tx"), f"tx.{key}")
    utf8_bytes(value, f"tx.{key}")
    return value
