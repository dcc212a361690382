"""The gateway's gRPC servers: RelayService for peers, InteropService for developers, health and
reflection for everyone, behind TLS and :class:`relay.grpc.auth.AuthInterceptor`. One server per
port (mutual TLS; bearer tokens), so that each knows its port's rules and services.

Errors leave as status codes with a short message, never a traceback: a malformed item is a
``REJECTED`` verdict for that item alone, an oversized batch ``INVALID_ARGUMENT``, a message
over the size limit ``RESOURCE_EXHAUSTED`` (gRPC itself refuses it before decoding), a handler
failure ``UNAVAILABLE`` when retryable and ``INTERNAL`` otherwise (logged with its cause here).
A standby replica answers ``Forward``/``Acknowledge`` with ``UNAVAILABLE`` "standby replica", so
the peer tries this gateway's next address (relay/replica.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
import grpc.aio
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # stubs lack it
from grpc_reflection.v1alpha import reflection

from protos.interop.v1 import audit_pb2_grpc, interop_pb2_grpc, relay_pb2, relay_pb2_grpc
from relay.grpc.auth import (
    AUDIT_SERVICE,
    HEALTH_SERVICE,
    INTEROP_SERVICE,
    RELAY_SERVICE,
    AuthInterceptor,
    AuthPolicy,
    PortKind,
    Principal,
    PrincipalKind,
    current_principal,
)
from relay.grpc.convert import (
    DEFAULT_MAX_BATCH_ITEMS,
    MAX_GRPC_MESSAGE_BYTES,
    ack_items_from_request,
    forward_items_from_request,
    merge_verdicts,
    verdict_to_proto,
)
from relay.links import AckItem, ForwardItem, InboundHandler, Verdict
from relay.replica import StandbyReplica

log = structlog.get_logger(__name__)

CONVERT_IN_THREAD_BYTES: Final = 256 * 1024
"""Requests larger than this are parsed in a worker thread: bounded JSON parsing of up to
16 MiB takes a noticeable fraction of a second, which would stall every other call."""

REFLECTION_SERVICE: Final = "grpc.reflection.v1alpha.ServerReflection"

_T = TypeVar("_T")


class ServerStartError(Exception):
    """The server could not start (address in use, bad TLS material): the message says which."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The gateway's certificate chain and key (PEM), and the CA roots that client certificates
    must chain to (every peer's CA and the developers'); pinning then decides who is who."""

    cert_pem: bytes
    key_pem: bytes
    client_ca_pems: Sequence[bytes]


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    """Converts strictly and hands the items to the :class:`InboundHandler`; idempotency and
    verification are the handler's job."""

    def __init__(self, handler: InboundHandler, *, max_batch_items: int) -> None:
        self._handler = handler
        self._max_items = max_batch_items

    async def Forward(  # noqa: N802 - the gRPC method name
        self, request: relay_pb2.ForwardRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.ForwardResponse:
        peer = await self._peer(context, len(request.items))
        converted = await _maybe_in_thread(forward_items_from_request, request)
        items = [c for c in converted if isinstance(c, ForwardItem)]
        handled: Sequence[Verdict] = []
        if items:
            handled = await self._call(
                context, "forward", peer, self._handler.handle_forward(peer.name, items)
            )
        verdicts = await self._merge(context, converted, handled, items, "forward")
        return relay_pb2.ForwardResponse(verdicts=[verdict_to_proto(v) for v in verdicts])

    async def Acknowledge(  # noqa: N802 - the gRPC method name
        self, request: relay_pb2.AcknowledgeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.AcknowledgeResponse:
        peer = await self._peer(context, len(request.items))
        converted = await _maybe_in_thread(ack_items_from_request, request)
        items = [c for c in converted if isinstance(c, AckItem)]
        handled: Sequence[Verdict] = []
        if items:
            handled = await self._call(
                context, "acknowledge", peer, self._handler.handle_acknowledge(peer.name, items)
            )
        verdicts = await self._merge(context, converted, handled, items, "acknowledge")
        return relay_pb2.AcknowledgeResponse(verdicts=[verdict_to_proto(v) for v in verdicts])

    async def _peer(self, context: grpc.aio.ServicerContext[Any, Any], count: int) -> Principal:
        principal = current_principal.get()
        if principal is None or principal.kind is not PrincipalKind.PEER:
            # Only reachable when the server runs without the interceptor: refuse, never serve.
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "peers only")
            raise AssertionError("abort returned")
        if count > self._max_items:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{count} items in one call; at most {self._max_items}",
            )
        return principal

    async def _call(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        what: str,
        peer: Principal,
        call: Any,
    ) -> Sequence[Verdict]:
        try:
            result: Sequence[Verdict] = await call
        except StandbyReplica as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "standby replica")
            raise AssertionError("abort returned") from exc
        except Exception as exc:
            retryable = bool(getattr(exc, "retryable", False))
            log.error(
                "relay_handler_failed",
                call=what,
                peer=peer.name,
                error=f"{type(exc).__name__}: {exc}",
                retryable=retryable,
                exc_info=not retryable,
            )
            if retryable:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, f"the gateway cannot {what} now; retry later"
                )
            await context.abort(grpc.StatusCode.INTERNAL, f"the gateway failed to {what} the batch")
            raise AssertionError("abort returned") from exc
        return result

    async def _merge(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        converted: Sequence[object],
        handled: Sequence[Verdict],
        items: Sequence[ForwardItem] | Sequence[AckItem],
        what: str,
    ) -> list[Verdict]:
        """Verdicts in request order; a handler answering other ids or counts is a bug here."""
        if [v.id for v in handled] != [i.id for i in items]:
            log.error("relay_handler_bad_verdicts", call=what, items=len(items), got=len(handled))
            await context.abort(grpc.StatusCode.INTERNAL, f"the gateway failed to {what} the batch")
        return merge_verdicts(converted, handled, what)


