"""The devnode in-process: ``DevNode`` (asyncio) and ``DevNodeThread`` (for synchronous tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devnet.fisco.chain import DEFAULT_BLOCK_TIME_LIMIT_S, Chain, ChainConfig, _wall_clock_ms
from devnet.fisco.errors import INTERNAL_ERROR, ExecutionCancelled, RpcError
from devnet.fisco.evm import DEFAULT_TX_GAS_LIMIT
from devnet.fisco.keys import SealerKey
from devnet.fisco.rpc import RpcDispatcher
from devnet.fisco.server import HttpLimits, HttpServer
from devnet.fisco.store import KeyValueStore
from devnet.fisco.workers import Workers

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevNodeOptions:
    host: str = "127.0.0.1"
    port: int = 20200
    sealers: int = 4
    block_interval_ms: int = 500
    seed: str = "devnode"
    data_dir: Path | None = None
    chain_id: str = "chain0"
    group_id: str = "group0"
    clock: Callable[[], int] = _wall_clock_ms
    tx_gas_limit: int = DEFAULT_TX_GAS_LIMIT
    block_time_limit_s: float = DEFAULT_BLOCK_TIME_LIMIT_S
    http: HttpLimits = field(default_factory=HttpLimits)


class DevNode:
    """A FISCO BCOS 3.x compatible single-process chain answering JSON-RPC over HTTP."""

    def __init__(self, options: DevNodeOptions) -> None:
        if options.sealers < 1:
            raise ValueError("at least one sealer is needed")
        self.options = options
        db_path = None if options.data_dir is None else Path(options.data_dir) / "chain.sqlite"
        self._store = KeyValueStore(db_path)
        config = ChainConfig(
            chain_id=options.chain_id,
            group_id=options.group_id,
            sealers=options.sealers,
            seed=options.seed,
            clock=options.clock,
            tx_gas_limit=options.tx_gas_limit,
            block_time_limit_s=options.block_time_limit_s,
        )
        self._workers = Workers()
        try:
            self.chain = Chain(config, self._store, self._workers.stop)
        except BaseException:
            self._workers.shutdown()
            self._store.close()
            raise
        self._server = HttpServer(RpcDispatcher(self.chain, self._workers).handle, options.http)
        self._sealer: asyncio.Task[None] | None = None
        self._paused = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.port}"

    @property
    def sealer_keys(self) -> tuple[SealerKey, ...]:
        return self.chain.keys

    @property
    def chain_id(self) -> str:
        return self.options.chain_id

    @property
    def group_id(self) -> str:
        return self.options.group_id

    async def start(self) -> None:
        self.port = await self._server.start(self.options.host, self.options.port)
        self._sealer = asyncio.create_task(self._produce_blocks(), name="devnode-sealer")

    @property
    def http(self) -> HttpServer:
        return self._server

    async def stop(self) -> None:
        """Stop within about a second whatever is running: EVM code and decoding give up at
        their next step, waiting senders get an error, connections get a short grace."""
        self._workers.stop.set()
        if self._sealer is not None:
            self._sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sealer
            self._sealer = None
        self.chain.abandon_pool()
        await self._server.stop()
        self.chain.abandon_pool()
        self._workers.shutdown()
        self._store.close()

    def pause(self) -> None:
        """Stop sealing: transactions wait in the pool (to build blocks of a chosen size)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def _produce_blocks(self) -> None:
        interval = max(self.options.block_interval_ms, 1) / 1000
        while True:
            await asyncio.sleep(interval)
            batch = None if self._paused else self.chain.take_batch()
            if batch is None:
                continue
            try:
                sealed = await self._workers.execute(self.chain.execute, batch)
            except (ExecutionCancelled, asyncio.CancelledError):
                self.chain.fail(batch, ExecutionCancelled("the node is stopping"))
                raise
            except Exception:  # a devnode bug: answer the senders, keep producing blocks
                _log.exception("block_execution_failed")
                self.chain.fail(batch, RpcError(INTERNAL_ERROR, "Internal error"))
                continue
            self.chain.settle(batch, sealed)


class DevNodeThread:
    """Runs a DevNode on its own event loop in a background thread: ``with DevNodeThread(...)``."""

    def __init__(self, options: DevNodeOptions) -> None:
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.node: DevNode | None = None

    def __enter__(self) -> DevNode:
        self._thread.start()
        try:
            self.node = self._run(self._start())
        except BaseException:
            self._shutdown_loop()
            raise
        return self.node

    async def _start(self) -> DevNode:
        node = DevNode(self.options)
        await node.start()
        return node

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` on the node's loop thread (chain state is owned by that thread)."""

        async def wrapper() -> Any:
            return func()

        return self._run(wrapper())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.node is not None:
                self._run(self.node.stop())
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
