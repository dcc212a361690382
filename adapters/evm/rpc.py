"""JSON-RPC endpoints of one EVM chain: per-call deadlines, typed errors, health and failover.

Each endpoint is a plain JSON-RPC-over-HTTP client on one ``aiohttp`` session: evidence carries
the node's JSON exactly as returned, and every answer is read bounded in size and parsed with
:func:`adapters.base.parse_json_answer` (bounded values and nesting) before anything is built
from it. web3's provider is not used for transport: its ``json.loads`` recursed once per ``[``
of an answer like ``[[[[...`` and, with the recursion limit py_ecc raises to 100,000, crashed
the process instead of raising.

Every failure becomes an :mod:`adapters.base` error naming the endpoint: refused or reset
connections and HTTP errors are ``ChainUnavailable``, a missed deadline ``ChainTimeout``, a body
that is not a JSON-RPC answer ``UnexpectedResponse``, and a JSON-RPC error object
:class:`JsonRpcError` (an ``UnexpectedResponse`` that keeps ``code`` and ``data``; callers turn
reverts into ``RejectedByChain``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import structlog

from adapters.base import (
    MAX_RESPONSE_BYTES,
    AdapterError,
    ChainTimeout,
    ChainUnavailable,
    ConfigurationError,
    EndpointHealth,
    RejectedByChain,
    UnexpectedResponse,
    display_url,
    parse_json_answer,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

REVERT_CODE = 3
"""JSON-RPC error code of ``execution reverted`` (geth, Anvil, reth, Erigon)."""
METHOD_NOT_FOUND = -32601
_CHUNK = 64 * 1024


class JsonRpcError(UnexpectedResponse):
    """The endpoint answered with a JSON-RPC error object."""

    def __init__(
        self, message: str, *, chain: str, endpoint: str, code: int | None, data: str | None
    ) -> None:
        super().__init__(message, chain=chain, endpoint=endpoint)
        self.code = code
        self.data = data


class _TooLarge(Exception):
    pass


class EvmEndpoint:
    """One JSON-RPC URL: a call with a deadline, its errors typed, its health recorded."""

    def __init__(
        self,
        url: str,
        *,
        chain: str,
        chain_id: int,
        call_timeout: float,
        name: str | None = None,
    ) -> None:
        self.url = url
        """Only ever posted to: it may carry an API key (path, query or user part)."""
        self.name = name if name is not None else display_url(url)
        """How facts, errors, health, logs and ``refetch(avoid=)`` name this endpoint
        (:func:`adapters.base.endpoint_names`): scheme, host and port, never credentials."""
        self.chain = chain
        self.chain_id = chain_id
        self.call_timeout = call_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self.healthy = True
        self.last_error: str | None = None
        self.chain_checked = False

    def health(self) -> EndpointHealth:
        return EndpointHealth(url=self.name, healthy=self.healthy, last_error=self.last_error)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.call_timeout),
            )
        return self._session

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        """``method(params)``'s ``result``, or the typed error; never waits past the deadline."""
        request_id = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        ).encode()
        try:
            async with asyncio.timeout(self.call_timeout):
                raw = await self._post(body)
        except TimeoutError:
            raise ChainTimeout(
                f"{method} got no answer within {self.call_timeout:g} s",
                chain=self.chain,
                endpoint=self.name,
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise ChainUnavailable(
                f"{method}: HTTP {exc.status}", chain=self.chain, endpoint=self.name
            ) from None
        except _TooLarge:
            raise UnexpectedResponse(
                f"{method}: the answer is larger than {MAX_RESPONSE_BYTES} bytes",
                chain=self.chain,
                endpoint=self.name,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ChainUnavailable(
                f"{method}: {_transport_reason(exc)}", chain=self.chain, endpoint=self.name
            ) from None
        try:
            response = parse_json_answer(raw, what=f"{method} answer")
        except ValueError as exc:
            raise UnexpectedResponse(
                f"{method}: the answer is not acceptable JSON ({str(exc)[:200]})",
                chain=self.chain,
                endpoint=self.name,
            ) from None
        return self._result(method, response, request_id)

    async def _post(self, body: bytes) -> bytes:
        """The HTTP answer's body, never more than MAX_RESPONSE_BYTES of it."""
        async with self._client().post(self.url, data=body) as response:
            response.raise_for_status()
            if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                raise _TooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise _TooLarge
                chunks.append(chunk)
            return b"".join(chunks)

    def _result(self, method: str, response: object, request_id: int) -> Any:
        if not isinstance(response, dict) or response.get("id") != request_id:
            raise UnexpectedResponse(
                f"{method}: the answer is not a JSON-RPC object answering this request",
                chain=self.chain,
                endpoint=self.name,
            )
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise UnexpectedResponse(
                    f"{method}: malformed error object", chain=self.chain, endpoint=self.name
                )
            code = error.get("code")
            data = error.get("data")
            raise JsonRpcError(
                f"{method}: JSON-RPC error {code}: {str(error.get('message'))[:300]}",
                chain=self.chain,
                endpoint=self.name,
                code=code if isinstance(code, int) else None,
                data=data if isinstance(data, str) else None,
            )
        if "result" not in response:
            raise UnexpectedResponse(
                f"{method}: the answer has neither result nor error",
                chain=self.chain,
                endpoint=self.name,
            )
        return response["result"]

    async def check_chain_id(self) -> None:
        """``eth_chainId`` must be the configured chain id (ConfigurationError otherwise)."""
        if self.chain_checked:
            return
        value = quantity(await self.call("eth_chainId", []), "eth_chainId", self)
        if value != self.chain_id:
            raise ConfigurationError(
                f"eth_chainId is {value}, the configuration says {self.chain_id}",
                chain=self.chain,
                endpoint=self.name,
            )
        self.chain_checked = True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class EndpointPool:
    """The chain's endpoints in order of preference; an operation fails over along them."""

    def __init__(
        self,
        endpoints: Sequence[EvmEndpoint],
        *,
        chain: str,
        check: Callable[[EvmEndpoint], Awaitable[None]] | None = None,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.chain = chain
        self._check = check
        """Run once per endpoint, after its chain id, before its first use (ConfigurationError
        when the endpoint's chain is not the configured one)."""
        self._ready: set[str] = set()

    async def _prepare(self, endpoint: EvmEndpoint) -> None:
        if endpoint.name in self._ready:
            return
        await endpoint.check_chain_id()
        if self._check is not None:
            await self._check(endpoint)
        self._ready.add(endpoint.name)

    def health(self) -> tuple[EndpointHealth, ...]:
        return tuple(e.health() for e in self.endpoints)

    def ordered(self, avoid: frozenset[str] = frozenset()) -> list[EvmEndpoint]:
        """Healthy endpoints first, each group in configured order; ``avoid`` (names) left out."""
        usable = [e for e in self.endpoints if e.name not in avoid]
        return [e for e in usable if e.healthy] + [e for e in usable if not e.healthy]

    async def run(
        self,
        operation: Callable[[EvmEndpoint], Awaitable[T]],
        *,
        what: str,
        avoid: frozenset[str] = frozenset(),
    ) -> T:
        """``operation`` on the first endpoint that completes it.

        Every part of one operation comes from one endpoint (a block, its receipts and the
        proof agree with each other). ``RejectedByChain`` is a verdict, not an endpoint fault,
        and is raised at once.
        """
        errors: list[AdapterError] = []
        for endpoint in self.ordered(avoid):
            try:
                await self._prepare(endpoint)
                result = await operation(endpoint)
            except RejectedByChain:
                raise
            except AdapterError as exc:
                endpoint.healthy = False
                endpoint.last_error = exc.reason
                errors.append(exc)
                log.warning(
                    "endpoint_failed",
                    chain=self.chain,
                    endpoint=endpoint.name,
                    operation=what,
                    error=type(exc).__name__,
                    reason=exc.reason,
                )
                continue
            if not endpoint.healthy:
                log.info("endpoint_recovered", chain=self.chain, endpoint=endpoint.name)
            endpoint.healthy = True
            endpoint.last_error = None
            return result
        raise _combined(errors, self.chain, what)

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        """One call with failover."""

        async def one(endpoint: EvmEndpoint) -> Any:
            return await endpoint.call(method, params)

        return await self.run(one, what=method)

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()


def _transport_reason(exc: BaseException) -> str:
    """The failure's kind and OS reason, never its text (which may quote the URL)."""
    reason = type(exc).__name__
    os_error = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
    if isinstance(os_error, OSError) and os_error.strerror:
        reason += f": {os_error.strerror}"
    return reason


def _combined(errors: list[AdapterError], chain: str, what: str) -> AdapterError:
    if not errors:
        return ChainUnavailable(f"{what}: no endpoint left to try", chain=chain)
    if len(errors) == 1:
        return errors[0]
    kinds = {type(e) for e in errors}
    kind: type[AdapterError] = kinds.pop() if len(kinds) == 1 else ChainUnavailable
    if kind is JsonRpcError:
        kind = UnexpectedResponse
    detail = "; ".join(f"{e.endpoint}: {e.reason}" for e in errors)
    return kind(f"{what} failed on every endpoint ({detail})", chain=chain)


def quantity(value: object, what: str, endpoint: EvmEndpoint) -> int:
    """A JSON-RPC hex quantity, or UnexpectedResponse naming the endpoint."""
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise UnexpectedResponse(
        f"{what}: expected a hex quantity, got {json.dumps(value)[:80]}",
        chain=endpoint.chain,
        endpoint=endpoint.name,
    )


def json_object(value: object, what: str, endpoint: EvmEndpoint) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedResponse(
            f"{what}: expected an object, got {json.dumps(value)[:80]}",
            chain=endpoint.chain,
            endpoint=endpoint.name,
        )
    return value


def json_list(value: object, what: str, endpoint: EvmEndpoint) -> list[Any]:
    if not isinstance(value, list):
        raise UnexpectedResponse(
            f"{what}: expected a list, got {json.dumps(value)[:80]}",
            chain=endpoint.chain,
            endpoint=endpoint.name,
        )
    return value
