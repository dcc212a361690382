"""JSON-RPC 2.0 to FISCO BCOS 3.x nodes over HTTP or mutual TLS, and a pool with failover.

Transport only: no decoding beyond the JSON envelope. Every call has a deadline; every failure
becomes an ``adapters.base`` error naming the endpoint: refused or reset connections and TLS
failures are ``ChainUnavailable``, a missed deadline ``ChainTimeout``, a body that is not a
JSON-RPC answer ``UnexpectedResponse``, and a node's error object is mapped by its code
(``/work/shared/specs/fisco-bcos.md`` §1.1, the txpool ``TransactionStatus`` codes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import aiohttp
import structlog

from adapters.base import (
    MAX_RESPONSE_BYTES,
    AdapterError,
    ChainTimeout,
    ChainUnavailable,
    ConfigurationError,
    EndpointHealth,
    NotFound,
    RejectedByChain,
    UnexpectedResponse,
    display_url,
    endpoint_names,
    parse_json_answer,
)
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Node error codes (bcos-framework TransactionStatus, bcos-ledger LedgerError, JsonRpcError).
_TX_ALREADY_KNOWN: Final = frozenset({10004, 10005})  # AlreadyInTxPool, TxAlreadyInChain
_TX_REFUSED: Final = frozenset({10000, 10001, 10003, 10006, 10007, 10008})
_BUSY: Final = frozenset({10002, -32000, -32004, -32603})  # pool full, node not ready, internal
_TX_POOL_TIMEOUT: Final = 10010
_NOT_FOUND: Final = frozenset({3006, 3008})  # "Get block failed", GetStorageError
_GROUP_NOT_EXIST: Final = -32005


class TransactionKnown(RejectedByChain):
    """The node already holds this transaction (pool or chain): wait for its receipt."""


def map_node_error(
    code: object, message: object, *, chain: str, endpoint: str, method: str
) -> AdapterError:
    """The base error for a JSON-RPC ``error`` object of a FISCO node."""
    text = f"{method}: node error {code}: {str(message)[:300]}"
    kind: type[AdapterError]
    if not isinstance(code, int) or isinstance(code, bool):
        kind = UnexpectedResponse
    elif code in _TX_ALREADY_KNOWN:
        kind = TransactionKnown
    elif code in _TX_REFUSED:
        kind = RejectedByChain
    elif code in _BUSY:
        kind = ChainUnavailable
    elif code == _TX_POOL_TIMEOUT:
        kind = ChainTimeout
    elif code in _NOT_FOUND:
        kind = NotFound
    elif code == _GROUP_NOT_EXIST:
        kind = ConfigurationError
    else:
        kind = UnexpectedResponse
    return kind(text, chain=chain, endpoint=endpoint)


def ssl_context(endpoint: FiscoEndpoint) -> ssl.SSLContext | None:
    """Mutual TLS as the node's SDK does it: the chain CA, the SDK certificate and key.

    The node's certificate must chain to ``ca_cert``; host names are not checked (FISCO node
    certificates name the node, e.g. ``CN=node0``). None for plain HTTP.
    """
    if not endpoint.tls:
        return None
    context = ssl.create_default_context(
        cafile=str(endpoint.ca_cert) if endpoint.ca_cert is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.ca_cert is not None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
    if endpoint.client_cert is not None and endpoint.client_key is not None:
        context.load_cert_chain(str(endpoint.client_cert), str(endpoint.client_key))
    return context


class _HttpStatus(Exception):
    """An HTTP status other than 200 (its text without the URL, which may hold a key)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.text = status, text


