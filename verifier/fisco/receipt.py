"""FISCO BCOS 3.x receipt hashes and event logs from ``getTransactionReceipt`` JSON.

The hash covers ``TransactionReceiptData`` as a plain concatenation (``TarsHashable.h``)::

    be_i32(version) ‖ gasUsed (ASCII decimal) ‖ contractAddress ‖ be_i32(status) ‖ output
    version >= 1:  ‖ effectiveGasPrice
    Σ logs: address (40 ASCII hex) ‖ Σ topics (32 bytes each) ‖ data
    ‖ be_i64(blockNumber)

JSON traps: the RPC prefixes the stored 40-hex ``contractAddress`` with ``0x``, and the hash
takes it WITHOUT; a log ``address`` is already the bare 40-hex text and is hashed as text.
``transactionHash``, ``from``, ``to``, ``input``, ``message``, ``checksumContractAddress`` and
``hash`` are NOT covered: never trust them from a receipt. EVM receipts only (a WASM
contract's address is a path, rejected here).

Hostile receipts are bounded (``verifier.limits``) before they are decoded: the log count
first, then each log's topics (LOG0 to LOG4: at most 4) and data size on the JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from verifier.encoding import (
    parse_decimal_string,
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    parse_str,
    raw_bytes,
    require,
    utf8_bytes,
)
from verifier.errors import MalformedEvidence
from verifier.hashing import Hasher
from verifier.limits import (
    MAX_LOG_DATA_BYTES,
    MAX_LOGS_PER_RECEIPT,
    MAX_TOPICS_PER_LOG,
    check_count,
)
from verifier.types import DecodedLog

FiscoLog = DecodedLog
"""One log entry: ``address`` 20 bytes, ``topics`` 32 bytes each, ``data``."""

LogFields = tuple[str, Sequence[bytes], bytes]
"""``(address as 40 hex characters, topics, data)``, as the receipt stores a log."""

_ADDRESS_TEXT: Final = re.compile(r"[0-9a-fA-F]{40}")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


def compute_receipt_hash(receipt: Mapping[str, Any], hasher: Hasher) -> bytes:
    """The receipt hash recomputed from ``getTransactionReceipt`` JSON."""
    receipt = parse_object(receipt, "receipt")
    version = parse_int(require(receipt, "version", "receipt"), "receipt.version", bits=32)
    gas_price = ""
    if version >= 1:
        gas_price = parse_str(
            require(receipt, "effectiveGasPrice", "receipt"), "receipt.effectiveGasPrice"
        )
    return compute_receipt_hash_from_fields(
        version,
        parse_decimal_string(require(receipt, "gasUsed", "receipt"), "receipt.gasUsed"),
        _parse_contract_address(require(receipt, "contractAddress", "receipt")),
        parse_int(require(receipt, "status", "receipt"), "receipt.status", bits=32),
        parse_hex(require(receipt, "output", "receipt"), "receipt.output"),
        _parse_logs(receipt),
        parse_int(require(receipt, "blockNumber", "receipt"), "receipt.blockNumber"),
        gas_price,
        hasher=hasher,
    )


def compute_receipt_hash_from_fields(  # noqa: PLR0917 - the TransactionReceiptData order
    version: int,
    gas_used: str,
    contract_address: str,
    status: int,
    output: bytes,
    logs: Sequence[LogFields],
    block_number: int,
    effective_gas_price: str = "",
    *,
    hasher: Hasher,
) -> bytes:
    """The receipt hash from typed fields, as stored: ``contract_address`` is 40 hex characters
    without ``0x`` (or ``""``), ``gas_used`` a decimal string, log addresses 40 hex characters.

    ``effective_gas_price`` is hashed only from version 1; a non-empty one with version 0
    raises, since it would be silently left out.
    """
    version = parse_int(version, "version", bits=32)
    if not isinstance(gas_used, str) or not _DECIMAL.fullmatch(gas_used):
        raise MalformedEvidence(f"not a decimal string: {gas_used!r}", field="gas_used")
    if not isinstance(contract_address, str) or not (
        contract_address == "" or _ADDRESS_TEXT.fullmatch(contract_address)
    ):
        raise MalformedEvidence(
            "must be 40 hex characters (no 0x) or empty", field="contract_address"
        )
    parts = [
        version.to_bytes(4, "big"),
        gas_used.encode("ascii"),
        contract_address.encode("ascii"),
        parse_int(status, "status", bits=32).to_bytes(4, "big"),
        raw_bytes(output, "output"),
    ]
    if version >= 1:
        parts.append(utf8_bytes(effective_gas_price, "effective_gas_price"))
    elif effective_gas_price != "":
        raise MalformedEvidence("only hashed from version 1", field="effective_gas_price")
    check_count(len(logs), MAX_LOGS_PER_RECEIPT, field="logs", what="logs")
    for i, log in enumerate(logs):
        parts += _log_parts(log, i)
    parts.append(parse_int(block_number, "block_number").to_bytes(8, "big"))
    return hasher(b"".join(parts))


def decode_log_entries(receipt: Mapping[str, Any]) -> tuple[FiscoLog, ...]:
    """The receipt's logs as bytes (validate the receipt with its hash before trusting them)."""
    receipt = parse_object(receipt, "receipt")
    return tuple(
        FiscoLog(address=bytes.fromhex(address), topics=tuple(topics), data=data)
        for address, topics, data in _parse_logs(receipt)
    )


