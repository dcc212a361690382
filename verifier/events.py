"""Strict event decoding: a log counts as an event only if it is exactly that event's encoding.

A log is evidence of an event only when it is decoded against the event it must be, and
nothing else fits. So, for a non-anonymous event ``Name(T1 indexed a, T2 b, ...)``:

* the log has exactly ``1 + (number of indexed inputs)`` topics, and topic 0 is the hash of the
  canonical signature ``Name(T1,T2,...)`` under the chain's hash (keccak256, or SM3 on a FISCO
  SM chain, where the compiler's event selector is SM3);
* an indexed input of a value type is its 32-byte ABI word, re-encoded and compared (an
  address with dirty high bytes or a bool of 2 is refused); an indexed dynamic input (string,
  bytes, arrays, tuples) is kept as the 32-byte hash the topic holds;
* ``data`` is exactly the canonical ABI encoding of the non-indexed inputs: decoded with
  ``eth-abi`` and re-encoded, the bytes must be equal, so trailing bytes (e.g. the bytes of a
  following log that a FISCO receipt hash cannot separate from this one), non-canonical
  offsets, aliased tails and dirty padding are all refused.

Anonymous events (no topic 0) are never evidence. ABI offsets can point several heads at one
tail, and the decoder expands each before the re-encoding comparison can refuse the data, so
event definitions are kept to shapes where that stays linear: arrays whose elements are
themselves dynamic (``string[]``, ``bytes[][]``) are refused, and the non-indexed inputs may
hold at most ``MAX_DYNAMIC_HEADS`` dynamic values (strings, bytes, dynamic arrays and tuples,
nested ones included), and the top-level offsets must be the canonical ones (strictly
increasing, the first right after the heads) before anything is decoded, so aliasing is left
only inside a dynamic tuple, at most three-fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import ABITypeError, DecodingError, EncodingError, ParseError
from eth_abi.grammar import ABIType, TupleType, normalize, parse

from verifier.encoding import parse_list, parse_object, parse_str
from verifier.errors import MalformedEvidence, VerificationError
from verifier.hashing import Hasher
from verifier.types import DecodedLog

CHECK: Final = "event"
MAX_EVENT_INPUTS: Final = 32
"""More inputs than any event the gateway relies on; keeps a hostile ABI entry small."""
MAX_DYNAMIC_HEADS: Final = 4
"""Dynamic values in an event's data; the gateway's events have at most 4 (see above)."""
MAX_TOPICS: Final = 4
"""LOG0..LOG4: topic 0 plus at most three indexed inputs."""
_WORD: Final = 32


@dataclass(frozen=True, slots=True)
class EventInput:
    name: str
    type: str
    """Canonical type string, e.g. ``uint256``, ``bytes32[]``, ``(string,uint64)``."""
    indexed: bool


@dataclass(frozen=True, slots=True)
class EventAbi:
    """A non-anonymous event definition, checked and canonicalised."""

    name: str
    inputs: tuple[EventInput, ...]

    @property
    def signature(self) -> str:
        """The canonical signature whose hash is topic 0: ``Name(type1,type2,...)``."""
        return f"{self.name}({','.join(i.type for i in self.inputs)})"

    def topic0(self, hasher: Hasher) -> bytes:
        return hasher(self.signature.encode("ascii"))


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """An event decoded strictly from a log; ``args`` in declaration order."""

    signature: str
    args: tuple[tuple[str, Any], ...]

    def as_json(self) -> dict[str, object]:
        return {
            "signature": self.signature,
            "args": {name or f"arg{i}": _json_value(v) for i, (name, v) in enumerate(self.args)},
        }


def parse_event_abi(entry: object, path: str = "event") -> EventAbi:
    """An event from its JSON ABI entry (``{"type": "event", "name", "inputs", ...}``)."""
    obj = parse_object(entry, path)
    kind = obj.get("type", "event")
    if kind != "event":
        raise MalformedEvidence(f"not an event ABI entry (type {kind!r})", field=f"{path}.type")
    if obj.get("anonymous", False) is not False:
        raise MalformedEvidence(
            "anonymous events have no topic 0 and are never evidence", field=f"{path}.anonymous"
        )
    name = parse_str(obj.get("name"), f"{path}.name")
    if not name.isascii() or not name.isidentifier():
        raise MalformedEvidence(f"not an event name: {name!r}", field=f"{path}.name")
    raw_inputs = parse_list(obj.get("inputs", []), f"{path}.inputs")
    if len(raw_inputs) > MAX_EVENT_INPUTS:
        raise MalformedEvidence(f"more than {MAX_EVENT_INPUTS} inputs", field=f"{path}.inputs")
    inputs = tuple(_parse_input(item, f"{path}.inputs[{i}]") for i, item in enumerate(raw_inputs))
    if 1 + sum(i.indexed for i in inputs) > MAX_TOPICS:
        raise MalformedEvidence("more than 3 indexed inputs", field=f"{path}.inputs")
    heads = sum(_dynamic_heads(parse(i.type)) for i in inputs if not i.indexed)
    if heads > MAX_DYNAMIC_HEADS:
        raise MalformedEvidence(
            f"{heads} dynamic values in the data, at most {MAX_DYNAMIC_HEADS}",
            field=f"{path}.inputs",
        )
    return EventAbi(name=name, inputs=inputs)


def decode_event(log: DecodedLog, event: EventAbi, hasher: Hasher) -> DecodedEvent:
    """Decode ``log`` as ``event`` or raise ``VerificationError`` (check ``"event"``)."""
    indexed = [i for i in event.inputs if i.indexed]
    if len(log.topics) != 1 + len(indexed):
        raise VerificationError(
            f"{event.signature} has {1 + len(indexed)} topics, the log has {len(log.topics)}",
            check=CHECK,
        )
    expected = event.topic0(hasher)
    if log.topics[0] != expected:
        raise VerificationError(
            f"topic 0 is 0x{log.topics[0].hex()}, not {event.signature} (0x{expected.hex()})",
            check=CHECK,
        )
    topic_values = [
        _decode_topic(item, topic, position)
        for position, (item, topic) in enumerate(zip(indexed, log.topics[1:], strict=True), 1)
    ]
    data_types = [i.type for i in event.inputs if not i.indexed]
    data_values = _decode_data(data_types, log.data, event.signature)
    topics_iter, data_iter = iter(topic_values), iter(data_values)
    args = tuple(
        (i.name, next(topics_iter) if i.indexed else next(data_iter)) for i in event.inputs
    )
    return DecodedEvent(signature=event.signature, args=args)


def _parse_input(item: object, path: str) -> EventInput:
    obj = parse_object(item, path)
    indexed = obj.get("indexed", False)
    if not isinstance(indexed, bool):
        raise MalformedEvidence("must be true or false", field=f"{path}.indexed")
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise MalformedEvidence("must be a string", field=f"{path}.name")
    return EventInput(name=name, type=_canonical_type(obj, path), indexed=indexed)


def _canonical_type(obj: Mapping[str, Any], path: str) -> str:
    text = parse_str(obj.get("type"), f"{path}.type")
    if text.startswith("tuple"):
        components = parse_list(obj.get("components"), f"{path}.components")
        if not components or len(components) > MAX_EVENT_INPUTS:
            raise MalformedEvidence(
                f"a tuple needs 1 to {MAX_EVENT_INPUTS} components", field=f"{path}.components"
            )
        inner = ",".join(
            _canonical_type(parse_object(c, f"{path}.components[{k}]"), f"{path}.components[{k}]")
            for k, c in enumerate(components)
        )
        text = f"({inner}){text[len('tuple') :]}"
    try:
        abi_type = parse(normalize(text))  # type: ignore[no-untyped-call]
        abi_type.validate()
    except (ParseError, ABITypeError, ValueError) as exc:
        raise MalformedEvidence(f"not an ABI type: {text!r}", field=f"{path}.type") from exc
    _refuse_aliasing(abi_type, f"{path}.type")
    return str(abi_type.to_type_str())


def _refuse_aliasing(abi_type: ABIType, field: str) -> None:
    if abi_type.is_array and abi_type.item_type.is_dynamic:
        raise MalformedEvidence(
            f"{abi_type}: arrays of dynamic elements are not accepted in evidence",
            field=field,
        )
    if abi_type.is_array:
        _refuse_aliasing(abi_type.item_type, field)
    if isinstance(abi_type, TupleType):
        for component in abi_type.components:
            _refuse_aliasing(component, field)


def _dynamic_heads(abi_type: ABIType) -> int:
    """How many offsets the encoding of ``abi_type`` holds, its own included."""
    if not abi_type.is_dynamic:
        return 0
    if isinstance(abi_type, TupleType) and not abi_type.is_array:
        return 1 + sum(_dynamic_heads(c) for c in abi_type.components)
    return 1  # string, bytes, or an array of static elements (dynamic elements are refused)


def _decode_topic(item: EventInput, topic: bytes, position: int) -> Any:
    abi_type = parse(item.type)
    if abi_type.is_dynamic or abi_type.is_array or isinstance(abi_type, TupleType):
        return topic  # the topic holds the hash of the value, not the value
    (value,) = _decode_data([item.type], topic, f"topic {position} ({item.type})")
    return value


def _check_offsets(types: list[str], data: bytes, what: str) -> None:
    """Top-level offsets as a canonical encoding has them, checked on the raw words before
    decoding: strictly increasing, the first right after the heads, none past the end."""
    abi_types = [parse(t) for t in types]
    head = sum(_head_size(t) for t in abi_types)
    position, previous = 0, None
    for abi_type in abi_types:
        if abi_type.is_dynamic:
            offset = int.from_bytes(data[position : position + _WORD], "big")
            expected_min = head if previous is None else previous + _WORD
            if (previous is None and offset != head) or offset < expected_min:
                raise VerificationError(
                    f"{what}: offset {offset} at byte {position} is not canonical "
                    "(offsets must increase, the first right after the heads)",
                    check=CHECK,
                )
            if offset > len(data):
                raise VerificationError(
                    f"{what}: offset {offset} at byte {position} is past the data", check=CHECK
                )
            previous = offset
        position += _head_size(abi_type)


def _head_size(abi_type: ABIType) -> int:
    """Bytes a value of ``abi_type`` takes in its enclosing head (32 for a dynamic one)."""
    if abi_type.is_dynamic:
        return _WORD
    if abi_type.is_array:
        count = 1
        for dims in abi_type.arrlist:
            count *= dims[0]
        return count * _head_size(_base(abi_type))
    if isinstance(abi_type, TupleType):
        return sum(_head_size(c) for c in abi_type.components)
    return _WORD


def _base(abi_type: ABIType) -> ABIType:
    while abi_type.is_array:
        abi_type = abi_type.item_type
    return abi_type


def _decode_data(types: list[str], data: bytes, what: str) -> tuple[Any, ...]:
    _check_offsets(types, data, what)
    try:
        values = abi_decode(types, data, strict=True)
        canonical = abi_encode(types, values)
    except (DecodingError, EncodingError, ValueError, TypeError, OverflowError) as exc:
        raise VerificationError(f"{what}: not an ABI encoding: {exc}", check=CHECK) from exc
    if canonical != data:
        extra = len(data) - len(canonical)
        detail = f"{extra} bytes after the encoding" if extra > 0 else "a non-canonical encoding"
        raise VerificationError(
            f"{what}: the data is not the canonical ABI encoding ({detail})", check=CHECK
        )
    return tuple(values)


def _json_value(value: Any) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value
