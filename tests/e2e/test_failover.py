"""Two replicas of one gateway on PostgreSQL, one active (relay/replica.py), as `gateway run`
processes: the demo's chains and contracts (``DemoCluster``), gateway ``evm`` run twice from
two folders that differ only in ports, data folder and ``[store] replica``, sharing a database
created for this module; gateway ``fisco`` once, with both addresses of ``evm`` as its peer.

- SIGKILL of the active replica in the middle of a stream of messages both ways: the standby
  takes over within ``lease_seconds`` plus a margin, and every message is delivered once and
  acknowledged once on chain.
- SIGSTOP of the active replica until the standby took over, then SIGCONT: the old one writes
  nothing after the takeover. Each replica's connections carry its name as PostgreSQL's
  ``application_name`` (``PGAPPNAME``), and triggers this test adds to the store's tables note
  every written row with the writer and the lease's token at that moment; none of the old
  replica's rows carries the new token. Its audit export (through the new leader) verifies.

Skipped with a clear message when PostgreSQL at 127.0.0.1:5432 is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

from devnet.demo import (
    EVM_CHAIN,
    EVM_GATEWAY,
    FISCO_CHAIN,
    FISCO_GATEWAY,
    DemoCluster,
    GatewayHandle,
    free_port,
)
from devnet.demo_flow import DELIVERY, Api
from devnet.processes import Child, python_child
from tests.e2e.conftest import E2E_RELAY, EXTRA, on_chain_counts, wait_finished
from tests.e2e.test_audit import GATEWAY, _audit
from tests.pg import ADMIN_URL, migrate_now

pytestmark = pytest.mark.integration

LEASE_SECONDS: Final = 3.0
TAKEOVER_MARGIN: Final = 3.0
"""A standby tries every lease_seconds/3 and the database call takes a moment: a takeover
later than lease_seconds + this is a failure."""
REPLICAS: Final = ("evm-1", "evm-2")
DB_NAME: Final = f"gateway_failover_{os.getpid()}"
WRITTEN_TABLES: Final = (
    "messages",
    "history",
    "evidence",
    "rejected",
    "facts",
    "cursors",
    "audit_records",
    "audit_checkpoints",
)
NOTE_WRITES: Final = """
CREATE TABLE test_writes (
    n BIGSERIAL PRIMARY KEY,
    tbl TEXT NOT NULL,
    app TEXT NOT NULL,
    token BIGINT,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_note_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_writes (tbl, app, token) VALUES (
        TG_TABLE_NAME,
        current_setting('application_name'),
        (SELECT token FROM leases WHERE name = 'evm')
    );
    RETURN NULL;
END;
$$;
"""


def _url(dbname: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def create_database(name: str) -> str:
    """A new database ``name`` on the local server, migrated, with the write-noting triggers;
    its URL. Raises psycopg.OperationalError when the server is unreachable."""
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url(name)
    migrate_now(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(NOTE_WRITES)
        for table in WRITTEN_TABLES:
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} AFTER INSERT OR UPDATE ON {} "
                    "FOR EACH ROW EXECUTE FUNCTION test_note_write()"
                ).format(sql.Identifier(f"test_note_{table}"), sql.Identifier(table))
            )
    return url


def drop_database(name: str) -> None:
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn,
    ):
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own (see :func:`create_database`); dropped after."""
    try:
        url = create_database(DB_NAME)
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL at {ADMIN_URL} is unreachable ({str(exc).strip()}): the failover tests "
            "need a local server with trust auth (CI has one)"
        )
    try:
        yield url
    finally:
        drop_database(DB_NAME)


