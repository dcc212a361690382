"""Several replicas of one gateway, one active: the lease loop.

Every replica opens the store and serves the read side of the API all the time. Only the
holder of the gateway's lease (a row in the shared database, named after the gateway) runs the
*active work*: the pipeline (observing chains, submitting, forwarding), the audit checkpoint
timer, and the peer writes (``Forward``/``Acknowledge``); a standby answers peers with
:class:`StandbyReplica` (gRPC ``UNAVAILABLE`` "standby replica"), so they try the next address.

The loop, every ``lease_seconds / 3``:

- standby: try to take the lease; on success, fence the store with the new token (every write
  transaction then checks, in the same transaction and by the database clock, that this
  replica still holds the lease with that token), then start the active work;
- active: renew; when the renewal fails (the store fails, or does not answer before the lease
  would expire by this replica's own reckoning: the time the last successful renewal was
  sent plus ``lease_seconds``; or another replica holds the lease; or the token changed
  because the lease expired meanwhile), stop the active work at once and go back to standby.

A write refused with :class:`relay.store.FencedError` anywhere in the pipeline reaches
:func:`relay.retry.classify`, which tells the replica that started that pipeline: it stops the
pipeline at once and goes back to standby. The fence stays after stepping down, so nothing a
stopped pipeline still had in flight can be written. On a clean shutdown (SIGTERM) peer writes
are refused at once, the pipeline drains while the lease is still renewed, and then the lease is
released, so that a standby takes over at once instead of after the lease expires.

A replica that is paused (SIGSTOP, a long GC, a frozen VM) and resumes after its lease expired
may run pipeline code before its loop notices: the fence makes every such write fail and
change nothing.

With SQLite the same code runs in one process (the data folder lock refuses a second one): it
takes the lease at once and keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog

from relay.links import AckItem, ForwardItem, InboundHandler, Verdict
from relay.retry import describe, on_fenced
from relay.store import FencedError

log = structlog.get_logger(__name__)

RENEWALS_PER_LEASE: Final = 3
STANDBY_TOKEN: Final = 0
"""The fence a replica sets before it ever held the lease: no token is 0, so a standby's
writes are refused too."""


class StandbyReplica(Exception):
    """This replica of the gateway is a standby: the caller should try another address."""

    retryable = True

    def __init__(self, holder: str) -> None:
        super().__init__(f"standby replica {holder}")
        self.holder = holder


class LeaseStore(Protocol):
    """The part of :class:`relay.store.Store` the lease loop uses."""

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None: ...

    async def release_lease(self, name: str, holder: str) -> None: ...

    def fence(self, name: str, holder: str, token: int | None) -> None: ...


class ActiveWork(Protocol):
    """What runs only on the active replica (the pipeline and its companions)."""

    async def start(self) -> None: ...

    async def stop(self, *, drain: bool) -> None:
        """``drain``: let in-flight work finish (a clean shutdown while still holding the
        lease); else cancel it at once (the lease is lost: its writes would be refused)."""
        ...


def holder_name(configured: str | None, *, shared: bool) -> str:
    """This replica's name in the lease table: the configured ``[store] replica``, else
    ``hostname-pid`` on a shared (PostgreSQL) store. On SQLite (``shared=False``) the default
    is the host name alone: the data folder lock already keeps it to one process, so a process
    restarted after a crash may take its predecessor's unexpired lease at once."""
    if configured:
        return configured
    host = socket.gethostname() or "gateway"
    return f"{host}-{os.getpid()}" if shared else host