class FiscoRpcClient:
    """One endpoint. ``call(method, *params)`` sends ``[group, "", *params]``."""

    def __init__(
        self,
        endpoint: FiscoEndpoint,
        *,
        chain: str,
        group: str,
        timeout: float,
        name: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.url = endpoint.url
        """Where requests go; may carry credentials, so it is never shown: see ``name``."""
        self.name = display_url(endpoint.url) if name is None else name
        """How facts, errors, logs and ``refetch(avoid=)`` name this endpoint."""
        self.chain = chain
        self.group = group
        self.timeout = timeout
        self._ssl = ssl_context(endpoint)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def _error(self, kind: type[AdapterError], message: str) -> AdapterError:
        return kind(self._scrub(message), chain=self.chain, endpoint=self.name)

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's secret parts (a library's message may quote the URL)."""
        parts = urlsplit(self.url)
        secrets = [self.url, parts.path if parts.path != "/" else "", parts.query]
        secrets += [parts.username or "", parts.password or ""]
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) > 1:
                text = text.replace(secret, "…")
        return text

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        return await self.request(method, [self.group, "", *params], timeout=timeout)

    async def request(
        self, method: str, params: Sequence[Any], *, timeout: float | None = None
    ) -> Any:
        """The ``result`` of one JSON-RPC call, or the mapped error."""
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": request_id}
        deadline = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(deadline):
                raw = await self._post(json.dumps(body).encode())
        except TimeoutError:
            raise self._error(ChainTimeout, f"{method}: no answer within {deadline:g} s") from None
        except _HttpStatus as exc:
            raise self._error(
                ChainUnavailable, f"{method}: HTTP {exc.status}: {exc.text}"
            ) from None
        # ``from None``: the library's exception may quote the URL, which may hold a key.
        except aiohttp.ClientError as exc:
            raise self._error(ChainUnavailable, f"{method}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise self._error(ChainUnavailable, f"{method}: {exc}") from None
        return self._result(method, request_id, raw)

    async def _post(self, body: bytes) -> bytes:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(connector=connector)
        headers = {"Content-Type": "application/json"}
        async with self._session.post(self.url, data=body, headers=headers) as response:
            # ``read(n)`` returns what has arrived, up to n bytes: read to the end, bounded.
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise aiohttp.ClientPayloadError("response larger than the limit")
                chunks.append(chunk)
            data = b"".join(chunks)
            if response.status != 200:
                raise _HttpStatus(response.status, data[:200].decode("utf-8", "replace"))
            return data

    def _result(self, method: str, request_id: int, raw: bytes) -> Any:
        # Bounded before parsing: ``json.loads`` of ``[[[[...`` recurses on the C stack up to
        # the recursion limit, which py_ecc raises to 100,000, and crashes the process.
        try:
            answer = parse_json_answer(raw, what=f"{method} answer")
        except ValueError as exc:
            raise self._error(UnexpectedResponse, f"{method}: {str(exc)[:200]}") from None
        if not isinstance(answer, dict) or answer.get("id") != request_id:
            raise self._error(UnexpectedResponse, f"{method}: not an answer to this request")
        error = answer.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise self._error(UnexpectedResponse, f"{method}: malformed error object")
            raise map_node_error(
                error.get("code"),
                error.get("message"),
                chain=self.chain,
                endpoint=self.name,
                method=method,
            )
        if "result" not in answer:
            raise self._error(UnexpectedResponse, f"{method}: neither result nor error")
        return answer["result"]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class _Health:
    healthy: bool = True
    last_error: str | None = None
    failed_at: float = 0.0


FAILOVER_ERRORS: Final = (ChainUnavailable, ChainTimeout, UnexpectedResponse)
"""Failures of an endpoint rather than answers about the chain: try the next endpoint."""


class EndpointPool:
    """The configured endpoints in order; healthy ones first, failed ones retried last."""

    def __init__(self, settings: FiscoSettings) -> None:
        self.chain = settings.chain
        names = endpoint_names([ep.url for ep in settings.endpoints])
        self.clients = tuple(
            FiscoRpcClient(
                ep,
                chain=settings.chain,
                group=settings.group_id,
                timeout=settings.call_timeout,
                name=name,
            )
            for ep, name in zip(settings.endpoints, names, strict=True)
        )
        self._health = {c.name: _Health() for c in self.clients}

    def candidates(self, avoid: frozenset[str] = frozenset()) -> list[FiscoRpcClient]:
        usable = [c for c in self.clients if c.name not in avoid]
        return sorted(
            usable,
            key=lambda c: (not self._health[c.name].healthy, self._health[c.name].failed_at),
        )

    def mark_failed(self, client: FiscoRpcClient, error: AdapterError) -> None:
        health = self._health[client.name]
        health.healthy, health.last_error, health.failed_at = False, error.reason, time.monotonic()
        log.warning("endpoint_failed", chain=self.chain, endpoint=client.name, reason=error.reason)

    def mark_ok(self, client: FiscoRpcClient) -> None:
        health = self._health[client.name]
        if not health.healthy:
            log.info("endpoint_recovered", chain=self.chain, endpoint=client.name)
        health.healthy = True

    async def run(
        self,
        operation: Callable[[FiscoRpcClient], Awaitable[T]],
        *,
        avoid: frozenset[str] = frozenset(),
    ) -> T:
        """``operation`` on one endpoint after another until one does not fail as an endpoint."""
        last: AdapterError | None = None
        for client in self.candidates(avoid):
            try:
                result = await operation(client)
            except FAILOVER_ERRORS as exc:
                # the error may name another endpoint (one asked to confirm an answer)
                named = [c for c in self.clients if c.name == exc.endpoint]
                self.mark_failed(named[0] if named else client, exc)
                last = exc
                continue
            self.mark_ok(client)
            return result
        if last is not None:
            raise last
        raise ChainUnavailable("no endpoint outside the avoided ones", chain=self.chain)

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        async def one(client: FiscoRpcClient) -> Any:
            return await client.call(method, *params, timeout=timeout)

        return await self.run(one)

    def health(self) -> tuple[EndpointHealth, ...]:
        return tuple(
            EndpointHealth(c.name, self._health[c.name].healthy, self._health[c.name].last_error)
            for c in self.clients
        )

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
