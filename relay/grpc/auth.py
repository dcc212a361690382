"""Who is calling the gateway's gRPC server, and may they.

TLS is always on. The mutual-TLS port requires a client certificate that chains to a configured
CA; a second, optional port takes bearer tokens without client certificates (gRPC's Python API
cannot ask for a certificate without requiring it, see ``relay.grpc.server.start_server``).
Either way :class:`AuthPolicy` decides who the caller is: a certificate counts only if its
SHA-256 fingerprint (of the DER bytes) is pinned for a principal and, when CA roots are
configured here too, it was issued by one of them and is within its validity period.

- A **peer** gateway is identified by its pinned client certificate only.
- A **developer** or **auditor** by ``authorization: Bearer <token>`` metadata, compared in
  constant time as SHA-256 against the configured token hashes, or by a pinned certificate.
- Services are authorised by principal kind (:data:`SERVICE_KINDS`); the health and reflection
  services answer without credentials so that probes and ``grpcurl`` work.

Every check runs before gRPC reads the request body (``AuthInterceptor``): an anonymous or
unpinned caller cannot make the gateway receive and parse megabytes. A body that does not
parse is ``INVALID_ARGUMENT`` with a fixed message, never the parser's exception.

Refusals are ``UNAUTHENTICATED`` (no credentials, or credentials nobody configured),
``PERMISSION_DENIED`` (a known principal, the wrong service) and ``RESOURCE_EXHAUSTED``
(per-principal concurrency or rate, relay-protocol requirement 19), each with a short message.
Tokens never reach a log or an error message.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio
import structlog
from cryptography import x509

from relay.tls import fingerprint, is_issued_by

log = structlog.get_logger(__name__)

RELAY_SERVICE: Final = "interop.v1.RelayService"
INTEROP_SERVICE: Final = "interop.v1.InteropService"
AUDIT_SERVICE: Final = "interop.v1.AuditService"
HEALTH_SERVICE: Final = "grpc.health.v1.Health"
PUBLIC_SERVICES: Final = frozenset(
    {
        HEALTH_SERVICE,
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Answer without credentials: health probes and reflection (names and schemas only)."""


class PrincipalKind(StrEnum):
    PEER = "peer"
    DEVELOPER = "developer"
    AUDITOR = "auditor"


SERVICE_KINDS: Final[Mapping[str, frozenset[PrincipalKind]]] = {
    RELAY_SERVICE: frozenset({PrincipalKind.PEER}),
    INTEROP_SERVICE: frozenset({PrincipalKind.DEVELOPER}),
    AUDIT_SERVICE: frozenset({PrincipalKind.AUDITOR}),
}
"""Which principal kinds may call which service; any other service is refused to everyone."""


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    name: str
    """The configured name (a peer's name is what ``InboundHandler`` receives)."""


@dataclass(frozen=True, slots=True)
class CertificateBinding:
    """A pinned client certificate: SHA-256 of its DER bytes, lowercase hex (``relay.tls``)."""

    fingerprint: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class TokenBinding:
    """A bearer token, known only by its SHA-256 (32 bytes); peers cannot use tokens."""

    token_sha256: bytes
    principal: Principal


@dataclass(frozen=True, slots=True)
class Limits:
    """Per principal: calls in flight at once, and a token bucket of calls per second. No
    defaults: the values live in one place, ``relay.app`` (documented in docs/api.md)."""

    max_concurrent: int
    rate_per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.max_concurrent < 1 or self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("Limits: every limit must be positive")


def token_sha256(token: str) -> bytes:
    """What the configuration stores for a token (``hashlib.sha256(token.encode()).digest()``)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class AuthError(Exception):
    """A refused call; ``message`` is safe to send to the caller and to log."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