@dataclass
class Replicated:
    """The running set: two replicas of ``evm`` and gateway ``fisco``."""

    cluster: DemoCluster
    url: str
    handles: dict[str, GatewayHandle]
    """``evm-1``, ``evm-2`` and ``fisco``."""
    children: dict[str, Child] = field(default_factory=dict)
    apis: dict[str, Api] = field(default_factory=dict)

    def lease(self) -> tuple[str, int, float]:
        """(holder, token, seconds left) of gateway evm's lease."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT holder, token, "
                "EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 "
                "FROM leases WHERE name = 'evm'"
            ).fetchone()
        assert row is not None, "nobody ever took the lease"
        return str(row[0]), int(row[1]), float(row[2])

    def start(self, name: str) -> Child:
        handle = self.handles[name]
        env = {**os.environ, **self.cluster.keys, "PGAPPNAME": name}
        child = self.children.get(name) or python_child(
            f"gateway {name}",
            ["-m", "gateway", "run", "--config", str(handle.config)],
            self.cluster.root / "logs" / f"gateway-{name}.log",
            env=env,
            cwd=handle.directory,
        )
        child.start()
        self.children[name] = child
        return child

    def alive(self, *names: str) -> None:
        for name in names:
            self.children[name].check_alive()

    async def both_running(self) -> tuple[str, str]:
        """Start a replica that is down (it comes up as standby) and wait until one of the two
        holds the lease; (active, standby)."""
        for name in REPLICAS:
            if not self.children[name].running:
                self.start(name)
                await self.apis[name].wait_ready(90, self.children[name].check_alive)
                self.children[name].wait_for_log(r'"event": "replica_standby"', 30)
        deadline = time.monotonic() + LEASE_SECONDS + TAKEOVER_MARGIN
        while True:
            holder, _, left = self.lease()
            if left > 0 and holder in REPLICAS:
                return holder, next(n for n in REPLICAS if n != holder)
            assert time.monotonic() < deadline, "no replica holds the lease"
            await asyncio.sleep(0.2)

    async def takeover(self, name: str, since: float) -> float:
        """Seconds from ``since`` (monotonic) until replica ``name`` holds the lease."""
        deadline = since + LEASE_SECONDS + TAKEOVER_MARGIN
        while True:
            holder, _, left = self.lease()
            if holder == name and left > 0:
                return time.monotonic() - since
            self.alive(name)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{name} did not take over within {LEASE_SECONDS + TAKEOVER_MARGIN:g} s "
                    f"(lease held by {holder}, {left:.1f} s left)"
                )
            await asyncio.sleep(0.05)


def _replica_folder(cluster: DemoCluster, name: str, url: str) -> GatewayHandle:
    """A folder for replica ``name`` of gateway evm: a copy of the evm folder (certificates,
    keys, peers), its own ports and data folder, and ``[store]`` on the shared database."""
    base = cluster.gateways[EVM_GATEWAY]
    directory = cluster.root / name
    shutil.copytree(base.directory, directory, ignore=shutil.ignore_patterns("data"))
    config = directory / "gateway.toml"
    moved: dict[str, str] = {}

    def fresh(match: re.Match[str]) -> str:  # every port it listens on: gRPC, API, metrics
        moved[match[1]] = f"127.0.0.1:{free_port()}"
        return f'listen = "{moved[match[1]]}"'

    text = re.sub(r'^listen = "([^"]+)"', fresh, config.read_text(encoding="utf-8"), flags=re.M)
    text += f'\n[store]\nurl = "{url}"\nlease_seconds = {LEASE_SECONDS}\nreplica = "{name}"\n'
    config.write_text(text, encoding="utf-8")
    listen, api_listen = moved[base.listen], moved[base.api_listen]
    return dataclasses.replace(base, directory=directory, listen=listen, api_listen=api_listen)


def _peer_is_both(cluster: DemoCluster, replicas: list[GatewayHandle]) -> None:
    """Gateway fisco's [peers.evm] lists both replicas' addresses."""
    config = cluster.gateways[FISCO_GATEWAY].config
    text = config.read_text(encoding="utf-8")
    listed = ", ".join(f'"{r.listen}"' for r in replicas)
    old = f'address = "{cluster.gateways[EVM_GATEWAY].listen}"'
    assert old in text
    config.write_text(text.replace(old, f"addresses = [{listed}]"), encoding="utf-8")


@contextlib.asynccontextmanager
async def replicated_cluster(root: Path, url: str) -> AsyncIterator[Replicated]:
    """Anvil, the devnode, the contracts; evm-1 started first (it takes the lease), then
    evm-2 (standby) and fisco; everything stopped at the end."""
    cluster = DemoCluster(root, relay=E2E_RELAY)
    env: Replicated | None = None
    try:
        cluster.start_chains()
        cluster.deploy(extra=EXTRA)
        cluster.write_gateways()
        replicas = [_replica_folder(cluster, name, url) for name in REPLICAS]
        _peer_is_both(cluster, replicas)
        handles = {**dict(zip(REPLICAS, replicas, strict=True)), "fisco": cluster.gateways["fisco"]}
        env = Replicated(cluster, url, handles)
        env.start("evm-1").wait_for_log(r'"event": "replica_active"', 90)
        env.start("evm-2")
        env.start("fisco")
        for name, handle in env.handles.items():
            env.apis[name] = Api(handle)
            await env.apis[name].wait_ready(90, env.children[name].check_alive)
        env.children["evm-2"].wait_for_log(r'"event": "replica_standby"', 30)
        yield env
    finally:
        if env is not None:
            for api in env.apis.values():
                await api.close()
            for child in env.children.values():
                with contextlib.suppress(Exception):
                    os.killpg(child.pid or 0, signal.SIGCONT)
                with contextlib.suppress(Exception):
                    child.stop()
        cluster.stop()


@pytest_asyncio.fixture(scope="module")
async def replicated(
    tmp_path_factory: pytest.TempPathFactory, database: str
) -> AsyncIterator[Replicated]:
    """:func:`replicated_cluster` on this module's database."""
    async with replicated_cluster(tmp_path_factory.mktemp("failover"), database) as env:
        yield env


