"""relay/grpc/convert.py: round trips through the wire format, and strictness on hostile input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protos.interop.v1 import common_pb2, relay_pb2
from relay.grpc.convert import (
    MALFORMED_CHECK,
    MAX_GRPC_MESSAGE_BYTES,
    MAX_REASON_CHARS,
    ConversionError,
    ack_item_from_proto,
    ack_item_to_proto,
    ack_items_from_request,
    bundle_from_json,
    bundle_to_json,
    forward_item_from_proto,
    forward_item_to_proto,
    forward_items_from_request,
    merge_verdicts,
    message_from_proto,
    message_to_proto,
    result_from_proto,
    result_to_proto,
    verdict_from_proto,
    verdict_to_proto,
    verdicts_from_response,
)
from relay.links import AckItem, ForwardItem, Verdict, VerdictKind
from verifier.limits import LIMIT_CHECK, MAX_BUNDLE_BYTES
from verifier.messages import DeliveryResult, DeliveryStatus, Message

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def bundle() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (EXAMPLES / "evm-receipt-with-log.json").read_text(encoding="utf-8")
    )
    return data


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = {
        "src_chain": "anvil-local",
        "src_gateway": b"\x11" * 20,
        "dst_chain": "fisco-local",
        "nonce": 7,
        "sender": b"\x22" * 20,
        "receiver": b"\x33" * 20,
        "payload": b"ping \x00\xff",
        "timeout": 1_900_000_000,
    }
    fields.update(changes)
    return Message(**fields)


def result(**changes: Any) -> DeliveryResult:
    fields: dict[str, Any] = {
        "id": b"\xaa" * 32,
        "dst_chain": "fisco-local",
        "dst_gateway": b"\x44" * 20,
        "status": DeliveryStatus.FAILED,
        "result": b"\x08\xc3\x79\xa0",
    }
    fields.update(changes)
    return DeliveryResult(**fields)


def wire(proto: Any) -> Any:
    """Through bytes, as a peer would receive it."""
    return type(proto).FromString(proto.SerializeToString())


def test_forward_item_round_trips_through_bytes() -> None:
    item = ForwardItem(id=b"\x01" * 32, message=message(), bundle=bundle(), endpoint="http://a:1")
    back = forward_item_from_proto(wire(forward_item_to_proto(item)))
    assert back == item
    assert back.bundle == bundle()


def test_ack_item_round_trips_for_every_status() -> None:
    for status in DeliveryStatus:
        res = result(status=status)
        item = AckItem(id=res.id, result=res, bundle=bundle(), endpoint="")
        assert ack_item_from_proto(wire(ack_item_to_proto(item))) == item


def test_delivery_status_numbers_match_the_contract() -> None:
    """The proto enum uses the on-chain values, so clients in any language can compare them."""
    for status in DeliveryStatus:
        assert result_to_proto(result(status=status)).status == int(status)


@given(
    nonce=st.integers(0, 2**64 - 1),
    timeout=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=300),
    src=st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True),
)
def test_any_valid_message_round_trips(nonce: int, timeout: int, payload: bytes, src: str) -> None:
    m = message(nonce=nonce, timeout=timeout, payload=payload, src_chain=src)
    assert message_from_proto(wire(message_to_proto(m))) == m


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: setattr(p.message, "src_gateway", b"\x11" * 19), "items[0].message.src_gateway"),
        (lambda p: setattr(p.message, "sender", b"\x11" * 32), "items[0].message.sender"),
        (lambda p: setattr(p.message, "receiver", b""), "items[0].message.receiver"),
        (lambda p: setattr(p.message, "src_chain", "Anvil"), "items[0].message.src_chain"),
        (lambda p: setattr(p.message, "dst_chain", "-x"), "items[0].message.dst_chain"),
        (lambda p: setattr(p.message, "dst_chain", "a" * 33), "items[0].message.dst_chain"),
        (lambda p: setattr(p, "id", b"\x01" * 31), "items[0].id"),
        (lambda p: p.ClearField("message"), "items[0].message"),
        (lambda p: p.ClearField("evidence"), "items[0].evidence"),
        (lambda p: setattr(p.evidence, "bundle_json", b""), "items[0].evidence.bundle_json"),
        (lambda p: setattr(p.evidence, "bundle_json", b"{"), "items[0].evidence.bundle_json"),
        (lambda p: setattr(p.evidence, "bundle_json", b"[1]"), "items[0].evidence.bundle_json"),
        (
            lambda p: setattr(p.evidence, "bundle_json", b"\xff\xfe{}"),
            "items[0].evidence.bundle_json",
        ),
        (
            lambda p: setattr(p.evidence, "bundle_json", b"[" * 100_000 + b"]" * 100_000),
            "items[0].evidence.bundle_json",
        ),
    ],
)
def test_a_malformed_forward_item_becomes_a_rejected_verdict(mutate: Any, field: str) -> None:
    good = forward_item_to_proto(ForwardItem(id=b"\x01" * 32, message=message(), bundle=bundle()))
    bad = relay_pb2.ForwardItem()
    bad.CopyFrom(good)
    mutate(bad)
    request = relay_pb2.ForwardRequest(items=[bad])
    (verdict,) = forward_items_from_request(wire(request))
    assert isinstance(verdict, Verdict)
    assert verdict.kind is VerdictKind.REJECTED
    assert verdict.id == bytes(bad.id)
    assert verdict.reason.startswith(field + ":"), verdict.reason
    assert verdict.check in {MALFORMED_CHECK, "format", LIMIT_CHECK}


def test_a_bundle_over_the_limit_is_rejected_by_size_before_parsing() -> None:
    raw = b'{"x":"' + b"a" * MAX_BUNDLE_BYTES + b'"}'
    with pytest.raises(ConversionError) as caught:
        bundle_from_json(raw)
    assert caught.value.check == LIMIT_CHECK
    with pytest.raises(ConversionError) as sent:
        bundle_to_json({"x": "a" * MAX_BUNDLE_BYTES})
    assert sent.value.check == LIMIT_CHECK


def test_the_largest_bundle_fits_one_grpc_message() -> None:
    """One item with a bundle at the verifier's limit stays under the gRPC limit."""
    big = {"x": "a" * (MAX_BUNDLE_BYTES - 10)}
    raw = bundle_to_json(big)
    assert len(raw) <= MAX_BUNDLE_BYTES
    item = ForwardItem(id=b"\x01" * 32, message=message(payload=b"p" * 65536), bundle=big)
    request = relay_pb2.ForwardRequest(items=[forward_item_to_proto(item)])
    assert request.ByteSize() < MAX_GRPC_MESSAGE_BYTES
    assert bundle_from_json(raw) == big