async def _maybe_in_thread(convert: Any, request: Any) -> list[Any]:
    if request.ByteSize() > CONVERT_IN_THREAD_BYTES:
        result: list[Any] = await asyncio.to_thread(convert, request)
        return result
    done: list[Any] = convert(request)
    return done


SMALL_REQUEST_BYTES: Final = 128 * 1024
"""The request limit of every method but :data:`LARGE_REQUEST_METHODS` (SendMessage's payload
is at most 64 KiB on chain); checked before parsing."""

LARGE_REQUEST_METHODS: Final = frozenset(
    {
        "/interop.v1.RelayService/Forward",
        "/interop.v1.RelayService/Acknowledge",
        "/interop.v1.InteropService/VerifyEvidence",
    }
)
"""Methods that carry evidence bundles: they take up to ``max_message_bytes``."""


@dataclass
class GatewayServer:
    """The gateway's gRPC servers: one per port, each with its own services and interceptor."""

    servers: Sequence[grpc.aio.Server]
    ports: Sequence[int]

    async def stop(self, grace: float | None) -> None:
        await asyncio.gather(*(s.stop(grace) for s in self.servers))


async def start_server(
    *,
    listen: str,
    tls: ServerTls,
    auth: AuthPolicy,
    relay_handler: InboundHandler | None,
    interop_servicer: interop_pb2_grpc.InteropServiceServicer | None,
    token_listen: str | None = None,
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
    max_message_bytes: int = MAX_GRPC_MESSAGE_BYTES,
    max_concurrent_rpcs: int,
    audit_servicer: audit_pb2_grpc.AuditServiceServicer | None = None,
) -> GatewayServer:
    """Build, bind and start the servers; stop them with ``await server.stop(grace)``.

    ``listen`` (``host:port``) is mutual TLS: a client certificate issued by one of
    ``tls.client_ca_pems`` is required by the handshake, then must be pinned (peers, developers
    with certificates). It serves RelayService and InteropService. ``token_listen``, when set,
    is a second server with TLS but no client certificate, for callers with a bearer token:
    gRPC's Python API can either require and verify client certificates or not ask for them,
    never ask without requiring, so the two kinds of caller get a port each. The token server
    never serves RelayService (peers use mutual TLS) and refuses a call without
    ``authorization`` metadata before reading its body (``AuthInterceptor``). Health reports
    SERVING for the server ("") and each service it serves; reflection lists them, health and
    itself.

    ``audit_servicer`` (AuditService) is served on both ports: auditors use either, peers call
    its TraceMessage over mutual TLS.

    ``max_concurrent_rpcs`` bounds the calls each server runs at once; gRPC answers
    RESOURCE_EXHAUSTED beyond, before reading anything (each call may hold a request of up to
    ``max_message_bytes``).
    """
    if not tls.client_ca_pems:
        raise ServerStartError("at least one client CA is needed to verify client certificates")
    relay = (
        RelayServicer(relay_handler, max_batch_items=max_batch_items)
        if relay_handler is not None
        else None
    )
    limits = dict.fromkeys(LARGE_REQUEST_METHODS, max_message_bytes)
    common = _Common(auth, limits, min(SMALL_REQUEST_BYTES, max_message_bytes), max_message_bytes)
    mutual, mutual_services = await _build(
        common,
        PortKind.MUTUAL_TLS,
        relay,
        interop_servicer,
        max_concurrent_rpcs,
        audit=audit_servicer,
    )
    built = [(mutual, listen, True)]
    services = {listen: mutual_services}
    if token_listen is not None:
        token, token_services = await _build(
            common,
            PortKind.TOKEN,
            None,
            interop_servicer,
            max_concurrent_rpcs,
            audit=audit_servicer,
        )
        built.append((token, token_listen, False))
        services[token_listen] = token_services
    ports = [
        _bind(server, address, tls, require_client_certificate=m) for server, address, m in built
    ]
    started: list[grpc.aio.Server] = []
    for server, _, _ in built:
        await server.start()
        started.append(server)
    log.info(
        "grpc_server_started",
        listen=listen,
        token_listen=token_listen,
        ports=ports,
        services=services,
    )
    return GatewayServer(started, ports)