async def send_pair(env: Replicated, via: str, n: int, tag: str) -> tuple[bytes, bytes]:
    """One message evm -> fisco (sent through replica ``via``'s API) and one fisco -> evm."""
    echo = {c: env.cluster.contracts[c].extra["EchoReceiver"] for c in (EVM_CHAIN, FISCO_CHAIN)}
    out = await env.apis[via].send(
        EVM_CHAIN, FISCO_CHAIN, echo[FISCO_CHAIN], f"{tag} out {n}".encode(), 3600
    )
    back = await env.apis["fisco"].send(
        FISCO_CHAIN, EVM_CHAIN, echo[EVM_CHAIN], f"{tag} back {n}".encode(), 3600
    )
    return out, back


async def _all_done_once(env: Replicated, api: str, out: list[bytes], back: list[bytes]) -> None:
    """Every message acknowledged as a success, delivered once and acknowledged once on
    chain (read from the chains from height 0)."""
    alive = env.cluster.check_alive
    done = await wait_finished(env.apis[api], out, timeout=60, alive=lambda: env.alive(api))
    done |= await wait_finished(env.apis["fisco"], back, timeout=60, alive=alive)
    assert {row.result.status for row in done.values()} == {DELIVERY.DELIVERY_STATUS_SUCCESS}
    counts = await on_chain_counts(env.cluster)
    for mid in out + back:
        assert counts["delivered"].get(mid) == 1, f"0x{mid.hex()} delivered {counts}"
        assert counts["acknowledged"].get(mid) == 1, f"0x{mid.hex()} acknowledged"


@pytest.mark.timeout(300)
async def test_sigkill_of_the_active_replica_loses_and_doubles_nothing(
    replicated: Replicated,
) -> None:
    """A stream of messages both ways; the active replica is SIGKILLed after the fifth pair:
    the standby holds the lease within lease_seconds + margin, and every message is delivered
    once and acknowledged once on chain."""
    env = replicated
    active, standby = await env.both_running()
    _, token, _ = env.lease()
    out: list[bytes] = []
    back: list[bytes] = []
    killed_at = 0.0
    for n in range(10):
        if n == 5:
            env.children[active].kill()
            killed_at = time.monotonic()
        pair = await send_pair(env, active if n < 5 else standby, n, "kill")
        out.append(pair[0])
        back.append(pair[1])
        await asyncio.sleep(0.3)
    took = await env.takeover(standby, killed_at)
    assert env.lease()[1] > token
    assert took <= LEASE_SECONDS + TAKEOVER_MARGIN
    await _all_done_once(env, standby, out, back)


@pytest.mark.timeout(300)
async def test_a_paused_replica_writes_nothing_after_the_takeover(replicated: Replicated) -> None:
    """The active replica is SIGSTOPped with messages in flight until the standby took the
    lease, then SIGCONTed: it steps down (lease_lost in its log) and none of the rows it
    writes after that carries the new token (the database noted every row's writer); every
    message ends delivered and acknowledged once; the new leader's audit export verifies."""
    env = replicated
    old, new = await env.both_running()
    pid = env.children[old].pid
    assert pid is not None
    out: list[bytes] = []
    back: list[bytes] = []
    for n in range(4):
        pair = await send_pair(env, old, n, "pause")
        out.append(pair[0])
        back.append(pair[1])
    os.killpg(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        await env.takeover(new, stopped_at)
        _, new_token, _ = env.lease()
        for n in range(4, 6):
            pair = await send_pair(env, new, n, "pause")
            out.append(pair[0])
            back.append(pair[1])
        await asyncio.sleep(1.0)
        seen = len(env.children[old].output())
    finally:
        os.killpg(pid, signal.SIGCONT)
    deadline = time.monotonic() + 15
    while '"event": "lease_lost"' not in env.children[old].output()[seen:]:
        env.alive(old)
        assert time.monotonic() < deadline, "the resumed replica did not step down"
        await asyncio.sleep(0.1)
    await _all_done_once(env, new, out, back)
    after = env.children[old].output()[seen:]
    lost = re.search(r'\{[^\n]*"event": "lease_lost"[^\n]*\}', after)
    assert lost is not None
    with psycopg.connect(env.url, autocommit=True) as conn:
        late = conn.execute(
            "SELECT tbl, token, at FROM test_writes WHERE app = %s AND token >= %s",
            (old, new_token),
        ).fetchall()
        by_new = conn.execute(
            "SELECT count(*) FROM test_writes WHERE app = %s AND token = %s", (new, new_token)
        ).fetchone()
    assert late == [], f"{old} wrote after {new} took the lease: {late}"
    assert by_new is not None
    assert by_new[0] > 0  # the noting works: the new leader's rows are there
    _export_verifies(env.handles[new], env.cluster.root / f"audit-{new}.jsonl")
    print(f"resumed replica stepped down: {lost.group(0)}")
    if "FencedError" in after:
        print("and a write of its pipeline was refused with FencedError")


def _export_verifies(handle: GatewayHandle, out: Path) -> None:
    exported = _audit(handle, "export", "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    checked = subprocess.run(
        [GATEWAY, "audit", "verify", str(out), "--key", str(handle.directory / "audit.pub")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