def test_unserialisable_bundle_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError):
        bundle_to_json({"x": b"bytes are not JSON"})


def test_ack_item_whose_result_names_another_id_is_rejected() -> None:
    item = AckItem(id=b"\xbb" * 32, result=result(), bundle=bundle())
    (verdict,) = ack_items_from_request(
        relay_pb2.AcknowledgeRequest(items=[ack_item_to_proto(item)])
    )
    assert isinstance(verdict, Verdict)
    assert verdict.kind is VerdictKind.REJECTED
    assert verdict.reason.startswith("items[0].result.id:")


def test_unspecified_or_unknown_delivery_status_is_rejected() -> None:
    for status in (0, 9):
        proto = result_to_proto(result())
        proto.status = status  # type: ignore[assignment]
        with pytest.raises(ConversionError, match=r"result\.status"):
            result_from_proto(wire(proto))


def test_one_bad_item_does_not_affect_the_others() -> None:
    good = [
        ForwardItem(id=bytes([i]) * 32, message=message(nonce=i), bundle=bundle()) for i in (1, 3)
    ]
    bad = forward_item_to_proto(ForwardItem(id=b"\x02" * 32, message=message(), bundle=bundle()))
    bad.message.receiver = b"\x00"
    request = relay_pb2.ForwardRequest(
        items=[forward_item_to_proto(good[0]), bad, forward_item_to_proto(good[1])]
    )
    converted = forward_items_from_request(wire(request))
    assert converted[0] == good[0]
    assert isinstance(converted[1], Verdict)
    assert converted[1].id == b"\x02" * 32
    assert converted[2] == good[1]


def test_merge_puts_handler_verdicts_between_conversion_verdicts() -> None:
    early = Verdict(id=b"\x02" * 32, kind=VerdictKind.REJECTED, reason="bad", check="x")
    handled = [
        Verdict(id=b"\x01" * 32, kind=VerdictKind.ACCEPTED),
        Verdict(id=b"\x03" * 32, kind=VerdictKind.RETRY, reason="later"),
    ]
    merged = merge_verdicts([object(), early, object()], handled, "forward")
    assert merged == [handled[0], early, handled[1]]
    with pytest.raises(RuntimeError, match="fewer"):
        merge_verdicts([object(), object(), object()], handled, "forward")
    with pytest.raises(RuntimeError, match="more"):
        merge_verdicts([object()], handled, "forward")


def test_verdicts_round_trip_and_unknown_kind_is_never_acceptance() -> None:
    for kind in VerdictKind:
        v = Verdict(id=b"\x05" * 32, kind=kind, reason="r", check="c")
        assert verdict_from_proto(wire(verdict_to_proto(v))) == v
    unknown = relay_pb2.Verdict(id=b"\x05" * 32, kind=0)  # type: ignore[arg-type]
    assert verdict_from_proto(unknown).kind is VerdictKind.RETRY
    unknown.kind = 42  # type: ignore[assignment]
    assert verdict_from_proto(wire(unknown)).kind is VerdictKind.RETRY


def test_peer_reason_text_is_bounded() -> None:
    v = verdict_from_proto(
        relay_pb2.Verdict(
            id=b"", kind=relay_pb2.VERDICT_KIND_REJECTED, reason="x" * 100_000, check="y" * 5000
        )
    )
    assert len(v.reason) <= MAX_REASON_CHARS
    assert len(v.check) <= MAX_REASON_CHARS


def test_peer_verdicts_must_answer_the_sent_ids_in_order() -> None:
    ids = [b"\x01" * 32, b"\x02" * 32]
    answer = [relay_pb2.Verdict(id=i, kind=relay_pb2.VERDICT_KIND_ACCEPTED) for i in ids]
    assert [v.id for v in verdicts_from_response(answer, ids)] == ids
    with pytest.raises(ConversionError, match="1 verdicts for 2 items"):
        verdicts_from_response(answer[:1], ids)
    with pytest.raises(ConversionError, match=r"verdicts\[0\]\.id"):
        verdicts_from_response(list(reversed(answer)), ids)


def test_evidence_endpoint_is_bounded() -> None:
    proto = common_pb2.Evidence(bundle_json=b"{}", endpoint="e" * 10_000)
    item = relay_pb2.ForwardItem(
        id=b"\x01" * 32, message=message_to_proto(message()), evidence=proto
    )
    assert len(forward_item_from_proto(item).endpoint) <= 256
