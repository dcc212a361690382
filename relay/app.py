"""The composition root of ``gateway run``: a validated :class:`GatewayConfig` becomes a running
gateway (adapters, store, trust roots, verifier, peer links, pipeline, gRPC server).

Start-up fails fast with a typed error: :class:`ConfigError` for what the file or the keys get
wrong, :class:`StartError` for what the world gets wrong (a served chain unreachable, a port
taken, another gateway holding the data folder's lock). A served chain that cannot be read at
start stops the start: an operator expects a wrong URL or a chain that is down to be reported
at once, and a supervisor (systemd, compose) restarts the process; once running, chain outages
are retried by the pipeline. Remote chains are a peer's business: they are not probed at start.

The read side (the developer API, audit, status) is served at once; the pipeline and the peer
writes run only while this replica holds the gateway's lease (relay/replica.py: with SQLite at
once, with PostgreSQL one replica of several at a time).

Then it runs until SIGTERM or SIGINT (or ``stop`` is set) and drains: Watch streams end, the
server stops taking calls and lets running ones finish within a grace period, the node stops
(in-flight submissions finish, adapters and store close).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog

from adapters.base import (
    AdapterError,
    ChainAdapter,
    ChainStatus,
    ChainUnavailable,
    EndpointHealth,
    endpoint_names,
)
from adapters.evm.adapter import EvmAdapter
from adapters.evm.rpc import EvmEndpoint
from adapters.fisco.adapter import FiscoAdapter
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoEndpoint
from relay.anchor import Anchorer, anchorer
from relay.audit import AuditKey, AuditKeyError, AuditLog, CheckpointPolicy, parse_public_key
from relay.audit_guard import ANCHOR_FILE
from relay.config import (
    ConfigError,
    ConfigProblem,
    EvmChainConfig,
    FiscoChainConfig,
    GatewayConfig,
    require_runnable,
)
from relay.grpc.audit_service import AuditServicer, PeerAudit
from relay.grpc.auth import (
    AUDIT_SERVICE,
    SERVICE_KINDS,
    AuthPolicy,
    CertificateBinding,
    Limits,
    Principal,
    PrincipalKind,
    TokenBinding,
)
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.grpc.interop import ChainEntry, InteropService, StatusReader, VerifyLimits
from relay.grpc.server import GatewayServer, ServerStartError, ServerTls, start_server
from relay.metrics import CountingVerifier, Metrics
from relay.node import GatewayNode
from relay.pg_store import PostgresStore
from relay.pipeline import PipelineSettings
from relay.replica import Replica, holder_name
from relay.sqlite_store import SqliteStore
from relay.store import StoreError
from relay.trust import BlockReader, ConfiguredTrustStore, trust_configs
from relay.verify import FactVerifier

log = structlog.get_logger(__name__)

# The gRPC layer's resource limits, in one place (configuration keys come later); docs/api.md
# lists them. Each principal (a peer, a token, a pinned developer certificate) gets its own
# slots and token bucket of its kind's size.
PRINCIPAL_LIMITS: Final[Mapping[PrincipalKind, Limits]] = {
    # A peer's calls carry batches of up to 500 items; the pipeline bounds their verification.
    PrincipalKind.PEER: Limits(max_concurrent=32, rate_per_second=100.0, burst=200),
    # Each open WatchMessages stream holds one of a developer's slots while it lasts.
    PrincipalKind.DEVELOPER: Limits(max_concurrent=32, rate_per_second=100.0, burst=200),
    PrincipalKind.AUDITOR: Limits(max_concurrent=8, rate_per_second=20.0, burst=50),
}
GRPC_MAX_CONCURRENT_RPCS: Final = 256
"""Calls each of the two gRPC servers runs at once, all callers together."""
API_VERIFY_LIMITS: Final = VerifyLimits(max_concurrent=4, lookups_per_second=1.0, lookup_burst=20)
"""VerifyEvidence: bundles verified at once (all developers; 2 cores), and per principal the
EVM block-hash lookups for heights not checked lately."""

START_PROBE_TIMEOUT_S: Final = 15.0
STOP_GRACE_S: Final = 5.0
REMOTE_CALL_TIMEOUT_S: Final = 10.0
LOCK_NAME: Final = "gateway.lock"


class StartError(Exception):
    """The gateway could not start for a reason outside the file (chain down, port taken)."""


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """What ``ready`` receives once the gateway listens."""

    name: str
    listen: str
    api_listen: str | None
    served: tuple[str, ...]
    remote: tuple[str, ...]
    peers: tuple[str, ...]


@dataclass
class _Parts:
    """Everything built from the configuration, before anything runs."""

    adapters: dict[str, ChainAdapter]
    remote_readers: dict[str, StatusReader] = field(default_factory=dict)
    chain_time: dict[str, Callable[[], Awaitable[int]]] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def run_gateway(
    config: GatewayConfig,
    *,
    environ: Mapping[str, str] = os.environ,
    ready: Callable[[RunningGateway], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain. Raises ConfigError or StartError."""
    require_runnable(config)
    identity = config.gateway
    assert identity is not None
    assert identity.tls is not None
    tls = _read_tls(config)
    _make_data_dir(identity.data_dir)
    with _data_lock(identity.data_dir):
        url = config.store.resolve_url(source=str(config.path))
        if url is not None:
            try:
                # First of all: an unreachable or un-migrated database is said at once, before
                # ports and chains (nothing else helps until `gateway db migrate` ran).
                await PostgresStore(url).check()
            except StoreError as exc:
                raise StartError(str(exc)) from None
        for address in filter(None, (identity.listen, config.api.listen, config.metrics.listen)):
            _check_free(address)
        metrics = Metrics(replica=holder_name(config.store.replica, shared=config.store.postgres))
        async with metrics.serving(config.metrics.listen):
            await _run(config, tls, environ, ready, stop, metrics=metrics)


