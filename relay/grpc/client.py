"""``GrpcPeerLink``: :class:`relay.links.PeerLink` over gRPC with mutual TLS.

The channel presents this gateway's client certificate (pinned by the peer) and accepts only
the peer's pinned certificate. gRPC's Python API cannot pin (it verifies a chain to the given
roots and the name, nothing more), so before the first call the link opens one TLS connection
of its own with :mod:`ssl` (the peer's CA, its server name, this gateway's client certificate),
compares the SHA-256 of the certificate the peer presents with the configured pin, and then
gives gRPC that exact certificate as the channel's only root. gRPC (BoringSSL with partial
chains) then accepts no other certificate on any later (re)connection, so there is no window
between the check and the channel's own handshakes; a certificate that differs from the pin,
even one from the same CA for the same name, is :class:`PeerPinMismatch`. Every call has a
deadline. A peer with several addresses (the replicas of one gateway, ``[peers.X] addresses``)
is called at the address that answered last; when it is unreachable, times out or answers
``UNAVAILABLE`` (a standby replica says so), the same call goes to the next address, each tried
once per call. Anything that keeps a
batch from being answered (unreachable, deadline, refusal, a peer answering out of order) is
:class:`relay.links.LinkUnavailable`, so the pipeline retries later; the items are idempotent.

Batches are split so that each call stays within the item and byte limits the peer enforces;
an item that cannot be sent at all (its bundle over the verifier's size limit, or not JSON) gets
a local ``REJECTED`` verdict, so the answer is still one verdict per item, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
import grpc.aio
import structlog

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
from relay.tls import fingerprint_der, write_key_file

CALL_FRAMING_BYTES: Final = 64 * 1024
"""Room kept under the byte limit for per-item framing and the call's own overhead."""

DEFAULT_TIMEOUT_S: Final = 60.0
"""A call's deadline: a full batch is verified by the peer before it answers."""

PIN_CHECK_TIMEOUT_S: Final = 10.0
"""The TLS connection that fetches and checks the peer's certificate."""

_P = TypeVar("_P", relay_pb2.ForwardItem, relay_pb2.AckItem)

FAILOVER_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
    }
)
"""Answers after which the next address is tried: the replica is down, stuck, or a standby.
Any other status is an answer from an active gateway and stands (``None``: not reached)."""

log = structlog.get_logger(__name__)


class PeerCallFailed(LinkUnavailable):
    """The peer answered with an error status (refused, overloaded, failed) or not at all."""

    def __init__(self, message: str, *, peer: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message, peer=peer)
        self.code = code


class PeerPinMismatch(LinkUnavailable):
    """The peer presented a valid certificate that is not the one pinned for it."""

    def __init__(self, message: str, *, peer: str, presented: str) -> None:
        super().__init__(message, peer=peer)
        self.presented = presented


@dataclass(frozen=True, slots=True)
class PeerTls:
    client_cert_pem: bytes
    client_key_pem: bytes
    server_ca_pem: bytes
    """The peer's CA: its certificate must chain to it."""
    server_name: str
    """The name the peer's certificate must carry (checked by TLS)."""
    server_sha256: str
    """The pin: SHA-256 of the peer certificate's DER bytes (hex; ``sha256:`` and colons ok)."""

    @property
    def pin(self) -> str:
        return self.server_sha256.lower().removeprefix("sha256:").replace(":", "")