class Replica:
    """The lease loop of one replica; also the ``InboundHandler`` the gRPC server calls (it
    hands peer writes to ``handler()`` while active and refuses them on standby).

    ``clock`` (monotonic seconds) times the store's answers; ``on_change`` is told each
    change between active (True) and standby (False), e.g. for the leader metric."""

    def __init__(
        self,
        store: LeaseStore,
        work: ActiveWork,
        *,
        lease: str,
        holder: str,
        lease_seconds: float,
        handler: Callable[[], InboundHandler] | None = None,
        on_change: Sequence[Callable[[bool], None]] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
        self.store = store
        self.work = work
        self.lease = lease
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self._handler = handler
        self._on_change = tuple(on_change)
        self._clock = clock
        self._active = False
        self._token: int | None = None
        self._expires = 0.0
        """``clock()`` when the lease expires at the latest: sent time of the last renewal
        that succeeded, plus ``lease_seconds`` (the database set it later than that)."""
        self._fenced: str | None = None
        """Why the active work must stop (a FencedError's text), until the loop acts on it."""
        self._wake = asyncio.Event()
        self._closed = False
        self._draining = False
        """Shutting down: the work drains, the loop only keeps the lease meanwhile."""
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._active

    @property
    def token(self) -> int | None:
        """The fencing token of the lease this replica holds or last held."""
        return self._token

    # -- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a task of its own until :meth:`stop`."""
        self._task = asyncio.create_task(self.run(), name=f"replica:{self.lease}")

    async def stop(self) -> None:
        """A clean shutdown: refuse peer writes, let the active work drain while the loop
        keeps renewing the lease (so what drains is still written), then end the loop and
        release the lease."""
        if self._active and self._task is not None:
            self._draining = True
            self._set_active(False)
            await self.work.stop(drain=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.close()

    async def run(self) -> None:
        """Run the lease loop until cancelled; the caller then awaits :meth:`close`."""
        self.store.fence(self.lease, self.holder, STANDBY_TOKEN)
        log.info(
            "replica_standby",
            replica=self.holder,
            lease=self.lease,
            lease_seconds=self.lease_seconds,
        )
        while not self._closed:
            try:
                await self.tick()
            except Exception as exc:  # the loop's task boundary: log, keep the loop alive
                log.exception("replica_loop_failed", replica=self.holder, reason=describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def tick(self) -> None:
        """One round: act on a fenced write, then take or renew the lease (tests call it)."""
        if self._draining:
            with contextlib.suppress(Exception):  # lost meanwhile: the fence refuses the rest
                async with asyncio.timeout(self.interval):
                    await self.store.acquire_lease(self.lease, self.holder, self.lease_seconds)
            return
        if self._fenced is not None:
            reason, self._fenced = self._fenced, None
            if self._active:
                await self._step_down("fenced", reason)
        sent = self._clock()
        budget = self._expires - sent if self._active else self.interval
        if budget <= 0:  # resumed after a pause, or the loop was starved: too late to renew
            await self._step_down("expired", "the lease expired before this replica renewed it")
            budget = self.interval
        try:
            async with asyncio.timeout(budget):
                token = await self.store.acquire_lease(self.lease, self.holder, self.lease_seconds)
        except Exception as exc:  # the loop's task boundary: any store failure
            reason = "no answer in time" if isinstance(exc, TimeoutError) else describe(exc)
            if self._active:
                await self._step_down("renewal_failed", reason)
            else:
                log.warning("lease_acquire_failed", replica=self.holder, reason=reason)
            return
        if token is None:
            if self._active:
                await self._step_down("held_by_another", "another replica holds the lease")
            return
        if self._active and token != self._token:
            await self._step_down("token_changed", f"the lease expired (token now {token})")
        self._expires = sent + self.lease_seconds
        if not self._active:
            await self._activate(token)

    async def close(self) -> None:
        """Stop the active work and release the lease (a standby takes over at once)."""
        self._closed = True
        self._wake.set()
        was_active = self._active
        if was_active:
            self._set_active(False)
            await self.work.stop(drain=True)
        if self._token is not None:
            try:
                await self.store.release_lease(self.lease, self.holder)
            except Exception as exc:  # shutting down: the lease then simply expires
                log.warning("lease_release_failed", replica=self.holder, reason=describe(exc))
            else:
                log.info("lease_released", replica=self.holder, lease=self.lease, token=self._token)

    async def _activate(self, token: int) -> None:
        self.store.fence(self.lease, self.holder, token)
        self._token = token
        self._fenced = None
        # The pipeline's tasks inherit this context: a FencedError they classify comes here.
        hook = on_fenced.set(functools.partial(self._on_fenced, token))
        try:
            await self.work.start()
        except Exception as exc:  # could not start: stay standby, try again next round
            log.error("replica_start_failed", replica=self.holder, reason=describe(exc))
            await self.work.stop(drain=False)
            return
        finally:
            on_fenced.reset(hook)
        self._set_active(True)
        log.info("replica_active", replica=self.holder, lease=self.lease, token=token)

    async def _step_down(self, reason: str, detail: str) -> None:
        """Stop the active work now; the fence stays, so whatever it still does is refused."""
        self._set_active(False)
        log.warning(
            "lease_lost",
            replica=self.holder,
            lease=self.lease,
            token=self._token,
            reason=reason,
            detail=detail,
        )
        await self.work.stop(drain=False)
        log.info("replica_standby", replica=self.holder, lease=self.lease, token=self._token)

    def _set_active(self, active: bool) -> None:
        self._active = active
        for notify in self._on_change:
            notify(active)

    def _on_fenced(self, token: int, exc: FencedError) -> None:
        """Called (synchronously, from a pipeline task) by ``relay.retry.classify``."""
        if token != self._token or not self._active or self._fenced is not None:
            return
        self._fenced = describe(exc)
        log.error("replica_fenced", replica=self.holder, token=token, reason=self._fenced)
        self._wake.set()

    # -- InboundHandler: peer writes only on the active replica --------------------------------

    def _target(self) -> InboundHandler:
        if not self._active or self._handler is None:
            raise StandbyReplica(self.holder)
        return self._handler()

    async def handle_forward(self, peer: str, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        target = self._target()
        try:
            return await target.handle_forward(peer, items)
        except FencedError as exc:
            self._fenced_inbound(exc)
            raise StandbyReplica(self.holder) from exc

    async def handle_acknowledge(self, peer: str, items: Sequence[AckItem]) -> Sequence[Verdict]:
        target = self._target()
        try:
            return await target.handle_acknowledge(peer, items)
        except FencedError as exc:
            self._fenced_inbound(exc)
            raise StandbyReplica(self.holder) from exc

    def _fenced_inbound(self, exc: FencedError) -> None:
        if self._token is not None:
            self._on_fenced(self._token, exc)


__all__ = ["ActiveWork", "LeaseStore", "Replica", "StandbyReplica", "holder_name"]