@dataclass(frozen=True, slots=True)
class _Common:
    auth: AuthPolicy
    request_limits: dict[str, int]
    default_request_limit: int
    max_message_bytes: int


async def _build(
    common: _Common,
    port: PortKind,
    relay: RelayServicer | None,
    interop: interop_pb2_grpc.InteropServiceServicer | None,
    max_concurrent_rpcs: int,
    *,
    audit: audit_pb2_grpc.AuditServiceServicer | None = None,
) -> tuple[grpc.aio.Server, list[str]]:
    interceptor = AuthInterceptor(
        common.auth,
        port=port,
        request_limits=common.request_limits,
        default_request_limit=common.default_request_limit,
    )
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", common.max_message_bytes),
        ("grpc.max_send_message_length", common.max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second gateway on the same port fails instead of sharing
    ]
    if port is PortKind.TOKEN:
        # Anyone can reach this port. With BDP probing gRPC widens each stream's flow-control
        # window to megabytes before the interceptor refuses the call, so 40 anonymous 16 MiB
        # calls still cost ~150 MiB; without it a refused stream costs at most the 64 KiB
        # initial window. The price: large VerifyEvidence bundles upload slower over long
        # round trips. Peers' port keeps BDP (its callers hold a CA-issued certificate).
        options.append(("grpc.http2.bdp_probe", 0))
    server = grpc.aio.server(
        interceptors=[interceptor],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=options,
    )
    services: list[str] = []
    if relay is not None:
        relay_pb2_grpc.add_RelayServiceServicer_to_server(relay, server)
        services.append(RELAY_SERVICE)
    if interop is not None:
        interop_pb2_grpc.add_InteropServiceServicer_to_server(interop, server)
        services.append(INTEROP_SERVICE)
    if audit is not None:
        audit_pb2_grpc.add_AuditServiceServicer_to_server(audit, server)
        services.append(AUDIT_SERVICE)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *services]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*services, HEALTH_SERVICE, REFLECTION_SERVICE], server)
    return server, services


def _bind(
    server: grpc.aio.Server, address: str, tls: ServerTls, *, require_client_certificate: bool
) -> int:
    try:
        credentials = grpc.ssl_server_credentials(
            [(tls.key_pem, tls.cert_pem)],
            root_certificates=b"".join(tls.client_ca_pems) if require_client_certificate else None,
            require_client_auth=require_client_certificate,
        )
        port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ServerStartError(f"cannot listen on {address}: {exc}") from exc
    if port == 0:
        raise ServerStartError(f"cannot listen on {address}")
    return port
