"""Strict conversions between the ``interop.v1`` protos and the relay's own types.

Everything a peer sends is hostile until checked: every field is validated here (lengths, chain
names, enum values, bundle size and JSON shape) and a bad one becomes a
:class:`ConversionError` naming the field. The server turns that into a ``REJECTED`` verdict
for the one item (the rest of the batch goes on) or ``INVALID_ARGUMENT`` for a request; nothing
else may escape. Bundles travel as JSON text and are parsed with the verifier's bounded
``load_json`` (size, depth and value count checked before anything is built).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from protos.interop.v1 import common_pb2, relay_pb2
from relay.links import AckItem, ForwardItem, Verdict, VerdictKind
from verifier.encoding import load_json
from verifier.errors import MalformedEvidence
from verifier.limits import MAX_BUNDLE_BYTES
from verifier.messages import DeliveryResult, DeliveryStatus, Message, check_chain_name

ID_BYTES: Final = 32
ADDRESS_BYTES: Final = 20

MAX_ITEM_OVERHEAD_BYTES: Final = 1024 * 1024
"""Room for one item's body beside its bundle: the contract caps a payload at 64 KiB and a result
at 1 KiB, so 1 MiB leaves a wide margin for the id, addresses, names and framing."""

MAX_GRPC_MESSAGE_BYTES: Final = MAX_BUNDLE_BYTES + MAX_ITEM_OVERHEAD_BYTES
"""The gRPC send/receive limit on both ends (relay-protocol requirement 10): one item with the
largest bundle the verifier accepts always fits; a batch of many items is split by the client so
that each call stays under it."""

DEFAULT_MAX_BATCH_ITEMS: Final = 500
"""Items per Forward/Acknowledge call unless configured otherwise (real bundles are 5-15 KB)."""

MAX_REASON_CHARS: Final = 1000
"""A peer's reason or check text is cut to this before anyone stores or logs it (requirement 19:
what is kept about rejected attempts is bounded)."""

MAX_ENDPOINT_CHARS: Final = 256

MALFORMED_CHECK: Final = "malformed_item"
"""The ``check`` of a verdict on an item that did not convert (the relay's own check name)."""


class ConversionError(Exception):
    """A proto field that is missing or not acceptable; ``field`` is its dotted path."""

    def __init__(self, field: str, reason: str, *, check: str = MALFORMED_CHECK) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = f"{field}: {reason}"
        self.check = check


_STATUS_TO_PROTO: Final = {
    DeliveryStatus.SUCCESS: common_pb2.DELIVERY_STATUS_SUCCESS,
    DeliveryStatus.FAILED: common_pb2.DELIVERY_STATUS_FAILED,
    DeliveryStatus.EXPIRED: common_pb2.DELIVERY_STATUS_EXPIRED,
}
_STATUS_FROM_PROTO: Final = {v: k for k, v in _STATUS_TO_PROTO.items()}

_KIND_TO_PROTO: Final = {
    VerdictKind.ACCEPTED: relay_pb2.VERDICT_KIND_ACCEPTED,
    VerdictKind.REJECTED: relay_pb2.VERDICT_KIND_REJECTED,
    VerdictKind.RETRY: relay_pb2.VERDICT_KIND_RETRY,
}
_KIND_FROM_PROTO: Final = {v: k for k, v in _KIND_TO_PROTO.items()}


# --- checks -------------------------------------------------------------------------------------


def _fixed(value: bytes, size: int, field: str) -> bytes:
    if len(value) != size:
        raise ConversionError(field, f"must be {size} bytes, got {len(value)}")
    return bytes(value)


def _chain(value: str, field: str) -> str:
    try:
        return check_chain_name(value, field)
    except MalformedEvidence as exc:
        raise ConversionError(field, f"{value[:40]!r} is not a chain name") from exc


def _bounded_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- messages and results -----------------------------------------------------------------------


def message_to_proto(message: Message) -> common_pb2.Message:
    return common_pb2.Message(
        src_chain=message.src_chain,
        src_gateway=message.src_gateway,
        dst_chain=message.dst_chain,
        nonce=message.nonce,
        sender=message.sender,
        receiver=message.receiver,
        payload=message.payload,
        timeout=message.timeout,
    )


def message_from_proto(proto: common_pb2.Message, field: str = "message") -> Message:
    """A :class:`Message` from its proto; uint64 ranges are guaranteed by protobuf itself."""
    return Message(
        src_chain=_chain(proto.src_chain, f"{field}.src_chain"),
        src_gateway=_fixed(proto.src_gateway, ADDRESS_BYTES, f"{field}.src_gateway"),
        dst_chain=_chain(proto.dst_chain, f"{field}.dst_chain"),
        nonce=proto.nonce,
        sender=_fixed(proto.sender, ADDRESS_BYTES, f"{field}.sender"),
        receiver=_fixed(proto.receiver, ADDRESS_BYTES, f"{field}.receiver"),
        payload=bytes(proto.payload),
        timeout=proto.timeout,
    )


def result_to_proto(result: DeliveryResult) -> common_pb2.DeliveryResult:
    return common_pb2.DeliveryResult(
        id=result.id,
        dst_chain=result.dst_chain,
        dst_gateway=result.dst_gateway,
        status=_STATUS_TO_PROTO[result.status],
        result=result.result,
    )


def result_from_proto(proto: common_pb2.DeliveryResult, field: str = "result") -> DeliveryResult:
    status = _STATUS_FROM_PROTO.get(proto.status)
    if status is None:
        raise ConversionError(f"{field}.status", f"unknown delivery status {proto.status}")
    return DeliveryResult(
        id=_fixed(proto.id, ID_BYTES, f"{field}.id"),
        dst_chain=_chain(proto.dst_chain, f"{field}.dst_chain"),
        dst_gateway=_fixed(proto.dst_gateway, ADDRESS_BYTES, f"{field}.dst_gateway"),
        status=status,
        result=bytes(proto.result),
    )


# --- evidence -----------------------------------------------------------------------------------


def bundle_to_json(bundle: Mapping[str, Any]) -> bytes:
    """The bundle as compact UTF-8 JSON; ConversionError when it is not JSON or too large."""
    try:
        raw = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ConversionError("evidence.bundle_json", f"not serialisable as JSON: {exc}") from exc
    if len(raw) > MAX_BUNDLE_BYTES:
        raise ConversionError(
            "evidence.bundle_json",
            f"{len(raw)} bytes, over the limit of {MAX_BUNDLE_BYTES}",
            check="limit",
        )
    return raw


def evidence_to_proto(bundle: Mapping[str, Any], endpoint: str = "") -> common_pb2.Evidence:
    return common_pb2.Evidence(bundle_json=bundle_to_json(bundle), endpoint=endpoint)


def bundle_from_json(raw: bytes, field: str = "evidence.bundle_json") -> dict[str, Any]:
    """Parse a bundle's JSON text with the verifier's bounds; it must be a JSON object.

    Only the shape is checked here; whether it proves anything is the verifier's job, later.
    """
    if not raw:
        raise ConversionError(field, "missing")
    try:
        document = load_json(bytes(raw), what=field)
    except MalformedEvidence as exc:
        raise ConversionError(field, _strip_field(exc.reason, field), check=exc.check) from exc
    if not isinstance(document, dict):
        raise ConversionError(field, f"must be a JSON object, got {type(document).__name__}")
    return document


def _strip_field(reason: str, field: str) -> str:
    prefix = f"{field}: "
    return reason[len(prefix) :] if reason.startswith(prefix) else reason


def evidence_from_proto(
    proto: common_pb2.Evidence, field: str = "evidence"
) -> tuple[dict[str, Any], str]:
    bundle = bundle_from_json(proto.bundle_json, f"{field}.bundle_json")
    return bundle, _bounded_text(proto.endpoint, MAX_ENDPOINT_CHARS)


# --- relay items --------------------------------------------------------------------------------


def forward_item_to_proto(item: ForwardItem) -> relay_pb2.ForwardItem:
    return relay_pb2.ForwardItem(
        id=item.id,
        message=message_to_proto(item.message),
        evidence=evidence_to_proto(item.bundle, item.endpoint),
    )


def forward_item_from_proto(proto: relay_pb2.ForwardItem, field: str = "item") -> ForwardItem:
    """Shape only: that ``id`` is the body's hash is checked by the handler, which knows the
    source chain's hash function."""
    item_id = _fixed(proto.id, ID_BYTES, f"{field}.id")
    if not proto.HasField("message"):
        raise ConversionError(f"{field}.message", "missing")
    message = message_from_proto(proto.message, f"{field}.message")
    if not proto.HasField("evidence"):
        raise ConversionError(f"{field}.evidence", "missing")
    bundle, endpoint = evidence_from_proto(proto.evidence, f"{field}.evidence")
    return ForwardItem(id=item_id, message=message, bundle=bundle, endpoint=endpoint)


def ack_item_to_proto(item: AckItem) -> relay_pb2.AckItem:
    return relay_pb2.AckItem(
        id=item.id,
        result=result_to_proto(item.result),
        evidence=evidence_to_proto(item.bundle, item.endpoint),
    )


def ack_item_from_proto(proto: relay_pb2.AckItem, field: str = "item") -> AckItem:
    item_id = _fixed(proto.id, ID_BYTES, f"{field}.id")
    if not proto.HasField("result"):
        raise ConversionError(f"{field}.result", "missing")
    result = result_from_proto(proto.result, f"{field}.result")
    if result.id != item_id:
        raise ConversionError(f"{field}.result.id", "differs from the item's id")
    if not proto.HasField("evidence"):
        raise ConversionError(f"{field}.evidence", "missing")
    bundle, endpoint = evidence_from_proto(proto.evidence, f"{field}.evidence")
    return AckItem(id=item_id, result=result, bundle=bundle, endpoint=endpoint)


def rejected(item_id: bytes, error: ConversionError) -> Verdict:
    """The verdict on an item that did not convert: this attempt is rejected, not the id."""
    return Verdict(
        id=bytes(item_id),
        kind=VerdictKind.REJECTED,
        reason=_bounded_text(error.reason, MAX_REASON_CHARS),
        check=error.check,
    )


def forward_items_from_request(
    request: relay_pb2.ForwardRequest,
) -> list[ForwardItem | Verdict]:
    """Each request item converted, or the REJECTED verdict saying why it could not be."""
    out: list[ForwardItem | Verdict] = []
    for index, proto in enumerate(request.items):
        try:
            out.append(forward_item_from_proto(proto, f"items[{index}]"))
        except ConversionError as exc:
            out.append(rejected(proto.id, exc))
    return out


def ack_items_from_request(request: relay_pb2.AcknowledgeRequest) -> list[AckItem | Verdict]:
    out: list[AckItem | Verdict] = []
    for index, proto in enumerate(request.items):
        try:
            out.append(ack_item_from_proto(proto, f"items[{index}]"))
        except ConversionError as exc:
            out.append(rejected(proto.id, exc))
    return out


# --- verdicts -----------------------------------------------------------------------------------


def verdict_to_proto(verdict: Verdict) -> relay_pb2.Verdict:
    return relay_pb2.Verdict(
        id=verdict.id,
        kind=_KIND_TO_PROTO[verdict.kind],
        reason=_bounded_text(verdict.reason, MAX_REASON_CHARS),
        check=_bounded_text(verdict.check, MAX_REASON_CHARS),
    )


def verdict_from_proto(proto: relay_pb2.Verdict) -> Verdict:
    """A peer's verdict; an unknown kind is taken as RETRY (never as acceptance)."""
    kind = _KIND_FROM_PROTO.get(proto.kind)
    reason = _bounded_text(proto.reason, MAX_REASON_CHARS)
    if kind is None:
        kind = VerdictKind.RETRY
        reason = f"the peer sent verdict kind {proto.kind}, which this gateway does not know"
    return Verdict(
        id=bytes(proto.id),
        kind=kind,
        reason=reason,
        check=_bounded_text(proto.check, MAX_REASON_CHARS),
    )


def verdicts_from_response(
    verdicts: Sequence[relay_pb2.Verdict], sent_ids: Sequence[bytes]
) -> list[Verdict]:
    """The peer's verdicts, which must answer the sent ids one for one, in order."""
    if len(verdicts) != len(sent_ids):
        raise ConversionError(
            "verdicts", f"{len(verdicts)} verdicts for {len(sent_ids)} items", check="protocol"
        )
    out = [verdict_from_proto(v) for v in verdicts]
    for index, (verdict, sent) in enumerate(zip(out, sent_ids, strict=True)):
        if verdict.id != sent:
            raise ConversionError(
                f"verdicts[{index}].id", "does not answer the item sent there", check="protocol"
            )
    return out


def merge_verdicts(
    converted: Sequence[object], handled: Sequence[Verdict], what: str
) -> list[Verdict]:
    """Put the handler's verdicts (for the converted items, in order) back between the
    verdicts already decided at conversion, so the answer follows the request's order."""
    answers = iter(handled)
    out: list[Verdict] = []
    for entry in converted:
        if isinstance(entry, Verdict):
            out.append(entry)
        else:
            answer = next(answers, None)
            if answer is None:
                raise RuntimeError(f"the {what} handler returned fewer verdicts than items")
            out.append(answer)
    if next(answers, None) is not None:
        raise RuntimeError(f"the {what} handler returned more verdicts than items")
    return out
