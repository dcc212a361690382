"""``GrpcPeerLink``: :class:`relay.links.PeerLink` over gRPC with mutual TLS.

The channel presents this gateway's client certificate (pinned by the peer) and trusts only the
peer's CA for the peer's expected server name. Every call has a deadline. Anything that keeps a
batch from being answered (unreachable, deadline, refusal, a peer answering out of order) is
:class:`relay.links.LinkUnavailable`, so the pipeline retries later; the items are idempotent.

Batches are split so that each call stays within the item and byte limits the peer enforces;
an item that cannot be sent at all (its bundle over the verifier's size limit, or not JSON) gets
a local ``REJECTED`` verdict, so the answer is still one verdict per item, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
import grpc.aio

from protos.interop.v1 import relay_pb2, relay_pb2_grpc
from relay.grpc.convert import (
    DEFAULT_MAX_BATCH_ITEMS,
    MAX_GRPC_MESSAGE_BYTES,
    ConversionError,
    ack_item_to_proto,
    forward_item_to_proto,
    rejected,
    verdicts_from_response,
)
from relay.links import AckItem, ForwardItem, LinkUnavailable, Verdict

CALL_FRAMING_BYTES: Final = 64 * 1024
"""Room kept under the byte limit for per-item framing and the call's own overhead."""

DEFAULT_TIMEOUT_S: Final = 60.0
"""A call's deadline: a full batch is verified by the peer before it answers."""

_P = TypeVar("_P", relay_pb2.ForwardItem, relay_pb2.AckItem)


class PeerCallFailed(LinkUnavailable):
    """The peer answered with an error status (refused, overloaded, failed) or not at all."""

    def __init__(self, message: str, *, peer: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message, peer=peer)
        self.code = code


@dataclass(frozen=True, slots=True)
class PeerTls:
    client_cert_pem: bytes
    client_key_pem: bytes
    server_ca_pem: bytes
    """The peer's CA: the only root trusted for this channel."""
    server_name: str
    """The name the peer's certificate must carry (checked by TLS)."""


class GrpcPeerLink:
    """The way to one peer gateway. Create and use it inside the running event loop."""

    def __init__(
        self,
        name: str,
        target: str,
        tls: PeerTls,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        max_message_bytes: int = MAX_GRPC_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.target = target
        self._tls = tls
        self._timeout = timeout
        self._max_items = max_batch_items
        self._max_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None
        self._stub: relay_pb2_grpc.RelayServiceAsyncStub | None = None

    def _connect(self) -> relay_pb2_grpc.RelayServiceAsyncStub:
        if self._stub is not None:
            return self._stub
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self._tls.server_ca_pem,
            private_key=self._tls.client_key_pem,
            certificate_chain=self._tls.client_cert_pem,
        )
        self._channel = grpc.aio.secure_channel(
            self.target,
            credentials,
            options=[
                ("grpc.ssl_target_name_override", self._tls.server_name),
                ("grpc.default_authority", self._tls.server_name),
                ("grpc.max_receive_message_length", self._max_bytes),
                ("grpc.max_send_message_length", self._max_bytes),
            ],
        )
        self._stub = relay_pb2_grpc.RelayServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close(grace=None)

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        stub = self._connect()

        async def send(batch: list[relay_pb2.ForwardItem]) -> Sequence[relay_pb2.Verdict]:
            response = await stub.Forward(
                relay_pb2.ForwardRequest(items=batch), timeout=self._timeout
            )
            return list(response.verdicts)

        return await self._exchange(items, forward_item_to_proto, send, "Forward")

    async def acknowledge(self, items: Sequence[AckItem]) -> Sequence[Verdict]:
        stub = self._connect()

        async def send(batch: list[relay_pb2.AckItem]) -> Sequence[relay_pb2.Verdict]:
            response = await stub.Acknowledge(
                relay_pb2.AcknowledgeRequest(items=batch), timeout=self._timeout
            )
            return list(response.verdicts)

        return await self._exchange(items, ack_item_to_proto, send, "Acknowledge")

    async def _exchange(
        self,
        items: Sequence[Any],
        to_proto: Callable[[Any], _P],
        send: Callable[[list[_P]], Any],
        method: str,
    ) -> list[Verdict]:
        answers: list[Verdict | None] = [None] * len(items)
        protos: list[tuple[int, _P]] = []
        for index, item in enumerate(items):
            try:
                protos.append((index, to_proto(item)))
            except ConversionError as exc:
                answers[index] = rejected(item.id, exc)
        for chunk in self._chunks(protos):
            batch = [p for _, p in chunk]
            try:
                raw = await send(batch)
            except grpc.aio.AioRpcError as exc:
                raise PeerCallFailed(
                    f"{method} to {self.target} failed: {exc.code().name}: {exc.details()}",
                    peer=self.name,
                    code=exc.code(),
                ) from exc
            try:
                verdicts = verdicts_from_response(raw, [p.id for p in batch])
            except ConversionError as exc:
                raise PeerCallFailed(
                    f"{method} to {self.target}: bad answer: {exc.reason}",
                    peer=self.name,
                    code=None,
                ) from exc
            for (index, _), verdict in zip(chunk, verdicts, strict=True):
                answers[index] = verdict
        return [a for a in answers if a is not None]

    def _chunks(self, protos: list[tuple[int, _P]]) -> list[list[tuple[int, _P]]]:
        """Consecutive groups within the item count and, with framing, the byte limit."""
        budget = self._max_bytes - CALL_FRAMING_BYTES
        chunks: list[list[tuple[int, _P]]] = []
        current: list[tuple[int, _P]] = []
        size = 0
        for entry in protos:
            item_size = entry[1].ByteSize() + 16  # the field tag and length prefix
            if current and (len(current) >= self._max_items or size + item_size > budget):
                chunks.append(current)
                current, size = [], 0
            current.append(entry)
            size += item_size
        if current:
            chunks.append(current)
        return chunks