async def _run(
    config: GatewayConfig,
    tls: ServerTls,
    environ: Mapping[str, str],
    ready: Callable[[RunningGateway], None] | None,
    stop: asyncio.Event | None,
    *,
    metrics: Metrics,
) -> None:
    identity = config.gateway
    assert identity is not None
    parts = _build_chains(config, environ)
    configs = trust_configs(config.chains)
    evm_readers = {
        name: r.endpoints for name, r in parts.remote_readers.items() if isinstance(r, _RemoteEvm)
    }
    trust = ConfiguredTrustStore(configs, readers=evm_readers)
    verifier = FactVerifier(trust, configs)
    links = _links(config, tls)
    audit_log = _audit_log(config)
    store = make_store(config, identity.data_dir, audit_log)
    node = GatewayNode(
        store=store,
        adapters=parts.adapters,
        verifier=CountingVerifier(verifier, metrics),
        routes=[(r.source, r.destination) for r in config.routes],
        links={chain: links[p.name] for p in config.peers.values() for chain in p.chains},
        peer_chains={p.name: p.chains for p in config.peers.values()},
        settings=PipelineSettings.from_relay(config.relay),
        closers=[trust.close, *(link.close for link in links.values()), *parts.closers],
        chain_time=parts.chain_time,
        metrics=metrics,
    )
    try:
        await _probe(parts.adapters)
    except BaseException:
        await node.stop()
        raise
    service = InteropService(
        sender=node,
        store=node.store,
        verifier=verifier,
        chains=_chain_entries(config, parts),
        stuck_after=config.relay.stuck_after,
        verify_limits=API_VERIFY_LIMITS,
    )
    auditor = (
        AuditServicer(
            store,
            gateway=identity.name,
            key=audit_log.key,
            peers=[
                PeerAudit(
                    p.name,
                    p.chains,
                    parse_public_key(p.audit_key) if p.audit_key else None,
                    links[p.name].channel,
                )
                for p in config.peers.values()
            ],
        )
        if audit_log is not None
        else None
    )
    try:
        await node.start(pipeline=False)  # the replica runs the pipeline while it holds the lease
    except StoreError as exc:  # unreachable database, schema not migrated: said, no traceback
        await node.stop()
        raise StartError(str(exc)) from None
    replica = Replica(
        store,
        _ActiveWork(
            node,
            store,
            config.audit.checkpoint_seconds if audit_log else None,
            anchorer(config, store, parts.adapters) if audit_log else None,
        ),
        lease=identity.name,
        holder=metrics.replica,
        lease_seconds=config.store.lease_seconds,
        handler=lambda: node.handler,
        on_change=[lambda active: metrics.set_leader(metrics.replica, active)],
    )
    try:
        server = await start_server(
            listen=identity.listen,
            token_listen=config.api.listen,
            tls=tls,
            auth=_policy(config),
            relay_handler=replica,
            interop_servicer=service,
            max_concurrent_rpcs=GRPC_MAX_CONCURRENT_RPCS,
            audit_servicer=auditor,
        )
    except ServerStartError as exc:
        await node.stop()
        raise StartError(str(exc)) from None
    metrics.watch(store=store, pipeline=node, adapters=parts.adapters)
    replica.start()  # read side served from here on; the pipeline once the lease is held
    try:
        await _serve(
            config,
            node=node,
            server=server,
            service=service,
            ready=ready,
            stop=stop,
            metrics=metrics,
            replica=replica,
        )
    finally:
        if auditor is not None:
            auditor.close()


