"""Relay throughput and latency: messages acknowledged per second, send-to-ack p50/p99.

Run: ``.venv/bin/python -m bench.relay [--messages 1000] [--only anvil-anvil] [--profile F]``.
Not a timed test: it prints figures with the machine and settings and exits non-zero only when
a message is not acknowledged (or is rejected). One ``GatewayNode`` serves both chains of the
route in this process (the in-process link, no network hop) with the real ``FactVerifier``,
the SQLite store and the real adapters; the chains are separate processes: two Anvils, or
Anvil and the FISCO devnode (``gateway devnet fisco``). The ``anvil-anvil-grpc`` run puts two
gateways in this process instead, one per chain, each with its own store, CA, certificate and
gRPC server on 127.0.0.1, linked by ``GrpcPeerLink`` over mutual TLS: the gRPC hop's cost.
The first ``anvil-anvil`` run is repeated with the PostgreSQL store (a fresh, migrated database
on 127.0.0.1:5432, dropped after; ``--no-postgres`` skips it), so the two stores' msgs/s and p99
are side by side from one run.
Messages go from the first chain to the second; the load comes from ``BatchSender``
(contracts/bench), which calls the gateway's ``sendMessage`` many times per transaction, so the
sender is not the bottleneck. Anvil runs with a raised block gas limit (``--gas-limit``,
printed), automine, and a block mined every ``--mine-interval`` seconds so that facts reach
finality (confirmations = 1).

Where the time goes is measured two ways. *Busy seconds*: every call into the verifier, the
store and each adapter is timed (wall time from call to return; calls overlap, so the sum may
exceed the run's wall time): verification, store, observation polls (``facts``: RPC waits plus
evidence building), submissions (``deliver``/``acknowledge``/``seal``: signing, RPC and the
wait for the receipt) and other chain reads. *CPU seconds*: this process (the relay) against
the chain processes, read from ``/proc`` — the relay's share of the machine versus the chains'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import inspect
import logging
import os
import pstats
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import psycopg
import structlog
from eth_abi.abi import encode
from psycopg import sql

from adapters.base import ChainAdapter
from adapters.evm.adapter import EvmAdapter
from adapters.evm.settings import EvmSettings
from adapters.fisco.adapter import FiscoAdapter
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from bench.machine import describe_machine
from devnet.anvil import Anvil, start_anvil
from devnet.fisco.node import DevNode
from relay.grpc.auth import AuthPolicy, CertificateBinding, Limits, Principal, PrincipalKind
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.grpc.server import GatewayServer, ServerTls, start_server
from relay.node import GatewayNode
from relay.pg_store import PostgresStore, migrate
from relay.pipeline import MessageVerifier, PipelineSettings
from relay.sqlite_store import SqliteStore
from relay.store import HistoryEntry, Role, State, Store
from relay.tls import fingerprint, issue_cert, make_ca
from relay.trust import ConfiguredTrustStore, EvmTrustConfig, FiscoTrustConfig, TrustConfig
from relay.verify import FactVerifier
from tests.integration.adapters.env_evm import AnvilDriver
from tests.integration.adapters.env_fisco import (
    RELAYER,
    SENDER,
    SUITE,
    FiscoDriver,
    account,
    account_key,
)
from verifier.hashing import keccak256

REPO = Path(__file__).resolve().parent.parent
GAS_LIMIT = 1_000_000_000
"""Anvil's block gas limit here (its default is 30M, which caps a block at a few hundred
deliveries; the relay, not the chain, should be the bound)."""
RECEIVER_GAS, ACK_GAS, PAYLOAD_CAP = 300_000, 100_000, 4096
SEND_GAS_PER_MESSAGE = 150_000
FAILED_STATES = frozenset({State.REJECTED})
_T = TypeVar("_T")


# -- timing of the relay's dependencies ---------------------------------------------------------


@dataclass
class Meter:
    """Busy seconds and calls per ``category.method``, for calls awaited through :class:`Timed`."""

    busy: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: str, seconds: float) -> None:
        self.busy[key] += seconds
        self.calls[key] += 1


class Timed:
    """Delegates to ``inner``; its coroutine methods are timed into ``meter`` under
    ``category_of(method)``. The relay sees the same interface (the protocols are structural)."""

    def __init__(self, inner: object, meter: Meter, category_of: Callable[[str], str]) -> None:
        self._inner = inner
        self._meter = meter
        self._category_of = category_of

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        key = f"{self._category_of(name)}.{name}"
        meter = self._meter

        @functools.wraps(attr)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                meter.add(key, time.perf_counter() - t0)

        setattr(self, name, timed)  # later lookups skip __getattr__
        return timed


class MeteredStore(SqliteStore):
    """The SQLite store, also timing each call's work on the store thread (SQL and JSON), apart
    from the time its caller waited for the store's lock and thread."""

    def __init__(self, data_dir: Path, meter: Meter) -> None:
        super().__init__(data_dir)
        self._meter = meter

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        caller = sys._getframe(1).f_code.co_name  # the public method that called _run
        meter = self._meter

        def timed(conn: sqlite3.Connection) -> _T:
            t0 = time.perf_counter()
            try:
                return fn(conn)
            finally:
                meter.add(f"store_thread.{caller}", time.perf_counter() - t0)

        return await super()._run(timed)


