"""Threads that keep heavy work off the event loop, and the stop flag they all watch.

``evm``: one thread owns the EVM and its state (blocks, calls, getCode), so executions never
overlap. ``decode``: large request bodies (JSON, hex, TARS) are parsed here, and ledger scans
that grow with the chain (``getLogs``) run here. py-evm, the TARS
reader and the JSON depth scan are Python loops, so the event loop gets the GIL every few
milliseconds and keeps answering; on ``stop`` each of them gives up within one step.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
DECODE_THREADS = 2
INLINE_BYTES = 64 * 1024  # smaller bodies decode on the loop: a thread hop would cost more


class Workers:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self._evm = ThreadPoolExecutor(1, thread_name_prefix="devnode-evm")
        self._decode = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="devnode-decode")

    async def execute(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func`` in the EVM thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._evm, functools.partial(func, *args, **kwargs))

    async def decode(self, size: int, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func`` in a decoding thread, or right here if its input is ``size`` <= 64 KiB."""
        if size <= INLINE_BYTES:
            return func(*args, **kwargs)
        return await self.read(func, *args, **kwargs)

    async def read(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func``, which only reads the ledger, in a decoding thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._decode, functools.partial(func, *args, **kwargs))

    def shutdown(self) -> None:
        """Make running work give up, then wait for the threads (a few ms)."""
        self.stop.set()
        for pool in (self._evm, self._decode):
            pool.shutdown(wait=True, cancel_futures=True)