def _audit_log(config: GatewayConfig) -> AuditLog | None:
    """The audit trail's writer, or None when ``[audit]`` is not configured (logged)."""
    assert config.gateway is not None
    settings = config.audit
    if settings.key is None:
        log.warning("audit_disabled", reason="no [audit] key configured")
        return None
    try:
        key = AuditKey.load(settings.key)
    except AuditKeyError as exc:
        raise ConfigError([ConfigProblem("audit.key", str(exc))], source=str(config.path)) from None
    policy = CheckpointPolicy(settings.checkpoint_every, settings.checkpoint_seconds)
    log.info("audit_enabled", public_key=key.public_hex, checkpoint_every=policy.every_records)
    return AuditLog(config.gateway.name, key, policy)


def make_store(
    config: GatewayConfig, data_dir: Path, audit_log: AuditLog | None
) -> SqliteStore | PostgresStore:
    """``[store]``: PostgreSQL at ``config.store.resolve_url()`` (replicas share it), else
    SQLite in the data folder. Opened by the node; a PostgreSQL schema that is not this
    gateway's version is refused there (run ``gateway db migrate``)."""
    url = config.store.resolve_url(source=str(config.path))
    if audit_log is not None and audit_log.guard.state_path is None:
        # The last checkpoint signed here, outside the database (relay/audit_guard.py); with
        # PostgreSQL it is this replica's own.
        audit_log.guard.state_path = data_dir / ANCHOR_FILE
    if url is not None:
        return PostgresStore(url, audit_log=audit_log)
    return SqliteStore(data_dir, audit_log=audit_log)