def _adapter_category(chain: str) -> Callable[[str], str]:
    def category(method: str) -> str:
        if method == "facts":
            return f"observe[{chain}]"
        if method in {"deliver", "acknowledge", "seal", "requeue"}:
            return f"submit[{chain}]"
        return f"read[{chain}]"

    return category


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children) from /proc, 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


# -- chains --------------------------------------------------------------------------------


@dataclass
class BenchChain:
    """One chain of the route: its adapter settings, trust root, test driver and process."""

    name: str
    family: str
    pid: int
    driver: AnvilDriver | FiscoDriver
    gateway: bytes
    make_adapter: Callable[[], ChainAdapter]
    trust: TrustConfig
    stop: Callable[[], None]
    head: int = 0
    """The head before the run's messages were sent: the relay observes from there."""

    async def read_uint(self, to: bytes, signature: str) -> int:
        if isinstance(self.driver, AnvilDriver):  # its call() cannot encode "()"
            data = "0x" + keccak256(signature.encode())[:4].hex()
            raw = await self.driver.rpc.call("eth_call", [{"to": "0x" + to.hex(), "data": data}])
            return int(raw, 16)
        return int(await self.driver.call(to, signature, [], "uint256"))


async def _anvil_chain(name: str, chain_id: int, confirmations: int) -> BenchChain:
    anvil = start_anvil(port=0, chain_id=chain_id, extra_args=["--gas-limit", str(GAS_LIMIT)])
    driver = AnvilDriver(anvil, confirmations)
    gateway = await driver.deploy("CrossChainGateway", [name, 1, RECEIVER_GAS, ACK_GAS])
    await _ok(driver.transact(gateway, "addRelayer(address)", [driver.address(1)], account=0))
    settings = EvmSettings(
        chain=name,
        chain_id=chain_id,
        endpoints=(anvil.url,),
        gateway=gateway,
        relayer_key=bytes.fromhex(anvil.accounts[1].private_key[2:]),
        sender_key=bytes.fromhex(anvil.accounts[3].private_key[2:]),
        confirmations=confirmations,
        call_timeout=10.0,
        receipt_timeout=30.0,
    )
    trust = EvmTrustConfig(
        chain=name,
        gateway=gateway,
        chain_id=chain_id,
        endpoints=(anvil.url,),
        quorum=1,
        confirmations=confirmations,
        finality_tag=None,
    )
    return BenchChain(
        name,
        "anvil",
        anvil.process.pid,
        driver,
        gateway,
        lambda: EvmAdapter(settings),
        trust,
        functools.partial(_stop_anvil, anvil),
    )


def _stop_anvil(anvil: Anvil) -> None:
    anvil.stop()