def _log_parts(log: LogFields, i: int) -> list[bytes]:
    if not isinstance(log, tuple | list) or len(log) != 3:
        raise MalformedEvidence("expected (address, topics, data)", field=f"logs[{i}]")
    address, topics, data = log
    if not isinstance(address, str) or not _ADDRESS_TEXT.fullmatch(address):
        raise MalformedEvidence("must be 40 hex characters (no 0x)", field=f"logs[{i}].address")
    if isinstance(topics, bytes | str) or not isinstance(topics, Sequence):
        raise MalformedEvidence("expected a list of topics", field=f"logs[{i}].topics")
    check_count(len(topics), MAX_TOPICS_PER_LOG, field=f"logs[{i}].topics", what="topics")
    parts = [address.encode("ascii")]
    for k, topic in enumerate(topics):
        if not isinstance(topic, bytes) or len(topic) != 32:
            raise MalformedEvidence("topic must be 32 bytes", field=f"logs[{i}].topics[{k}]")
        parts.append(topic)
    data = raw_bytes(data, f"logs[{i}].data")
    check_count(len(data), MAX_LOG_DATA_BYTES, field=f"logs[{i}].data", what="bytes")
    parts.append(data)
    return parts


def _parse_contract_address(value: object) -> str:
    text = parse_str(value, "receipt.contractAddress")
    if text == "":
        return ""
    if text[:2] != "0x" or not _ADDRESS_TEXT.fullmatch(text[2:]):
        raise MalformedEvidence(
            "expected 0x + 40 hex characters or an empty string", field="receipt.contractAddress"
        )
    return text[2:]


def _parse_logs(receipt: Mapping[str, Any]) -> list[LogFields]:
    logs: list[LogFields] = []
    entries = parse_list(require(receipt, "logEntries", "receipt"), "receipt.logEntries")
    check_count(len(entries), MAX_LOGS_PER_RECEIPT, field="receipt.logEntries", what="logs")
    for i, item in enumerate(entries):
        path = f"receipt.logEntries[{i}]"
        entry = parse_object(item, path)
        address = parse_str(require(entry, "address", path), f"{path}.address")
        if not _ADDRESS_TEXT.fullmatch(address):
            raise MalformedEvidence("must be 40 hex characters (no 0x)", field=f"{path}.address")
        raw_topics = parse_list(require(entry, "topics", path), f"{path}.topics")
        check_count(len(raw_topics), MAX_TOPICS_PER_LOG, field=f"{path}.topics", what="topics")
        topics = [
            parse_hex(topic, f"{path}.topics[{k}]", length=32) for k, topic in enumerate(raw_topics)
        ]
        data = require(entry, "data", path)
        if isinstance(data, str):  # checked on the text, before decoding it
            size = (len(data) - 1) // 2  # "0x" and two digits a byte: an upper bound
            check_count(size, MAX_LOG_DATA_BYTES, field=f"{path}.data", what="bytes of data")
        logs.append((address, topics, parse_hex(data, f"{path}.data")))
    return logs