async def _checkpoint_timer(store: SqliteStore | PostgresStore, seconds: float) -> None:
    """Time-based checkpoints; count-based ones are signed in the record's own transaction."""
    interval = min(max(seconds / 4, 0.05), 5.0)
    while True:
        await asyncio.sleep(interval)
        try:
            cp = await store.audit_checkpoint_due(time.time())
        except Exception as exc:  # the store is closing or failing: try again next tick
            log.warning("audit_checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        if cp is not None:
            log.info("audit_checkpoint", seq=cp.seq)


class _ActiveWork:
    """What runs only while this replica holds the gateway's lease: the pipeline and the
    time-based audit checkpoints (``checkpoint_seconds`` None: no audit trail)."""

    def __init__(
        self,
        node: GatewayNode,
        store: SqliteStore | PostgresStore,
        checkpoint_seconds: float | None,
        anchor: Anchorer | None = None,
    ) -> None:
        self.node, self.store, self.seconds = node, store, checkpoint_seconds
        self.timer: asyncio.Task[None] | None = None
        self.anchor = anchor
        self.anchoring: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.node.start_pipeline()
        if self.seconds is not None:
            self.timer = asyncio.create_task(_checkpoint_timer(self.store, self.seconds))
        if self.anchor is not None:  # relay/anchor.py: its own task, never blocks the relay
            self.anchoring = asyncio.create_task(self.anchor.run())

    async def stop(self, *, drain: bool) -> None:
        timer, self.timer = self.timer, None
        await _stop_timer(timer)
        anchoring, self.anchoring = self.anchoring, None
        await _stop_timer(anchoring)
        await self.node.stop_pipeline(drain=drain)


async def _stop_timer(timer: asyncio.Task[None] | None) -> None:
    if timer is not None:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer


async def _serve(
    config: GatewayConfig,
    *,
    node: GatewayNode,
    server: GatewayServer,
    service: InteropService,
    ready: Callable[[RunningGateway], None] | None,
    stop: asyncio.Event | None,
    metrics: Metrics,
    replica: Replica,
) -> None:
    assert config.gateway is not None
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, _on_signal, stopping, sig)
            handled.append(sig)
    info = RunningGateway(
        name=config.gateway.name,
        listen=config.gateway.listen,
        api_listen=config.api.listen,
        served=config.served_chains,
        remote=config.remote_chains,
        peers=tuple(config.peers),
    )
    log.info("gateway_running", **_info_fields(info))
    try:
        if ready is not None:
            ready(info)
        await stopping.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        log.info("gateway_draining")
        await metrics.unwatch()  # not ready; no more chain reads before the adapters close
        await replica.stop()  # pipeline stopped, lease released: a standby takes over now
        service.close()
        await server.stop(STOP_GRACE_S)
        await node.stop()
        log.info("gateway_drained")


def _info_fields(info: RunningGateway) -> dict[str, Any]:
    return {
        "name": info.name,
        "listen": info.listen,
        "api_listen": info.api_listen,
        "served": list(info.served),
        "remote": list(info.remote),
        "peers": list(info.peers),
    }


def _on_signal(stopping: asyncio.Event, sig: signal.Signals) -> None:
    log.info("gateway_signal", signal=sig.name)
    stopping.set()


# ---------------------------------------------------------------------------------------------
# Building the parts


def _read_tls(config: GatewayConfig) -> ServerTls:
    assert config.gateway is not None
    assert config.gateway.tls is not None
    files = config.gateway.tls
    try:
        return ServerTls(
            cert_pem=files.cert.read_bytes(),
            key_pem=files.key.read_bytes(),
            client_ca_pems=[p.read_bytes() for p in config.client_ca_files()],
        )
    except OSError as exc:
        problem = ConfigProblem("gateway.tls", f"cannot read {exc.filename}: {exc.strerror}")
        raise ConfigError([problem], source=str(config.path)) from None


