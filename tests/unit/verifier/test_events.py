"""Strict event decoding: only the exact canonical encoding of the trusted event is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode

from tests.conftest import VectorLoader
from verifier.errors import MalformedEvidence, VerificationError
from verifier.events import decode_event, parse_event_abi
from verifier.hashing import keccak256, sm3
from verifier.types import DecodedLog

MESSAGE = {
    "type": "event",
    "name": "CrossChainMessage",
    "inputs": [
        {"name": "seq", "type": "uint64", "indexed": True},
        {"name": "dstChain", "type": "string"},
        {"name": "payload", "type": "bytes"},
    ],
}


def _entry(types: list[str], indexed: int = 0, name: str = "E") -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "inputs": [
            {"name": f"a{i}", "type": t, "indexed": i < indexed} for i, t in enumerate(types)
        ],
    }


def _log(topics: list[bytes], data: bytes) -> DecodedLog:
    return DecodedLog(address=b"\x11" * 20, topics=tuple(topics), data=data)


def _message_log(seq: int = 5, data: bytes | None = None) -> DecodedLog:
    body = abi_encode(["string", "bytes"], ["anvil-demo", b"hello"]) if data is None else data
    topic0 = keccak256(b"CrossChainMessage(uint64,string,bytes)")
    return _log([topic0, seq.to_bytes(32, "big")], body)


def test_message_event_decodes() -> None:
    event = parse_event_abi(MESSAGE)
    assert event.signature == "CrossChainMessage(uint64,string,bytes)"
    decoded = decode_event(_message_log(), event, keccak256)
    assert decoded.args == (("seq", 5), ("dstChain", "anvil-demo"), ("payload", b"hello"))
    assert decoded.as_json()["args"] == {
        "seq": "5",
        "dstChain": "anvil-demo",
        "payload": "0x68656c6c6f",
    }


def test_topic0_uses_the_chains_hash() -> None:
    """On a FISCO SM chain the compiler's event selector is SM3 of the signature."""
    event = parse_event_abi(MESSAGE)
    log = _message_log()
    sm_log = _log([sm3(event.signature.encode()), *log.topics[1:]], log.data)
    assert decode_event(sm_log, event, sm3).args[0] == ("seq", 5)
    with pytest.raises(VerificationError, match="topic 0"):
        decode_event(log, event, sm3)


def test_following_logs_bytes_in_data_are_refused() -> None:
    """A FISCO receipt hash cannot separate a log's data from the next log: the bytes of a
    second log (address text, topics, data) appended to the data are refused."""
    log = _message_log()
    second = b"ab" * 20 + b"\x22" * 64 + abi_encode(["string", "bytes"], ["x", b"y"])
    with pytest.raises(VerificationError, match="bytes after the encoding") as info:
        decode_event(_log(list(log.topics), log.data + second), parse_event_abi(MESSAGE), keccak256)
    assert info.value.check == "event"


@pytest.mark.parametrize(
    "change",
    ["truncated", "dirty-offset", "aliased-tail", "dirty-padding", "extra-word"],
)
def test_non_canonical_data_is_refused(change: str) -> None:
    data = bytearray(abi_encode(["string", "bytes"], ["anvil-demo", b"hello"]))
    if change == "truncated":
        data = data[:-1]
    elif change == "dirty-offset":
        data[31] += 32  # the string's offset points one word further
        data += bytes(32)
    elif change == "aliased-tail":
        data[63] = data[31]  # both offsets point at the same tail
    elif change == "dirty-padding":
        data[-1] = 1
    else:
        data += bytes(32)
    with pytest.raises(VerificationError) as info:
        decode_event(_message_log(data=bytes(data)), parse_event_abi(MESSAGE), keccak256)
    assert info.value.check == "event"


@pytest.mark.parametrize("count", [1, 3])
def test_topic_count_must_match_the_abi(count: int) -> None:
    """32-byte words cannot move between the last topic and the data."""
    log = _message_log()
    topics = [*log.topics, b"\x00" * 32][:count]
    with pytest.raises(VerificationError, match="topics") as info:
        decode_event(_log(topics, log.data), parse_event_abi(MESSAGE), keccak256)
    assert info.value.check == "event"


def test_indexed_value_types_must_be_canonical_words() -> None:
    """An indexed address with dirty high bytes (or a bool of 2) is not that value's topic."""
    event = parse_event_abi(_entry(["address", "bool"], indexed=2))
    topic0 = event.topic0(keccak256)
    good = [topic0, bytes(12) + b"\x33" * 20, (1).to_bytes(32, "big")]
    assert decode_event(_log(good, b""), event, keccak256).args[1] == ("a1", True)
    for bad in (
        [topic0, b"\x01" + bytes(11) + b"\x33" * 20, good[2]],
        [*good[:2], b"\x00" * 31 + b"\x02"],
    ):
        with pytest.raises(VerificationError):
            decode_event(_log(bad, b""), event, keccak256)


def test_indexed_dynamic_values_stay_hashes() -> None:
    event = parse_event_abi(_entry(["string", "uint256[2]"], indexed=2))
    topics = [event.topic0(keccak256), b"\x44" * 32, b"\x55" * 32]
    assert decode_event(_log(topics, b""), event, keccak256).args == (
        ("a0", b"\x44" * 32),
        ("a1", b"\x55" * 32),
    )


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({**MESSAGE, "anonymous": True}, "event.anonymous"),
        ({**MESSAGE, "type": "function"}, "event.type"),
        ({**MESSAGE, "name": "Not a name"}, "event.name"),
        (_entry(["string[]"]), "event.inputs[0].type"),
        (_entry(["bytes[2]"]), "event.inputs[0].type"),
        (_entry(["uint7"]), "event.inputs[0].type"),
        (_entry(["uint256"] * 4, indexed=4), "event.inputs"),
        (_entry(["uint256"] * 33), "event.inputs"),
        (
            {"type": "event", "name": "E", "inputs": [{"type": "tuple", "components": []}]},
            "event.inputs[0].components",
        ),
    ],
)
def test_event_definitions_that_are_not_evidence(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedEvidence) as info:
        parse_event_abi(entry)
    assert info.value.field == field