@dataclass(frozen=True)
class _DevnodeAddress:
    """What FiscoDriver reads of a DevNode, for a devnode running in another process."""

    url: str
    chain_id: str
    group_id: str


def _start_devnode(seed: str) -> tuple[subprocess.Popen[bytes], _DevnodeAddress, list[str]]:
    args = [sys.executable, str(REPO / "gateway.py"), "devnet", "fisco", "--port", "0"]
    args += ["--block-interval-ms", "20", "--seed", seed, "--sealers", "4"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode().strip() for _ in range(7)]
    if not lines[0].startswith("FISCO BCOS devnode listening on "):
        proc.kill()
        raise RuntimeError("the devnode did not start: " + " | ".join(lines))
    info = {k.strip(): v.strip() for k, v in (line.split(": ", 1) for line in lines[1:])}
    address = _DevnodeAddress(lines[0].rsplit(" ", 1)[1], info["chain id"], info["group id"])
    sealers = [info[f"sealer {i}"] for i in range(4)]
    return proc, address, sealers


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def _fisco_chain(name: str) -> BenchChain:
    proc, address, sealer_ids = _start_devnode("bench-relay")
    driver = FiscoDriver(cast(DevNode, address))
    try:
        gateway = await driver.deploy("CrossChainGateway", (name, 1000, RECEIVER_GAS, ACK_GAS))
        await _ok(driver.transact(gateway, "addRelayer(address)", [account(RELAYER)], account=0))
    except BaseException:
        _stop_process(proc)
        raise
    sealers = tuple((n.lower().removeprefix("0x"), 1) for n in sealer_ids)
    settings = FiscoSettings(
        chain=name,
        endpoints=(FiscoEndpoint(address.url),),
        chain_id=address.chain_id,
        group_id=address.group_id,
        gateway=gateway,
        sealers=sealers,
        crypto=SUITE,
        relayer_key=account_key(RELAYER),
        sender_key=account_key(SENDER),
        call_timeout=10.0,
        receipt_timeout=30.0,
        seal_interval=0.1,
    )
    trust = FiscoTrustConfig(
        chain=name,
        crypto=SUITE,
        gateway=gateway,
        chain_id=address.chain_id,
        group_id=address.group_id,
        sealers=sealers,
    )
    return BenchChain(
        name,
        "fisco",
        proc.pid,
        driver,
        gateway,
        lambda: FiscoAdapter(settings),
        trust,
        functools.partial(_stop_process, proc),
    )


async def _ok(call: Awaitable[tuple[str, bool]]) -> None:
    tx, ok = await call
    if not ok:
        raise RuntimeError(f"set-up transaction {tx} failed")


@contextlib.asynccontextmanager
async def route(kind: str) -> AsyncIterator[tuple[BenchChain, BenchChain]]:
    """The two chains of ``kind`` ("anvil-anvil" or "anvil-devnode"), each knowing the other."""
    chains: list[BenchChain] = []
    try:
        chains.append(await _anvil_chain("bench-a", 31337, 1))
        if kind.startswith("anvil-anvil"):
            chains.append(await _anvil_chain("bench-b", 31338, 1))
        else:
            chains.append(await _fisco_chain("bench-fisco"))
        a, b = chains
        for one, other in ((a, b), (b, a)):
            await _ok(
                one.driver.transact(
                    one.gateway,
                    "setDestination(string,uint32)",
                    [other.name, PAYLOAD_CAP],
                    account=0,
                )
            )
        yield a, b
    finally:
        for c in chains:
            await c.driver.close()
            c.stop()


# -- one run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    route: str
    store: str
    batch_size: int
    messages: int
    acknowledged: int
    wall: float
    per_second: float
    p50_ms: float
    p99_ms: float
    relay_cpu: float
    chain_cpu: dict[str, float]
    busy: dict[str, float]
    calls: dict[str, int]
    on_chain: dict[str, int]
    failures: list[str]
    steps: list[tuple[str, float]]
    load: tuple[float, float] = (0.0, 0.0)
    """The machine's 1-minute load average before and after the run (others' work counts)."""
    """Each step of a message's path and its median duration in seconds."""