def _make_data_dir(path: Path) -> None:
    """Created 0700: the store holds message bodies and evidence of this gateway's traffic."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot create the data folder {path}: {exc.strerror}") from None


def _check_free(address: str) -> None:
    """Refuse a taken port before the pipeline starts (gRPC binds only after it)."""
    host, _, port = address.rpartition(":")
    try:
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        with socket.create_server((host.strip("[]"), int(port)), family=family):
            pass
    except OSError as exc:
        raise StartError(f"cannot listen on {address}: {exc.strerror}") from None


@contextlib.contextmanager
def _data_lock(path: Path) -> Iterator[None]:
    """One gateway per data folder: two processes on one store would both submit every
    delivery (the contract keeps it at most once, but each costs gas and looks like a fault)."""
    lock = path / LOCK_NAME
    try:
        handle = lock.open("a")
    except OSError as exc:
        raise StartError(f"cannot open {lock}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StartError(
                f"another gateway is running with the data folder {path} ({lock} is locked)"
            ) from None
        yield
    finally:
        handle.close()


def _build_chains(config: GatewayConfig, environ: Mapping[str, str]) -> _Parts:
    """Adapters for served chains (keys loaded here; every key problem reported at once) and
    read-only clients for remote ones (status and the latest block time)."""
    parts = _Parts(adapters={})
    problems: list[ConfigProblem] = []
    for name in config.served_chains:
        cfg = config.chains[name]
        try:
            if isinstance(cfg, EvmChainConfig):
                parts.adapters[name] = EvmAdapter(cfg.evm_settings(environ))
            elif isinstance(cfg, FiscoChainConfig):
                parts.adapters[name] = FiscoAdapter(cfg.fisco_settings(environ))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, source=str(config.path))
    for name in config.remote_chains:
        cfg = config.chains[name]
        if not cfg.endpoint_urls:
            continue  # a trust root only: nothing here can read the chain (ListChains says so)
        reader: _RemoteEvm | _RemoteFisco
        if isinstance(cfg, EvmChainConfig):
            reader = _RemoteEvm(cfg)
        elif isinstance(cfg, FiscoChainConfig):
            reader = _RemoteFisco(cfg)
        else:
            continue
        parts.remote_readers[name] = reader
        parts.chain_time[name] = reader.latest_time
        if isinstance(reader, _RemoteFisco):
            parts.closers.append(reader.close)  # EVM endpoints are closed by the trust store
    return parts


def _links(config: GatewayConfig, tls: ServerTls) -> dict[str, GrpcPeerLink]:
    links: dict[str, GrpcPeerLink] = {}
    for peer in config.peers.values():
        assert peer.ca is not None  # always set in a loaded configuration
        try:
            ca = peer.ca.read_bytes()
        except OSError as exc:
            problem = ConfigProblem(f"peers.{peer.name}.ca", f"cannot read: {exc.strerror}")
            raise ConfigError([problem], source=str(config.path)) from None
        links[peer.name] = GrpcPeerLink(
            peer.name,
            peer.addresses or (peer.address,),  # replicas: tried in order, failed over
            PeerTls(
                client_cert_pem=tls.cert_pem,
                client_key_pem=tls.key_pem,
                server_ca_pem=ca,
                server_name=peer.server_name or peer.host,
                server_sha256=peer.cert_sha256,
            ),
        )
    return links


def _policy(config: GatewayConfig) -> AuthPolicy:
    certificates = [
        CertificateBinding(p.cert_sha256, Principal(PrincipalKind.PEER, p.name))
        for p in config.peers.values()
    ]
    certificates += [
        CertificateBinding(c.sha256, Principal(PrincipalKind(c.role), c.name))
        for c in config.api.client_certs
    ]
    tokens = [
        TokenBinding(bytes.fromhex(t.sha256), Principal(PrincipalKind(t.role), t.name))
        for t in config.api.tokens
    ]
    cas = [p.read_bytes() for p in config.client_ca_files()]
    return AuthPolicy(
        certificates=certificates,
        tokens=tokens,
        client_ca_pems=cas,
        limits=PRINCIPAL_LIMITS,
        # Peers reach AuditService for TraceMessage alone; the servicer refuses them the rest.
        service_kinds={
            **SERVICE_KINDS,
            AUDIT_SERVICE: frozenset({PrincipalKind.AUDITOR, PrincipalKind.PEER}),
        },
    )


def _chain_entries(config: GatewayConfig, parts: _Parts) -> list[ChainEntry]:
    entries = []
    for name, cfg in config.chains.items():
        if cfg.served:
            entries.append(ChainEntry(name, cfg.family, True, parts.adapters[name]))
            continue
        peer = config.peer_for_chain(name)
        note = f"remote chain served by peer {peer.name}" if peer else "remote chain"
        entries.append(ChainEntry(name, cfg.family, False, parts.remote_readers.get(name), note))
    return entries


async def _probe(adapters: Mapping[str, ChainAdapter]) -> None:
    """Every served chain answers once before the gateway listens; all failures named."""

    async def one(name: str, adapter: ChainAdapter) -> str | None:
        try:
            async with asyncio.timeout(START_PROBE_TIMEOUT_S):
                status = await adapter.status()
        except AdapterError as exc:
            return f"{name}: {exc.reason}"
        except TimeoutError:
            return f"{name}: no answer within {START_PROBE_TIMEOUT_S:g} s"
        log.info("chain_reachable", chain=name, head=status.head, final_head=status.final_head)
        return None

    failures = [f for f in await asyncio.gather(*(one(n, a) for n, a in adapters.items())) if f]
    if failures:
        raise StartError("served chain unreachable: " + "; ".join(failures))


# ---------------------------------------------------------------------------------------------
# Remote chains: what this gateway's own read endpoints can say about a peer's chain.


class _RemoteEvm:
    def __init__(self, cfg: EvmChainConfig) -> None:
        self.cfg = cfg
        names = endpoint_names(cfg.endpoints)
        self.endpoints: tuple[BlockReader, ...] = tuple(
            EvmEndpoint(
                url,
                chain=cfg.name,
                chain_id=cfg.chain_id,
                call_timeout=cfg.call_timeout or REMOTE_CALL_TIMEOUT_S,
                name=n,
            )
            for url, n in zip(cfg.endpoints, names, strict=True)
        )

    async def status(self) -> ChainStatus:
        health: list[EndpointHealth] = []
        best: tuple[int, int, int] | None = None
        for endpoint in self.endpoints:
            try:
                latest = await endpoint.call("eth_getBlockByNumber", ["latest", False])
                head, stamp = int(latest["number"], 16), int(latest["timestamp"], 16)
                final = await self._final(endpoint, head)
            except (AdapterError, KeyError, TypeError, ValueError) as exc:
                health.append(EndpointHealth(endpoint.name, False, _reason(exc)))
                continue
            health.append(EndpointHealth(endpoint.name, True))
            if best is None or head > best[0]:
                best = (head, final, stamp)
        if best is None:
            raise _unreachable(self.cfg.name, health)
        return ChainStatus(self.cfg.name, best[0], best[1], best[2], tuple(health))

    async def _final(self, endpoint: BlockReader, head: int) -> int:
        if self.cfg.finality:
            block = await endpoint.call("eth_getBlockByNumber", [self.cfg.finality, False])
            return int(block["number"], 16)
        return max(0, head - (self.cfg.confirmations or 1))

    async def latest_time(self) -> int:
        return (await self.status()).timestamp


class _RemoteFisco:
    def __init__(self, cfg: FiscoChainConfig) -> None:
        self.cfg = cfg
        self.clients = [
            FiscoRpcClient(
                FiscoEndpoint(e.url, e.ca_cert, e.client_cert, e.client_key),
                chain=cfg.name,
                group=cfg.group_id,
                timeout=cfg.call_timeout or REMOTE_CALL_TIMEOUT_S,
            )
            for e in cfg.endpoints
        ]

    async def status(self) -> ChainStatus:
        health: list[EndpointHealth] = []
        best: tuple[int, int] | None = None
        for client in self.clients:
            try:
                head = int(await client.call("getBlockNumber"))
                block = await client.call("getBlockByNumber", head, True, True)
                stamp = int(block["timestamp"]) // 1000  # FISCO block time is in milliseconds
            except (AdapterError, KeyError, TypeError, ValueError) as exc:
                health.append(EndpointHealth(client.name, False, _reason(exc)))
                continue
            health.append(EndpointHealth(client.name, True))
            if best is None or head > best[0]:
                best = (head, stamp)
        if best is None:
            raise _unreachable(self.cfg.name, health)
        # PBFT: a committed block is final.
        return ChainStatus(self.cfg.name, best[0], best[0], best[1], tuple(health))

    async def latest_time(self) -> int:
        return (await self.status()).timestamp

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _reason(exc: BaseException) -> str:
    return (
        exc.reason if isinstance(exc, AdapterError) else f"unexpected answer ({type(exc).__name__})"
    )


def _unreachable(chain: str, health: Sequence[EndpointHealth]) -> AdapterError:
    said = "; ".join(f"{h.url}: {h.last_error}" for h in health) or "no endpoint configured"
    return ChainUnavailable(f"no endpoint answered ({said})", chain=chain)


__all__ = ["RunningGateway", "StartError", "run_gateway"]