def test_tuples_canonicalise_into_the_signature() -> None:
    entry = {
        "type": "event",
        "name": "Delivered",
        "inputs": [
            {"name": "id", "type": "bytes32", "indexed": True},
            {
                "name": "m",
                "type": "tuple",
                "components": [{"type": "uint"}, {"type": "string"}, {"type": "bytes32[]"}],
            },
        ],
    }
    event = parse_event_abi(entry)
    assert event.signature == "Delivered(bytes32,(uint256,string,bytes32[]))"
    data = abi_encode(["(uint256,string,bytes32[])"], [(1, "x", [b"\x01" * 32])])
    decoded = decode_event(_log([event.topic0(keccak256), b"\x09" * 32], data), event, keccak256)
    assert decoded.args[1] == ("m", (1, "x", (b"\x01" * 32,)))


@pytest.mark.vectors
def test_ethereum_foundation_abi_vectors(shared_vector: VectorLoader) -> None:
    """ABITests/basic_abi_tests.json: each encoding decodes to its args, strictly; one byte
    more or less is refused."""
    cases = shared_vector("peer/ethereum-tests/abi_basic_abi_tests.json")
    assert cases
    for name, case in cases.items():
        event = parse_event_abi(_entry(case["types"], name=name))
        data = bytes.fromhex(case["result"])
        topics = [event.topic0(keccak256)]
        values = [v for _, v in decode_event(_log(topics, data), event, keccak256).args]
        assert values == [_expected(t, a) for t, a in zip(case["types"], case["args"], strict=True)]
        for bad in (data + b"\x00", data[:-1], data + bytes(32)):
            with pytest.raises(VerificationError):
                decode_event(_log(topics, bad), event, keccak256)


def _expected(abi_type: str, arg: Any) -> Any:
    if abi_type.startswith("bytes"):
        return arg.encode() if isinstance(arg, str) else arg
    if abi_type == "address":
        return arg
    if abi_type.endswith("[]"):
        return tuple(arg)
    return arg


@pytest.mark.parametrize(("count", "refused"), [(4, False), (5, True)])
def test_dynamic_values_in_the_data_are_bounded(count: int, refused: bool) -> None:
    """Offsets can alias one tail; with at most 4 dynamic values (a tuple counts itself and
    its dynamic members) aliasing inside a tuple stays at most three-fold."""
    entry = _entry(["string"] * (count - 2) + ["(bytes,uint8)"])
    if refused:
        with pytest.raises(MalformedEvidence, match="dynamic values"):
            parse_event_abi(entry)
    else:
        assert parse_event_abi(entry).signature.endswith(",(bytes,uint8))")


def test_aliased_tails_through_tuples_are_refused_up_front() -> None:
    """From the adversarial benchmark: 32 tuples of 32 uint256[] aliasing one tail decoded a
    34 KB input 1,024 times over; such a definition is refused before any decoding."""
    components = [{"type": "uint256[]"}] * 32
    entry = {
        "type": "event",
        "name": "E",
        "inputs": [{"name": f"a{i}", "type": "tuple", "components": components} for i in range(32)],
    }
    with pytest.raises(MalformedEvidence, match="1056 dynamic values"):
        parse_event_abi(entry)


def test_aliased_top_level_offsets_are_refused_before_decoding() -> None:
    event = parse_event_abi(_entry(["bytes"] * 4))
    tail = (1024).to_bytes(32, "big") + b"\x01" * 1024
    data = (128).to_bytes(32, "big") * 4 + tail
    with pytest.raises(VerificationError, match="offset 128 at byte 32 is not canonical"):
        decode_event(_log([event.topic0(keccak256)], data), event, keccak256)


def test_offsets_are_checked_after_static_heads() -> None:
    """A static array and a static tuple before a string take their full size in the head."""
    types = ["uint8[2]", "(uint8,bytes32)", "string"]
    event = parse_event_abi(_entry(types))
    data = abi_encode(types, [[1, 2], (3, b"\x04" * 32), "ok"])
    assert decode_event(_log([event.topic0(keccak256)], data), event, keccak256).args[2] == (
        "a2",
        "ok",
    )
    assert int.from_bytes(data[128:160], "big") == 160  # the head: 64 + 64 + 32 bytes
    bad = data[:128] + (192).to_bytes(32, "big") + data[160:] + bytes(32)
    with pytest.raises(VerificationError, match="not canonical"):
        decode_event(_log([event.topic0(keccak256)], bad), event, keccak256)


def test_aliasing_inside_a_tuple_is_refused_by_the_comparison() -> None:
    event = parse_event_abi(_entry(["(bytes,bytes,bytes)"]))
    data = (32).to_bytes(32, "big") + (96).to_bytes(32, "big") * 3
    data += (64).to_bytes(32, "big") + b"\x01" * 64
    with pytest.raises(VerificationError, match="non-canonical"):
        decode_event(_log([event.topic0(keccak256)], data), event, keccak256)