REFUSAL_LOG_INTERVAL_S: Final = 1.0
"""At most one ``grpc_call_refused`` log line per this interval; the next says how many were
skipped. Refused calls come from anyone, so their logging must be bounded too."""

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""Set by :class:`AuthInterceptor` around each authorised call, for the servicers to read."""


class _Bucket:
    __slots__ = ("in_flight", "stamp", "tokens")

    def __init__(self, burst: int, now: float) -> None:
        self.tokens = float(burst)
        self.stamp = now
        self.in_flight = 0


class AuthPolicy:
    """Authentication, authorisation and per-principal limits; pure apart from the clock."""

    def __init__(
        self,
        *,
        certificates: Iterable[CertificateBinding] = (),
        tokens: Iterable[TokenBinding] = (),
        client_ca_pems: Sequence[bytes] = (),
        limits: Limits | Mapping[PrincipalKind, Limits],
        service_kinds: Mapping[str, frozenset[PrincipalKind]] = SERVICE_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._certs: dict[str, Principal] = {}
        for binding in certificates:
            fp = binding.fingerprint.lower().removeprefix("sha256:").replace(":", "")
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise ValueError(f"not a SHA-256 fingerprint for {binding.principal.name!r}")
            if fp in self._certs:
                raise ValueError(f"certificate pinned twice ({binding.principal.name!r})")
            self._certs[fp] = binding.principal
        self._tokens: list[tuple[bytes, Principal]] = []
        for token in tokens:
            if len(token.token_sha256) != 32:
                raise ValueError(f"a token hash is 32 bytes ({token.principal.name!r})")
            if token.principal.kind is PrincipalKind.PEER:
                raise ValueError(
                    f"peers authenticate by certificate only ({token.principal.name!r})"
                )
            self._tokens.append((bytes(token.token_sha256), token.principal))
        self._cas = tuple(client_ca_pems)
        if isinstance(limits, Limits):
            limits = dict.fromkeys(PrincipalKind, limits)
        missing = [k.value for k in PrincipalKind if k not in limits]
        if missing:
            raise ValueError(f"no limits for principal kinds {missing}")
        self.limits: Mapping[PrincipalKind, Limits] = dict(limits)
        """Per principal kind; each principal has its own slots and bucket of these sizes."""
        self._service_kinds = dict(service_kinds)
        self._buckets: dict[Principal, _Bucket] = {}
        self._last_refusal_log = float("-inf")
        self._unlogged_refusals = 0

    # --- authentication -----------------------------------------------------------------------

    def authenticate(
        self, metadata: Sequence[tuple[str, str | bytes]], peer_cert_pem: bytes | None
    ) -> Principal:
        """The caller's principal; AuthError UNAUTHENTICATED when there is none.

        A bearer token, when sent, decides (a wrong one is refused even with a good
        certificate: the caller asked to be that token's principal); otherwise the certificate.
        """
        auth_values = [v for k, v in metadata if k.lower() == "authorization"]
        if len(auth_values) > 1:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "more than one authorization header")
        if auth_values:
            return self._from_token(auth_values[0])
        if peer_cert_pem is None:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                "no credentials: send a bearer token or a configured client certificate",
            )
        return self._from_certificate(peer_cert_pem)

    def authenticate_early(
        self, metadata: Sequence[tuple[str, str | bytes]], port: PortKind
    ) -> Principal | None:
        """What the metadata alone decides, before the request is read: the token's principal,
        or None when only the client certificate can decide (mutual-TLS port, no token).
        AuthError UNAUTHENTICATED for a bad token, or no token on the token port."""
        if any(k.lower() == "authorization" for k, _ in metadata):
            return self.authenticate(metadata, None)
        if port is PortKind.TOKEN:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                "no credentials: send 'authorization: Bearer <token>' metadata",
            )
        return None

    def _from_token(self, value: str | bytes) -> Principal:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'Bearer <token>'"
            )
        digest = token_sha256(token)
        found: Principal | None = None
        for known, principal in self._tokens:  # every hash compared: no early exit
            if hmac.compare_digest(digest, known):
                found = principal
        if found is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        return found

    def _from_certificate(self, pem: bytes) -> Principal:
        try:
            fp = fingerprint(pem)
        except Exception as exc:  # relay.tls raises its own error on an unparsable cert
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED, "the client certificate could not be read"
            ) from exc
        principal = self._certs.get(fp)
        if principal is None:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                f"client certificate sha256:{fp[:16]}… is not configured here",
            )
        if self._cas and not any(is_issued_by(pem, ca) for ca in self._cas):
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED,
                "client certificate not issued by a configured CA",
            )
        cert = x509.load_pem_x509_certificate(pem)
        now = datetime.datetime.now(datetime.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED, "client certificate expired or not yet valid"
            )
        return principal

    # --- authorisation and limits -------------------------------------------------------------

    def authorize(self, principal: Principal, service: str) -> None:
        allowed = self._service_kinds.get(service, frozenset())
        if principal.kind not in allowed:
            raise AuthError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"a {principal.kind.value} may not call {service}",
            )

    def acquire(self, principal: Principal) -> None:
        """Take one call slot and one rate token, or refuse with RESOURCE_EXHAUSTED."""
        limits = self.limits[principal.kind]
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = _Bucket(limits.burst, self._clock())
        now = self._clock()
        bucket.tokens = min(
            float(limits.burst),
            bucket.tokens + (now - bucket.stamp) * limits.rate_per_second,
        )
        bucket.stamp = now
        if bucket.in_flight >= limits.max_concurrent:
            raise AuthError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls in flight (limit {limits.max_concurrent})",
            )
        if bucket.tokens < 1.0:
            raise AuthError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit of {limits.rate_per_second:g} calls/s exceeded",
            )
        bucket.tokens -= 1.0
        bucket.in_flight += 1

    def refusal_log_due(self) -> int | None:
        """None when a refusal should not be logged (at most one a second, so that anonymous
        callers cannot flood the logs), else how many were left unlogged since the last one."""
        now = self._clock()
        if now - self._last_refusal_log < REFUSAL_LOG_INTERVAL_S:
            self._unlogged_refusals += 1
            return None
        suppressed, self._unlogged_refusals = self._unlogged_refusals, 0
        self._last_refusal_log = now
        return suppressed

    def release(self, principal: Principal) -> None:
        bucket = self._buckets.get(principal)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1


def service_of(method: str) -> str:
    """``/interop.v1.RelayService/Forward`` -> ``interop.v1.RelayService``."""
    parts = method.split("/")
    return parts[1] if len(parts) == 3 else ""


def _peer_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    value = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode("ascii")


_Behaviour = Callable[..., Any]

if TYPE_CHECKING:  # generic only in the stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class PortKind(StrEnum):
    """Which of the gateway's two ports a server listens on (``relay.grpc.server``)."""

    MUTUAL_TLS = "mutual-tls"
    """The handshake requires a client certificate chaining to a configured CA."""
    TOKEN = "token"  # noqa: S105 - a port kind, not a secret
    """TLS without client certificates: only bearer tokens can authenticate here."""


UNPARSABLE_REQUEST: Final = "the request is not a valid message for this method"
"""The fixed answer to a request body that does not parse: gRPC would otherwise send the
parser's exception type and text (``UNKNOWN ... DecodeError ...``)."""


@dataclass
class AuthInterceptor(_ServerInterceptor):
    """Applies an :class:`AuthPolicy` to every call.

    ``intercept_service`` runs before gRPC reads the request body and sees only the method
    and the metadata. Whatever can be decided from those is decided there, and a refusal is
    answered by a request-streaming handler that never reads the body: a call on the token
    port without ``authorization``, and any call with a bearer token (the token decides, see
    :meth:`AuthPolicy.authenticate`) that is unknown or not allowed this service. Otherwise
    (mutual-TLS port, no token) the client certificate decides, which only
    ``context.auth_context()`` gives, inside a wrapper of the handler's behaviour; the wrapper
    is request-streaming too (see :func:`_wrap`), so that check also precedes the body.

    ``request_limits`` bounds each method's request body before it is parsed (grpc has only a
    per-server receive limit, which must fit the largest method): methods not named get
    ``default_request_limit``.
    """

    policy: AuthPolicy
    port: PortKind = PortKind.MUTUAL_TLS
    public_services: frozenset[str] = field(default=PUBLIC_SERVICES)
    request_limits: Mapping[str, int] = field(default_factory=dict)
    default_request_limit: int | None = None

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        service = service_of(method)
        metadata = [(k, v) for k, v in (handler_call_details.invocation_metadata or ())]
        principal: Principal | None = None
        if service not in self.public_services:
            try:
                principal = self.policy.authenticate_early(metadata, self.port)
                if principal is not None:
                    self.policy.authorize(principal, service)
            except AuthError as exc:
                return _refusal(self.policy, exc, method, principal)
        # None at run time for an unknown method (grpc answers UNIMPLEMENTED); the stubs omit it.
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        guard = _Guard(
            self.policy,
            service,
            method,
            metadata,
            public=service in self.public_services,
            principal=principal,
            request_limit=self.request_limits.get(method, self.default_request_limit),
        )
        return _wrap(handler, guard)


def _log_refusal(
    policy: AuthPolicy,
    exc: AuthError,
    method: str,
    principal: Principal | None,
    context: grpc.aio.ServicerContext[Any, Any],
) -> None:
    suppressed = policy.refusal_log_due()
    if suppressed is not None:
        log.warning(
            "grpc_call_refused",
            method=method,
            code=exc.code.name,
            reason=exc.message,
            principal=principal.name if principal else None,
            principal_kind=principal.kind.value if principal else None,
            client=context.peer(),
            suppressed_since_last=suppressed,
        )


def _refusal(
    policy: AuthPolicy, exc: AuthError, method: str, principal: Principal | None
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that refuses without reading the request: request-streaming, so gRPC hands
    over an iterator instead of first receiving and parsing the whole body, and no
    deserializer, so nothing is ever parsed. The client sees the status whatever the method's
    real shape."""

    async def refuse(request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        del request_iterator
        _log_refusal(policy, exc, method, principal, context)
        await context.abort(exc.code, exc.message)

    return grpc.stream_stream_rpc_method_handler(refuse)


class _Unparsable:
    """What the guarded deserializer returns instead of raising (see UNPARSABLE_REQUEST)."""

    __slots__ = ("size", "too_large")

    def __init__(self, size: int, *, too_large: bool) -> None:
        self.size = size
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class _Guard:
    policy: AuthPolicy
    service: str
    method: str
    metadata: Sequence[tuple[str, str | bytes]]
    public: bool = False
    principal: Principal | None = None
    """Already authenticated and authorised from the metadata (a bearer token)."""
    request_limit: int | None = None

    async def enter(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal | None:
        """Authenticate, authorise and take a slot; on refusal abort the call (raises).
        None for the public services, which answer everyone and take no slot."""
        if self.public:
            return None
        principal = self.principal
        try:
            if principal is None:
                principal = self.policy.authenticate(self.metadata, _peer_certificate(context))
                self.policy.authorize(principal, self.service)
            self.policy.acquire(principal)
        except AuthError as exc:
            _log_refusal(self.policy, exc, self.method, principal, context)
            await context.abort(exc.code, exc.message)
            raise  # abort raises; this line only keeps the type checker and readers sure
        return principal

    def deserializer(self, parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
        limit = self.request_limit

        def guarded(raw: bytes) -> Any:
            if limit is not None and len(raw) > limit:
                return _Unparsable(len(raw), too_large=True)
            if parse is None:
                return raw
            try:
                return parse(raw)
            except Exception:  # any parser failure: the caller's bytes, not our bug
                return _Unparsable(len(raw), too_large=False)

        return guarded

    async def check_request(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        if not isinstance(request, _Unparsable):
            return
        if request.too_large:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request of {request.size} bytes; {self.method} takes at most "
                f"{self.request_limit} bytes",
            )
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, UNPARSABLE_REQUEST)

    async def checked_stream(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for request in requests:
            await self.check_request(request, context)
            yield request

    def release(self, principal: Principal | None) -> None:
        if principal is not None:
            self.policy.release(principal)


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], guard: _Guard
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler whose behaviour first passes ``guard`` and holds its slot throughout,
    and whose requests are bounded and parsed without ever raising into gRPC.

    Every handler becomes request-streaming: gRPC then runs the behaviour before receiving
    anything, so the guard (client certificate included) decides before the body is read; a
    unary request is then taken as the stream's first message. The client cannot tell."""
    kwargs = {
        "request_deserializer": guard.deserializer(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _single(handler.unary_unary, guard, streaming=False), **kwargs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _single(handler.stream_unary, guard, streaming=True), **kwargs
        )
    if handler.unary_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _stream(handler.unary_stream, guard, streaming=False), **kwargs
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _stream(handler.stream_stream, guard, streaming=True), **kwargs
        )
    return handler


async def _fail(exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    """The error boundary of every guarded call: an exception a servicer did not turn into a
    status becomes UNAVAILABLE (retryable errors) or INTERNAL with a fixed message. gRPC would
    otherwise send ``Unexpected <class ...>: <text>`` to the caller."""
    if isinstance(exc, grpc.aio.AbortError):
        return  # context.abort already set the status
    retryable = bool(getattr(exc, "retryable", False))
    log.error(
        "grpc_handler_failed",
        method=method,
        error=type(exc).__name__,
        retryable=retryable,
        exc_info=exc,
    )
    if retryable:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "temporarily unavailable; retry later")
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (logged by the gateway)")


async def _request(
    guard: _Guard, requests: Any, context: grpc.aio.ServicerContext[Any, Any], *, streaming: bool
) -> Any:
    """What the original behaviour takes: the checked stream, or its one (first) message."""
    if streaming:
        return guard.checked_stream(requests, context)
    request = await anext(aiter(requests), _NO_REQUEST)
    if request is _NO_REQUEST:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request")
    await guard.check_request(request, context)
    return request


_NO_REQUEST: Final = object()


def _single(behaviour: _Behaviour, guard: _Guard, *, streaming: bool) -> _Behaviour:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        principal = await guard.enter(context)
        token = current_principal.set(principal)
        try:
            result = behaviour(
                await _request(guard, request, context, streaming=streaming), context
            )
            return await result if inspect.isawaitable(result) else result
        except Exception as exc:
            await _fail(exc, context, guard.method)
            raise
        finally:
            current_principal.reset(token)
            guard.release(principal)

    return guarded


def _stream(behaviour: _Behaviour, guard: _Guard, *, streaming: bool) -> _Behaviour:
    async def guarded(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        principal = await guard.enter(context)
        token = current_principal.set(principal)
        try:
            produced = behaviour(
                await _request(guard, request, context, streaming=streaming), context
            )
            if inspect.isasyncgen(produced) or hasattr(produced, "__aiter__"):
                async for item in produced:
                    yield item
            else:  # a coroutine that writes with context.write()
                await produced
        except Exception as exc:
            await _fail(exc, context, guard.method)
            raise
        finally:
            with contextlib.suppress(ValueError):  # finalised in another context
                current_principal.reset(token)
            guard.release(principal)

    return guarded


__all__ = [
    "AUDIT_SERVICE",
    "HEALTH_SERVICE",
    "INTEROP_SERVICE",
    "PUBLIC_SERVICES",
    "RELAY_SERVICE",
    "SERVICE_KINDS",
    "UNPARSABLE_REQUEST",
    "AuthError",
    "AuthInterceptor",
    "AuthPolicy",
    "CertificateBinding",
    "Limits",
    "PortKind",
    "Principal",
    "PrincipalKind",
    "TokenBinding",
    "current_principal",
    "service_of",
    "token_sha256",
]
