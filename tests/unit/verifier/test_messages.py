"""Message ids and result hashes: bound to every field, both gateways and the chain's hash."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi.abi import encode

from verifier.errors import MalformedEvidence
from verifier.events import decode_event, parse_event_abi
from verifier.hashing import keccak256, sm3
from verifier.messages import (
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    SEALED_EVENT,
    DeliveryResult,
    DeliveryStatus,
    Message,
    delivery_from_event,
    message_from_event,
    message_id,
    result_hash,
    seal_call_data,
    seal_from_event,
)
from verifier.types import DecodedLog

GATEWAY = bytes.fromhex("11" * 20)
MESSAGE = Message(
    src_chain="fisco-a",
    src_gateway=GATEWAY,
    dst_chain="anvil-b",
    nonce=7,
    sender=bytes.fromhex("22" * 20),
    receiver=bytes.fromhex("33" * 20),
    payload=b"ping",
    timeout=1_800_000_000,
)


def test_message_id_is_the_documented_encoding() -> None:
    expected = keccak256(
        encode(
            ["string", "address", "string", "uint64", "address", "address", "bytes32", "uint64"],
            [
                "fisco-a",
                GATEWAY,
                "anvil-b",
                7,
                b"\x22" * 20,
                b"\x33" * 20,
                keccak256(b"ping"),
                1_800_000_000,
            ],
        )
    )
    assert message_id(MESSAGE, keccak256) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"src_chain": "fisco-b"},
        {"src_gateway": b"\x12" * 20},
        {"dst_chain": "anvil-c"},
        {"nonce": 8},
        {"sender": b"\x23" * 20},
        {"receiver": b"\x34" * 20},
        {"payload": b"pong"},
        {"timeout": 1_800_000_001},
    ],
)
def test_every_field_changes_the_id(change: dict[str, object]) -> None:
    other = dataclasses.replace(MESSAGE, **change)  # type: ignore[arg-type]
    assert message_id(other, keccak256) != message_id(MESSAGE, keccak256)


def test_the_source_chains_hash_is_used_throughout() -> None:
    assert message_id(MESSAGE, sm3) != message_id(MESSAGE, keccak256)
    inner = encode(
        ["string", "address", "string", "uint64", "address", "address", "bytes32", "uint64"],
        ["fisco-a", GATEWAY, "anvil-b", 7, b"\x22" * 20, b"\x33" * 20, sm3(b"ping"), 1_800_000_000],
    )
    assert message_id(MESSAGE, sm3) == sm3(inner)


def test_result_hash_binds_the_destination_gateway_and_status() -> None:
    result = DeliveryResult(b"\x01" * 32, "anvil-b", GATEWAY, DeliveryStatus.SUCCESS, b"ok")
    base = result_hash(result, keccak256)
    assert base == keccak256(
        encode(
            ["bytes32", "string", "address", "uint8", "bytes32"],
            [b"\x01" * 32, "anvil-b", GATEWAY, 1, keccak256(b"ok")],
        )
    )
    for change in (
        {"dst_gateway": b"\x12" * 20},
        {"dst_chain": "anvil-c"},
        {"status": DeliveryStatus.FAILED},
        {"result": b"ok!"},
        {"id": b"\x02" * 32},
    ):
        assert result_hash(dataclasses.replace(result, **change), keccak256) != base


@pytest.mark.parametrize("name", ["", "-a", "A", "a_b", "a" * 33, "fisco a", "ä"])
def test_chain_names_are_strict(name: str) -> None:
    with pytest.raises(MalformedEvidence, match="not a chain name"):
        dataclasses.replace(MESSAGE, dst_chain=name)


def test_addresses_and_integers_are_checked() -> None:
    with pytest.raises(MalformedEvidence, match="20 bytes"):
        dataclasses.replace(MESSAGE, sender=b"\x01" * 19)
    with pytest.raises(MalformedEvidence, match="uint64"):
        dataclasses.replace(MESSAGE, nonce=1 << 64)


def test_seal_call_data_is_the_selector_under_the_chains_hash() -> None:
    assert seal_call_data(keccak256) == bytes.fromhex(
        "3fb27b85"
    )  # eth_utils.function_signature_to_4byte_selector("seal()")
    assert seal_call_data(sm3) == sm3(b"seal()")[:4]


def _log(
    event: dict[str, object], topics: list[bytes], types: list[str], values: list[object]
) -> DecodedLog:
    abi = parse_event_abi(event)
    return DecodedLog(GATEWAY, (abi.topic0(keccak256), *topics), encode(types, values))


def test_events_round_trip_into_messages_results_and_seals() -> None:
    mid = message_id(MESSAGE, keccak256)
    sent = _log(
        MESSAGE_SENT_EVENT,
        [mid],
        ["string", "string", "uint64", "address", "address", "bytes", "uint64"],
        ["fisco-a", "anvil-b", 7, b"\x22" * 20, b"\x33" * 20, b"ping", 1_800_000_000],
    )
    claimed, message = message_from_event(
        decode_event(sent, parse_event_abi(MESSAGE_SENT_EVENT), keccak256), GATEWAY
    )
    assert (claimed, message) == (mid, MESSAGE)

    result = DeliveryResult(mid, "anvil-b", GATEWAY, DeliveryStatus.EXPIRED, b"")
    rh = result_hash(result, keccak256)
    delivered = _log(
        MESSAGE_DELIVERED_EVENT, [mid, rh], ["string", "uint8", "bytes"], ["fisco-a", 3, b""]
    )
    got = delivery_from_event(
        decode_event(delivered, parse_event_abi(MESSAGE_DELIVERED_EVENT), keccak256),
        "anvil-b",
        GATEWAY,
    )
    assert got == (rh, "fisco-a", result)

    sealed = _log(
        SEALED_EVENT, [(5).to_bytes(32, "big")], ["bytes32[]", "bytes32[]"], [[mid], [rh]]
    )
    seal = seal_from_event(decode_event(sealed, parse_event_abi(SEALED_EVENT), keccak256))
    assert (seal.number, seal.sent_ids, seal.result_hashes) == (5, (mid,), (rh,))


def test_an_unknown_status_is_refused() -> None:
    delivered = _log(
        MESSAGE_DELIVERED_EVENT,
        [b"\x01" * 32, b"\x02" * 32],
        ["string", "uint8", "bytes"],
        ["fisco-a", 9, b""],
    )
    event = decode_event(delivered, parse_event_abi(MESSAGE_DELIVERED_EVENT), keccak256)
    with pytest.raises(MalformedEvidence, match="unknown delivery status 9"):
        delivery_from_event(event, "anvil-b", GATEWAY)