PG_ADMIN_URL: Final = os.environ.get(
    "GATEWAY_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.asynccontextmanager
async def _pg_database() -> AsyncIterator[str]:
    """A fresh, migrated database on the local PostgreSQL server for one run, dropped after."""
    name = f"bench_relay_{os.getpid()}_{time.monotonic_ns()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    async with await psycopg.AsyncConnection.connect(PG_ADMIN_URL, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{base}/{name}"
        await migrate(url)
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(PG_ADMIN_URL, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _build_node(
    a: BenchChain,
    b: BenchChain,
    data_dir: Path,
    settings: PipelineSettings,
    meter: Meter,
    pg_url: str | None = None,
) -> tuple[GatewayNode, Store]:
    configs: dict[str, TrustConfig] = {a.name: a.trust, b.name: b.trust}
    trust = ConfiguredTrustStore(configs)
    store: Store = MeteredStore(data_dir, meter) if pg_url is None else PostgresStore(pg_url)
    adapters = {
        c.name: cast(ChainAdapter, Timed(c.make_adapter(), meter, _adapter_category(c.name)))
        for c in (a, b)
    }
    verifier = cast(MessageVerifier, Timed(FactVerifier(trust, configs), meter, lambda _: "verify"))
    # Explicit start heights: the observers start asynchronously, after the first sends.
    heads = {c.name: c.head for c in (a, b)}
    node = GatewayNode(
        start_heights=heads,
        store=cast(Store, Timed(store, meter, lambda _: "store")),
        adapters=adapters,
        verifier=verifier,
        closers=[trust.close],
        routes=[(a.name, b.name), (b.name, a.name)],
        settings=settings,
    )
    return node, store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _grpc_nodes(
    a: BenchChain, b: BenchChain, data_dir: Path, settings: PipelineSettings, meter: Meter
) -> tuple[list[GatewayNode], list[SqliteStore], list[GatewayServer]]:
    """Two gateways, one per chain, each with its own CA, certificate, store and gRPC server on
    127.0.0.1, linked by GrpcPeerLink over mutual TLS with pinned certificates (as two hosts
    would be, less the network). The first store is the source's."""
    pki = {}
    for c in (a, b):
        ca = make_ca(f"gateway-{c.name} CA")
        pki[c.name] = (ca, issue_cert(*ca, f"gateway-{c.name}"), _free_port())
    configs: dict[str, TrustConfig] = {a.name: a.trust, b.name: b.trust}
    nodes: list[GatewayNode] = []
    stores: list[SqliteStore] = []
    servers: list[GatewayServer] = []
    for me, other in ((a, b), (b, a)):
        _, cert, port = pki[me.name]
        other_ca, other_cert, other_port = pki[other.name]
        peer = f"gateway-{other.name}"
        link = GrpcPeerLink(
            peer,
            f"127.0.0.1:{other_port}",
            PeerTls(
                client_cert_pem=cert[0],
                client_key_pem=cert[1],
                server_ca_pem=other_ca[0],
                server_name="localhost",
                server_sha256=fingerprint(other_cert[0]),
            ),
        )
        trust = ConfiguredTrustStore(configs)
        store = MeteredStore(data_dir / me.name, meter)
        adapter = Timed(me.make_adapter(), meter, _adapter_category(me.name))
        verifier = Timed(FactVerifier(trust, configs), meter, lambda _: "verify")
        node = GatewayNode(
            store=cast(Store, Timed(store, meter, lambda _: "store")),
            adapters={me.name: cast(ChainAdapter, adapter)},
            verifier=cast(MessageVerifier, verifier),
            closers=[trust.close, link.close],
            routes=[(a.name, b.name), (b.name, a.name)],
            links={other.name: link},
            peer_chains={peer: [other.name]},
            settings=settings,
            start_heights={me.name: me.head},
        )
        policy = AuthPolicy(
            certificates=[
                CertificateBinding(fingerprint(other_cert[0]), Principal(PrincipalKind.PEER, peer))
            ],
            client_ca_pems=[other_ca[0]],
            limits=Limits(max_concurrent=64, rate_per_second=10_000.0, burst=10_000),
        )
        servers.append(
            await start_server(
                listen=f"127.0.0.1:{port}",
                tls=ServerTls(cert_pem=cert[0], key_pem=cert[1], client_ca_pems=[other_ca[0]]),
                auth=policy,
                relay_handler=node.handler,
                interop_servicer=None,
                max_concurrent_rpcs=256,
            )
        )
        nodes.append(node)
        stores.append(store)
    return nodes, stores, servers


async def _mine(chains: Sequence[BenchChain], interval: float) -> None:
    """Anvil automines transactions; empty blocks on top make them final (confirmations = 1)."""
    anvils = [c.driver for c in chains if isinstance(c.driver, AnvilDriver)]
    while True:
        for d in anvils:
            await d.mine(1)
        await asyncio.sleep(interval)


async def _send_all(
    a: BenchChain, b: BenchChain, sender: bytes, receiver: bytes, messages: int, per_tx: int
) -> dict[str, float]:
    """Send ``messages`` through BatchSender, ``per_tx`` per transaction, a few transactions in
    flight; returns each transaction's hash -> wall time just before it was submitted."""
    assert isinstance(a.driver, AnvilDriver)
    driver = a.driver
    deadline = await b.driver.timestamp() + 3600
    selector = keccak256(b"sendMany(string,address,bytes,uint64,uint256)")[:4]
    sent: dict[str, float] = {}
    frm = driver.address(2)
    # Explicit nonces: Anvil would give concurrent unsigned sends the same one.
    first_nonce = int(await driver.rpc.call("eth_getTransactionCount", [frm, "pending"]), 16)

    async def one(count: int, index: int) -> None:
        data = selector + encode(
            ["string", "address", "bytes", "uint64", "uint256"],
            [b.name, receiver, b"bench %d" % index, deadline, count],
        )
        tx = {
            "from": frm,
            "nonce": hex(first_nonce + index),
            "to": "0x" + sender.hex(),
            "data": "0x" + data.hex(),
            "gas": hex(SEND_GAS_PER_MESSAGE * count + 200_000),
        }
        t0 = time.time()
        tx_hash = await driver.rpc.call("eth_sendTransaction", [tx])
        receipt = None
        for _ in range(1200):  # a loaded machine: up to a minute, not the driver's 4 s
            receipt = await driver.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                break
            await asyncio.sleep(0.05)
        if receipt is None:
            raise RuntimeError(f"BatchSender.sendMany {tx_hash} was not mined within a minute")
        if receipt["status"] != "0x1":
            raise RuntimeError(f"BatchSender.sendMany reverted: {receipt['transactionHash']}")
        sent[receipt["transactionHash"]] = t0

    counts = [min(per_tx, messages - i) for i in range(0, messages, per_tx)]
    for start in range(0, len(counts), 8):
        await asyncio.gather(*(one(c, start + j) for j, c in enumerate(counts[start : start + 8])))
    return sent


async def _history(store: Store) -> list[HistoryEntry]:
    out: list[HistoryEntry] = []
    seq = 0
    while True:
        page = await store.changes_since(seq, limit=1000)
        if not page:
            return out
        out.extend(page)
        seq = page[-1].seq


async def _wait_acknowledged(store: Store, messages: int, limit: float) -> list[str]:
    """Poll the store until ``messages`` source rows are acknowledged; problems if not."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    acked = 0
    while loop.time() < end:
        now = await store.count(Role.SOURCE, frozenset({State.ACKNOWLEDGED}))
        if now != acked:
            print(f"  acknowledged {now}/{messages}", file=sys.stderr, end="\r")
        acked = now
        rejected = await store.count(Role.SOURCE, FAILED_STATES)
        rejected += await store.count(Role.DESTINATION, FAILED_STATES)
        if rejected:
            return [f"{rejected} message rows rejected"]
        if acked >= messages:
            print(file=sys.stderr)
            return []
        await asyncio.sleep(0.2)
    print(file=sys.stderr)
    where = []
    for role in Role:
        for state in State:
            n = await store.count(role, frozenset({state}))
            if n:
                where.append(f"{role} {state}: {n}")
    stuck = await store.stuck(time.time(), 0.0)
    errors = {s.last_error for s in stuck if s.last_error}
    return [
        f"only {acked} of {messages} acknowledged after {limit:.0f} s "
        f"(rows: {', '.join(where)}; last errors: {'; '.join(sorted(errors)[:3]) or 'none'})"
    ]


async def run_once(
    kind: str, batch_size: int, messages: int, args: argparse.Namespace, store: str = "sqlite"
) -> RunResult:
    per_tx: int = args.per_tx
    mine_interval: float = args.mine_interval
    limit: float = args.limit
    poll_interval: float = args.poll_interval
    load_before = os.getloadavg()[0]
    async with route(kind) as (a, b):
        sender = await a.driver.deploy("BatchSender", [a.gateway])
        receiver = await b.driver.deploy("BenchReceiver")
        for c in (a, b):
            probe = c.make_adapter()
            c.head = (await probe.status()).head
            await probe.close()
        settings = PipelineSettings(
            batch_size=batch_size, poll_interval=poll_interval, retry_initial=0.2
        )
        meter = Meter()
        async with contextlib.AsyncExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-relay-"))
            stores: list[Store]
            if kind.endswith("-grpc"):
                nodes, sqlite_stores, servers = await _grpc_nodes(a, b, Path(tmp), settings, meter)
                stores = list(sqlite_stores)
            else:
                pg_url = (
                    await stack.enter_async_context(_pg_database()) if store != "sqlite" else None
                )
                node, one = _build_node(a, b, Path(tmp), settings, meter, pg_url)
                nodes, stores, servers = [node], [one], []
            miner = asyncio.create_task(_mine((a, b), mine_interval))
            try:
                for node in nodes:
                    await node.start()
                cpu0 = time.process_time()
                chain_cpu0 = {c.name: _cpu_seconds(c.pid) for c in (a, b)}
                sent = await _send_all(a, b, sender, receiver, messages, per_tx)
                failures = await _wait_acknowledged(stores[0], messages, limit)
                relay_cpu = time.process_time() - cpu0
                chain_cpu = {c.name: _cpu_seconds(c.pid) - chain_cpu0[c.name] for c in (a, b)}
                history = [h for st in stores for h in await _history(st)]
            finally:
                for server in servers:
                    await server.stop(None)
                for node in nodes:
                    await node.stop()
                miner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await miner
        on_chain = {
            "acks recorded by BatchSender": await a.read_uint(sender, "acks()"),
            "calls into BenchReceiver": await b.read_uint(receiver, "calls()"),
        }
    result = _result(
        kind, batch_size, messages, sent, history, relay_cpu, chain_cpu, meter, on_chain, failures
    )
    result.store = store
    result.load = (load_before, os.getloadavg()[0])
    return result


STEPS: Final = (
    ("observed", Role.SOURCE, State.OBSERVED, "chain+observer"),
    ("verified", Role.SOURCE, State.VERIFIED, "relay"),
    ("accepted at dst", Role.DESTINATION, State.VERIFIED, "relay"),
    ("forwarded", Role.SOURCE, State.FORWARDED, "relay"),
    ("delivery submitted", Role.DESTINATION, State.DELIVERY_SUBMITTED, "relay+chain"),
    ("delivered", Role.DESTINATION, State.DELIVERED, "chain+observer"),
    ("result verified", Role.SOURCE, State.RESULT_VERIFIED, "relay"),
    ("ack submitted", Role.SOURCE, State.ACK_SUBMITTED, "relay+chain"),
    ("acknowledged", Role.SOURCE, State.ACKNOWLEDGED, "chain+observer"),
)
"""A message's path: each step's median duration shows where its latency goes ("chain+observer":
mining, finality and the observer's poll and persistence; "relay+chain": batching, signing and
the receipt wait)."""


def _steps(sent_at: dict[bytes, float], history: list[HistoryEntry]) -> list[tuple[str, float]]:
    at: dict[tuple[bytes, Role, State], float] = {}
    for h in history:
        if h.kind == "state":
            at.setdefault((h.id, h.role, h.state), h.at)
    out = []
    for i, (label, role, state, where) in enumerate(STEPS):
        deltas = []
        for mid, t0 in sent_at.items():
            before = t0 if i == 0 else at.get((mid, STEPS[i - 1][1], STEPS[i - 1][2]))
            after = at.get((mid, role, state))
            if before is not None and after is not None:
                deltas.append(after - before)
        if deltas:
            out.append((f"{label} [{where}]", statistics.median(deltas)))
    return out


def _result(
    kind: str,
    batch_size: int,
    messages: int,
    sent: dict[str, float],
    history: list[HistoryEntry],
    relay_cpu: float,
    chain_cpu: dict[str, float],
    meter: Meter,
    on_chain: dict[str, int],
    failures: list[str],
) -> RunResult:
    send_of: dict[bytes, float] = {}
    acked_at: dict[bytes, float] = {}
    for h in history:
        if h.role is not Role.SOURCE or h.kind != "state":
            continue
        if h.state is State.OBSERVED and h.tx_hash in sent:
            send_of[h.id] = sent[h.tx_hash]
        elif h.state is State.ACKNOWLEDGED:
            acked_at[h.id] = h.at
    latencies = sorted(acked_at[i] - send_of[i] for i in acked_at if i in send_of)
    for name, count in on_chain.items():
        if count != messages:
            failures.append(f"{name}: {count}, expected {messages}")
    start = min(sent.values())
    wall = (max(acked_at.values()) - start) if acked_at else 0.0
    return RunResult(
        steps=_steps(send_of, history),
        route=kind,
        store="sqlite",
        batch_size=batch_size,
        messages=messages,
        acknowledged=len(latencies),
        wall=wall,
        per_second=len(latencies) / wall if wall else 0.0,
        p50_ms=_quantile(latencies, 0.50) * 1000,
        p99_ms=_quantile(latencies, 0.99) * 1000,
        relay_cpu=relay_cpu,
        chain_cpu=chain_cpu,
        busy=dict(meter.busy),
        calls=dict(meter.calls),
        on_chain=on_chain,
        failures=failures,
    )


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


# -- output --------------------------------------------------------------------------------


def _print_busy(r: RunResult) -> None:
    def total(prefix: str) -> float:
        return sum(v for k, v in r.busy.items() if k.startswith(prefix))

    calls, thread = total("store."), total("store_thread.")
    print(
        f"  busy seconds (calls overlap): verification {total('verify.'):.1f}; store calls "
        f"{calls:.1f}, of which SQL+JSON on the store thread {thread:.1f} and waiting for the "
        f"store {calls - thread:.1f}; observation polls {total('observe['):.1f}; submissions "
        f"{total('submit['):.1f}; other chain reads {total('read['):.1f}"
    )
    top = sorted(r.busy.items(), key=lambda kv: -kv[1])[:8]
    print("  top calls (s/calls): " + ", ".join(f"{k} {s:.1f}/{r.calls[k]}" for k, s in top))
    chains = ", ".join(f"{c} {s:.1f} s" for c, s in r.chain_cpu.items())
    cores = os.cpu_count() or 1
    share = f" ({r.relay_cpu / r.wall / cores:.0%} of {cores} cores)" if r.wall else ""
    print(
        f"  CPU over {r.wall:.1f} s: relay process {r.relay_cpu:.1f} s{share}, chains {chains}; "
        f"load average {r.load[0]:.1f} before, {r.load[1]:.1f} after"
    )
    path = ", ".join(f"{label} +{sec:.2f}" for label, sec in r.steps)
    print(f"  median path from send (s): {path}")


def report(results: Sequence[RunResult], args: argparse.Namespace) -> None:
    print(f"\nrelay benchmark on {describe_machine()}")
    print(
        "routes: one GatewayNode serving both chains (in-process link); *-grpc: two "
        "GatewayNodes in this process, one per chain, each with its own store and gRPC server, "
        "linked by GrpcPeerLink over loopback mutual TLS (relay CPU is both nodes'). "
        f"{args.messages} messages per batched run "
        f"({args.unbatched_messages} with batch_size 1) sent by BatchSender "
        f"({args.per_tx} per transaction); Anvil --gas-limit {GAS_LIMIT:,} (default 30,000,000), "
        f"automine + a block every {args.mine_interval} s, confirmations 1; devnode 20 ms blocks, "
        f"seal_interval 0.1 s; relay poll_interval {args.poll_interval} s, batch_wait 0.5 s, "
        "structlog at WARNING"
    )
    print(
        f"\n{'route':<15} {'store':<8} {'batch':>5} {'acked':>11} {'msgs/s':>8} {'p50 ms':>8}"
        f" {'p99 ms':>8} {'wall s':>7} {'relay CPU s':>12}"
    )
    for r in results:
        print(
            f"{r.route:<15} {r.store:<8} {r.batch_size:>5} {r.acknowledged:>5}/{r.messages:<5} "
            f"{r.per_second:>8.0f} {r.p50_ms:>8.0f} {r.p99_ms:>8.0f} {r.wall:>7.1f}"
            f" {r.relay_cpu:>12.1f}"
        )
    for r in results:
        print(f"\n{r.route}, {r.store} store, batch_size {r.batch_size}:")
        _print_busy(r)
        print("  on chain: " + ", ".join(f"{k} {v}" for k, v in r.on_chain.items()))
        for f in r.failures:
            print(f"  FAILED: {f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per run")
    parser.add_argument(
        "--unbatched-messages",
        type=int,
        default=300,
        help="messages in the batch_size 1 runs (default 300, so that a full run stays near "
        "5 minutes: one delivery and one acknowledgement transaction per message)",
    )
    parser.add_argument("--per-tx", type=int, default=25, help="messages per BatchSender tx")
    parser.add_argument(
        "--batch-sizes", default="50,1", help="relay batch_size per run (default 50,1)"
    )
    parser.add_argument(
        "--only",
        choices=["anvil-anvil", "anvil-devnode", "anvil-anvil-grpc"],
        help="run one route only",
    )
    parser.add_argument(
        "--no-grpc", action="store_true", help="skip the two-gateway gRPC run (Anvil-Anvil)"
    )
    parser.add_argument("--mine-interval", type=float, default=0.05, help="seconds per block")
    parser.add_argument(
        "--poll-interval", type=float, default=0.25, help="relay poll_interval (default 0.25)"
    )
    parser.add_argument("--limit", type=float, default=120.0, help="seconds to wait for acks")
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="skip the PostgreSQL-store run (by default the anvil-anvil route runs once more, "
        "with batch_size 50, on a fresh database at 127.0.0.1:5432 next to the SQLite run)",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the runs to this file")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    kinds = [args.only] if args.only else ["anvil-anvil", "anvil-devnode"]
    if not args.only and not args.no_grpc:
        kinds.append("anvil-anvil-grpc")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    profiler = cProfile.Profile() if args.profile else None
    results = []
    for kind in kinds:
        # The gRPC hop's cost shows with batching on; its batch_size 1 run adds little.
        for size in sizes[:1] if kind.endswith("-grpc") and not args.only else sizes:
            print(f"{kind}, batch_size {size}: setting up", file=sys.stderr)
            count = args.messages if size > 1 else args.unbatched_messages
            stores = ["sqlite"]
            if kind == "anvil-anvil" and size == sizes[0] and not args.no_postgres:
                stores.append("postgres")
            for store in stores:
                run = run_once(kind, size, count, args, store)
                if profiler is not None:
                    results.append(profiler.runcall(asyncio.run, run))
                else:
                    results.append(asyncio.run(run))
    report(results, args)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
