"""JSON-RPC endpoints of one EVM chain: per-call deadlines, typed errors, health and failover.

Each endpoint is an ``AsyncWeb3`` over ``AsyncHTTPProvider``, used for its raw
``make_request``: evidence carries the node's JSON exactly as returned, so web3's result
formatters stay out of the way, and so does its retry layer (the pool fails over instead).

Every failure becomes an :mod:`adapters.base` error naming the endpoint: refused or reset
connections and HTTP errors are ``ChainUnavailable``, a missed deadline ``ChainTimeout``, a body
that is not a JSON-RPC answer ``UnexpectedResponse``, and a JSON-RPC error object
:class:`JsonRpcError` (an ``UnexpectedResponse`` that keeps ``code`` and ``data``; callers turn
reverts into ``RejectedByChain``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import structlog
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import RPCEndpoint

from adapters.base import (
    AdapterError,
    ChainTimeout,
    ChainUnavailable,
    ConfigurationError,
    EndpointHealth,
    RejectedByChain,
    UnexpectedResponse,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

REVERT_CODE = 3
"""JSON-RPC error code of ``execution reverted`` (geth, Anvil, reth, Erigon)."""
METHOD_NOT_FOUND = -32601


class JsonRpcError(UnexpectedResponse):
    """The endpoint answered with a JSON-RPC error object."""

    def __init__(
        self, message: str, *, chain: str, endpoint: str, code: int | None, data: str | None
    ) -> None:
        super().__init__(message, chain=chain, endpoint=endpoint)
        self.code = code
        self.data = data


class EvmEndpoint:
    """One JSON-RPC URL: a call with a deadline, its errors typed, its health recorded."""

    def __init__(self, url: str, *, chain: str, chain_id: int, call_timeout: float) -> None:
        self.url = url
        self.chain = chain
        self.chain_id = chain_id
        self.call_timeout = call_timeout
        self.w3 = AsyncWeb3(
            AsyncHTTPProvider(
                url,
                request_kwargs={"timeout": aiohttp.ClientTimeout(total=call_timeout)},
                exception_retry_configuration=None,
            )
        )
        self.healthy = True
        self.last_error: str | None = None
        self.chain_checked = False

    def health(self) -> EndpointHealth:
        return EndpointHealth(url=self.url, healthy=self.healthy, last_error=self.last_error)

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        """``method(params)``'s ``result``, or the typed error; never waits past the deadline."""
        provider = self.w3.provider
        try:
            async with asyncio.timeout(self.call_timeout):
                response = await provider.make_request(RPCEndpoint(method), list(params))
        except TimeoutError:
            raise ChainTimeout(
                f"{method} got no answer within {self.call_timeout:g} s",
                chain=self.chain,
                endpoint=self.url,
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise ChainUnavailable(
                f"{method}: HTTP {exc.status}", chain=self.chain, endpoint=self.url
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ChainUnavailable(
                f"{method}: {type(exc).__name__}: {exc}", chain=self.chain, endpoint=self.url
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
            raise UnexpectedResponse(
                f"{method}: the answer is not JSON", chain=self.chain, endpoint=self.url
            ) from exc
        return self._result(method, response)

    def _result(self, method: str, response: object) -> Any:
        if not isinstance(response, dict):
            raise UnexpectedResponse(
                f"{method}: the answer is not a JSON-RPC object",
                chain=self.chain,
                endpoint=self.url,
            )
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise UnexpectedResponse(
                    f"{method}: malformed error object", chain=self.chain, endpoint=self.url
                )
            code = error.get("code")
            data = error.get("data")
            raise JsonRpcError(
                f"{method}: JSON-RPC error {code}: {str(error.get('message'))[:300]}",
                chain=self.chain,
                endpoint=self.url,
                code=code if isinstance(code, int) else None,
                data=data if isinstance(data, str) else None,
            )
        if "result" not in response:
            raise UnexpectedResponse(
                f"{method}: the answer has neither result nor error",
                chain=self.chain,
                endpoint=self.url,
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
                endpoint=self.url,
            )
        self.chain_checked = True

    async def close(self) -> None:
        provider = self.w3.provider
        assert isinstance(provider, AsyncHTTPProvider)
        await provider.disconnect()


class EndpointPool:
    """The chain's endpoints in order of preference; an operation fails over along them."""

    def __init__(self, endpoints: Sequence[EvmEndpoint], *, chain: str) -> None:
        self.endpoints = tuple(endpoints)
        self.chain = chain

    def health(self) -> tuple[EndpointHealth, ...]:
        return tuple(e.health() for e in self.endpoints)

    def ordered(self, avoid: frozenset[str] = frozenset()) -> list[EvmEndpoint]:
        """Healthy endpoints first, each group in configured order; ``avoid`` left out."""
        usable = [e for e in self.endpoints if e.url not in avoid]
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
                await endpoint.check_chain_id()
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
                    endpoint=endpoint.url,
                    operation=what,
                    error=type(exc).__name__,
                    reason=exc.reason,
                )
                continue
            if not endpoint.healthy:
                log.info("endpoint_recovered", chain=self.chain, endpoint=endpoint.url)
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
        endpoint=endpoint.url,
    )


def json_object(value: object, what: str, endpoint: EvmEndpoint) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedResponse(
            f"{what}: expected an object, got {json.dumps(value)[:80]}",
            chain=endpoint.chain,
            endpoint=endpoint.url,
        )
    return value


def json_list(value: object, what: str, endpoint: EvmEndpoint) -> list[Any]:
    if not isinstance(value, list):
        raise UnexpectedResponse(
            f"{what}: expected a list, got {json.dumps(value)[:80]}",
            chain=endpoint.chain,
            endpoint=endpoint.url,
        )
    return value