class GrpcPeerLink:
    """The way to one peer gateway. Create and use it inside the running event loop."""

    def __init__(
        self,
        name: str,
        target: str | Sequence[str],
        tls: PeerTls,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        max_message_bytes: int = MAX_GRPC_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.targets = (target,) if isinstance(target, str) else tuple(target)
        if not self.targets:
            raise ValueError(f"peer {name}: no address")
        self._current = 0
        self._tls = tls
        self._timeout = timeout
        self._max_items = max_batch_items
        self._max_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None
        self._stub: relay_pb2_grpc.RelayServiceAsyncStub | None = None
        self._connecting = asyncio.Lock()
        self._retiring: dict[asyncio.Task[None], grpc.aio.Channel] = {}
        """Channels left by a failover, closing once their calls end (by their deadline at the
        latest): closing at once would cancel another task's call in flight there."""

    @property
    def target(self) -> str:
        """The address calls go to now."""
        return self.targets[self._current]

    async def _failover(self, failed: int, reason: str) -> None:
        """Move to the next address after the one at index ``failed`` (unless a concurrent
        call has moved on already) and drop the channel to the failed one."""
        async with self._connecting:
            if self._current != failed or len(self.targets) == 1:
                return
            self._current = (failed + 1) % len(self.targets)
            channel, self._channel, self._stub = self._channel, None, None
            log.warning(
                "peer_failover",
                peer=self.name,
                failed=self.targets[failed],
                to=self.target,
                reason=reason,
            )
        if channel is not None:
            task = asyncio.create_task(channel.close(grace=self._timeout))
            self._retiring[task] = channel
            task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _connect(self) -> relay_pb2_grpc.RelayServiceAsyncStub:
        async with self._connecting:
            if self._stub is not None:
                return self._stub
            pinned = await self._pinned_certificate()
            return self._open(pinned)

    async def _pinned_certificate(self) -> bytes:
        """The peer's certificate (PEM) after checking it against the CA, name and pin."""
        try:
            der = await asyncio.wait_for(
                _fetch_certificate(self.target, self._tls), PIN_CHECK_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else _tls_reason(exc)
            raise PeerCallFailed(
                f"cannot check the certificate of peer {self.name} at {self.target}: {reason}",
                peer=self.name,
                code=None,
            ) from exc
        presented = fingerprint_der(der)
        if presented != self._tls.pin:
            raise PeerPinMismatch(
                f"peer {self.name} at {self.target} presented certificate sha256:{presented}, "
                f"not the pinned sha256:{self._tls.pin} (certificate pin mismatch)",
                peer=self.name,
                presented=presented,
            )
        return ssl.DER_cert_to_PEM_cert(der).encode("ascii")

    def _open(self, pinned_pem: bytes) -> relay_pb2_grpc.RelayServiceAsyncStub:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pinned_pem,  # the pinned leaf only: see the module docstring
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

    async def channel(self) -> grpc.aio.Channel:
        """The pinned mutual-TLS channel to the peer, for its other services (AuditService's
        TraceMessage); opened on first use like the relay calls'."""
        await self._connect()
        assert self._channel is not None
        return self._channel

    async def close(self) -> None:
        retiring, self._retiring = dict(self._retiring), {}
        for task, channel in retiring.items():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await channel.close(grace=None)  # cancels what still runs there
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close(grace=None)

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        async def send(
            stub: relay_pb2_grpc.RelayServiceAsyncStub, batch: list[relay_pb2.ForwardItem]
        ) -> Sequence[relay_pb2.Verdict]:
            response = await stub.Forward(
                relay_pb2.ForwardRequest(items=batch), timeout=self._timeout
            )
            return list(response.verdicts)

        return await self._exchange(items, forward_item_to_proto, send, "Forward")

    async def acknowledge(self, items: Sequence[AckItem]) -> Sequence[Verdict]:
        async def send(
            stub: relay_pb2_grpc.RelayServiceAsyncStub, batch: list[relay_pb2.AckItem]
        ) -> Sequence[relay_pb2.Verdict]:
            response = await stub.Acknowledge(
                relay_pb2.AcknowledgeRequest(items=batch), timeout=self._timeout
            )
            return list(response.verdicts)

        return await self._exchange(items, ack_item_to_proto, send, "Acknowledge")

    async def _exchange(
        self,
        items: Sequence[Any],
        to_proto: Callable[[Any], _P],
        send: Callable[[relay_pb2_grpc.RelayServiceAsyncStub, list[_P]], Any],
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
            raw = await self._send(send, batch, method)
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

    async def _send(
        self,
        send: Callable[[relay_pb2_grpc.RelayServiceAsyncStub, list[_P]], Any],
        batch: list[_P],
        method: str,
    ) -> Sequence[relay_pb2.Verdict]:
        """One call, at each address in turn from the current one until one answers (the
        items are idempotent at the peer); the last failure when none does."""
        for attempt in range(len(self.targets)):
            index = self._current
            try:
                stub = await self._connect()
                raw: Sequence[relay_pb2.Verdict] = await send(stub, batch)
                return raw
            except grpc.aio.AioRpcError as exc:
                target, code = self.targets[index], exc.code()
                failure = PeerCallFailed(
                    f"{method} to {target} failed: {code.name}: {exc.details()}",
                    peer=self.name,
                    code=exc.code(),
                )
                if exc.code() not in FAILOVER_CODES or attempt == len(self.targets) - 1:
                    raise failure from exc
            except PeerPinMismatch:
                raise
            except PeerCallFailed as exc:  # not reached (the certificate check's connection)
                if attempt == len(self.targets) - 1:
                    raise
                failure = exc
            await self._failover(index, str(failure))
        raise AssertionError("unreachable: the last attempt raises")

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


async def _fetch_certificate(target: str, tls: PeerTls) -> bytes:
    """The DER certificate the peer presents in a full mutual-TLS handshake, verified against
    the peer's CA and server name (what gRPC checks too), presenting our client certificate."""
    host, port = _host_port(target)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=tls.server_ca_pem.decode("ascii"))
    context.set_alpn_protocols(["h2"])
    with _key_file(tls.client_cert_pem + b"\n" + tls.client_key_pem) as path:
        context.load_cert_chain(path)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname=tls.server_name
    )
    del reader
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise ssl.SSLError("the peer presented no certificate")
    return bytes(der)


@contextlib.contextmanager
def _key_file(pem: bytes) -> Iterator[str]:
    """A path ``ssl`` can load the key from (it reads only files): an anonymous memory file on
    Linux, else a 0600 file in a private temporary folder, removed at once."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("gateway-client-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "client.pem"
        write_key_file(path, pem)
        yield str(path)


def _host_port(target: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``dns:///host:port`` -> (host, port)."""
    address = target.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise OSError(f"not a host:port address: {target!r}") from exc


def _tls_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return exc.strerror or str(exc)
