"""The PostgreSQL store on a real server (``tests/pg.py``: 127.0.0.1:5432, one database per
session, a clean schema per test): versioned migrations and the version check, connection errors
that never show a password, the audit trail in the state change's transaction (rolled back with
it, continued without gap or fork by a restarted store or another replica, serialized between
concurrent writers), and fencing of a replica that lost its lease."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.init import init_gateway
from protos.interop.v1 import interop_pb2, interop_pb2_grpc
from relay.audit import AuditKey, AuditKind, AuditLog, CheckpointPolicy, format_time, verify_export
from relay.node import GatewayNode
from relay.pg_store import (
    IDLE_IN_TRANSACTION_TIMEOUT_MS,
    PostgresStore,
    known_version,
    migrate,
    migrations,
    status,
)
from relay.store import (
    AuditFilter,
    FencedError,
    Hop,
    RejectedAttempt,
    Role,
    SchemaError,
    State,
    StoreError,
    Transition,
)
from tests import pg
from tests.integration.cli.test_run import GATEWAY as GATEWAY_CLI
from tests.integration.cli.test_run import run_cli
from tests.integration.grpc.test_interop_api import free_port, send, wait_for_state, write_gateway
from tests.integration.relay.pipeline_env import two_chains
from tests.unit.relay.test_pipeline import FAST, A, B, FakeChain, FakeVerifier, all_in
from verifier.messages import Message

pytestmark = pytest.mark.integration

GATEWAY = "gw-a"


def _msg(n: int, src: str = "chain-a", dst: str = "chain-b") -> Message:
    return Message(
        src_chain=src,
        src_gateway=b"\x01" * 20,
        dst_chain=dst,
        nonce=n,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"p%d" % n,
        timeout=10_000,
    )


def _id(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _insert(n: int, at: float, **kw: Any) -> Transition:
    return Transition(
        id=_id(n), role=Role.SOURCE, to=State.OBSERVED, expect=None, at=at, message=_msg(n), **kw
    )


def _move(n: int, frm: State, to: State, at: float, **kw: Any) -> Transition:
    return Transition(id=_id(n), role=Role.SOURCE, to=to, expect=frozenset({frm}), at=at, **kw)


@pytest.fixture(name="key")
def _key() -> AuditKey:
    return AuditKey.generate()


def _store(url: str, key: AuditKey, every: int = 1000, seconds: float = 60.0) -> PostgresStore:
    return PostgresStore(url, audit_log=AuditLog(GATEWAY, key, CheckpointPolicy(every, seconds)))


@pytest.fixture(name="store")
async def _open(pg_url: str, key: AuditKey) -> AsyncIterator[PostgresStore]:
    store = _store(pg_url, key, every=3)
    await store.open()
    yield store
    await store.close()


@pytest.fixture(name="pg_url")
def _pg_url() -> str:
    return pg.fresh_url()


async def _all(store: PostgresStore, flt: AuditFilter | None = None) -> list[Any]:
    records, _ = await store.audit_records(flt or AuditFilter(), limit=1000)
    return list(records)


# -- schema versions ------------------------------------------------------------------------------


async def test_migrate_applies_each_version_once_and_status_reports_it() -> None:
    url = pg.fresh_url(migrated=False)
    assert await status(url) == (0, known_version())
    applied = await migrate(url)
    assert [m.version for m in applied] == [m.version for m in migrations()]
    assert applied[0].version == 1
    assert await migrate(url) == []  # idempotent: nothing left to apply
    assert await status(url) == (known_version(), known_version())
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert rows == [(m.version, m.name) for m in migrations()]


async def test_two_migrations_at_once_apply_each_version_once() -> None:
    """Two operators (or two replicas' start scripts) migrating at the same time: the second
    waits for the first and finds nothing left to apply."""
    url = pg.fresh_url(migrated=False)
    first, second = await asyncio.gather(migrate(url), migrate(url))
    assert sorted([len(first), len(second)]) == [0, len(migrations())]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [m.version for m in migrations()]


async def test_open_refuses_an_unmigrated_database_naming_the_command() -> None:
    url = pg.fresh_url(migrated=False)
    store = PostgresStore(url)
    with pytest.raises(SchemaError, match="run `gateway db migrate"):
        await store.open()
    # The refusal created nothing: the database is still at version 0.
    assert (await status(url))[0] == 0


async def test_open_and_migrate_refuse_a_database_newer_than_this_gateway(pg_url: str) -> None:
    newer = known_version() + 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, 'from_the_future')",
            (newer,),
        )
    expected = f"knows schema versions 1..{known_version()}; .* is at {newer}"
    with pytest.raises(SchemaError, match=expected):
        await PostgresStore(pg_url).open()
    with pytest.raises(SchemaError, match=expected):
        await migrate(pg_url)


async def test_a_connection_failure_names_host_port_and_database_never_the_password() -> None:
    url = "postgresql://gateway:s3cret-pw@127.0.0.1:1/relaydb"  # nothing listens on port 1
    with pytest.raises(StoreError) as caught:
        await PostgresStore(url).open()
    text = str(caught.value)
    assert "127.0.0.1:1/relaydb" in text
    assert "s3cret-pw" not in text
    assert "s3cret-pw" not in repr(PostgresStore(url))


# -- the audit trail in the state change's transaction ------------------------------------------


async def test_every_state_change_and_rejection_has_its_record_in_order(
    store: PostgresStore,
) -> None:
    assert await store.transition(_insert(1, 100.0, height=7, tx_hash="0xaa"))
    assert await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    assert not await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.5))
    assert await store.transition(_move(1, State.VERIFIED, State.FORWARDED, 102.0))
    await store.record_rejected(
        RejectedAttempt(_id(1), Role.SOURCE, Hop.DELIVERY_RESULT, "quorum", "2 of 3", "gw-b", 103.0)
    )
    records = await _all(store)
    assert [r.kind for r in records] == [
        AuditKind.FACT_OBSERVED,
        AuditKind.EVIDENCE_VERIFIED,
        AuditKind.FORWARDED,
        AuditKind.ATTEMPT_REJECTED,
    ]
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert (records[3].check, records[3].reason, records[3].state) == (
        "quorum",
        "2 of 3",
        "forwarded",
    )


async def test_a_failing_audit_append_rolls_the_state_change_back(store: PostgresStore) -> None:
    """The record is written in the change's transaction: when the database refuses it, the
    row, its history and the audit chain are as before."""
    assert await store.transition(_insert(1, 100.0))
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_verified() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.record::jsonb ->> 'kind' = 'evidence_verified' THEN "
            "RAISE EXCEPTION 'audit disk full (simulated)'; END IF; RETURN NEW; END; $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_records FOR EACH ROW "
            "EXECUTE FUNCTION refuse_verified()"
        )
    with pytest.raises(StoreError, match="audit disk full"):
        await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    row = await store.get(_id(1), Role.SOURCE)
    assert row is not None
    assert row.state is State.OBSERVED
    assert [h.state for h in await store.history(_id(1))] == [State.OBSERVED]
    assert [r.kind for r in await _all(store)] == [AuditKind.FACT_OBSERVED]
    # A record that cannot be built (an integer beyond 2**53-1) rolls back just the same.
    with pytest.raises(ValueError, match="exceeds"):
        await store.transition(_insert(2, 102.0, height=2**60))
    assert await store.get(_id(2), Role.SOURCE) is None
    # The next change chains after what was committed.
    assert await store.transition(_move(1, State.OBSERVED, State.REJECTED, 103.0))
    records = await _all(store)
    assert [r.seq for r in records] == [1, 2]
    assert records[1].prev_hash == records[0].hash


async def test_a_bare_hook_failing_rolls_back_too(pg_url: str) -> None:
    async def hook(conn: Any, t: Transition, entry: Any) -> None:
        assert isinstance(conn, psycopg.AsyncConnection)
        if t.to is State.REJECTED:
            raise RuntimeError("audit log unavailable")

    store = PostgresStore(pg_url, audit=hook)
    await store.open()
    try:
        assert await store.transition(_insert(1, 100.0))
        with pytest.raises(RuntimeError):
            await store.transition(_move(1, State.OBSERVED, State.REJECTED, 101.0))
        row = await store.get(_id(1), Role.SOURCE)
        assert row is not None
        assert row.state is State.OBSERVED
        assert [h.state for h in await store.history(_id(1))] == [State.OBSERVED]
    finally:
        await store.close()


async def test_audit_rows_cannot_be_updated_or_deleted(store: PostgresStore) -> None:
    assert await store.transition(_insert(1, 100.0))
    with psycopg.connect(store.url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit_records SET record = '{}' WHERE seq = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit_records")
    assert len(await _all(store)) == 1


async def test_checkpoints_by_count_and_by_timer(pg_url: str, key: AuditKey) -> None:
    store = _store(pg_url, key, every=2, seconds=10.0)
    await store.open()
    try:
        assert await store.audit_checkpoint_due(1000.0) is None  # no records: nothing to sign
        assert await store.transition(_insert(1, 100.0))
        assert await store.audit_checkpoint() is None
        assert await store.transition(_insert(2, 101.0))
        cp = await store.audit_checkpoint()
        assert cp is not None
        assert (cp.seq, cp.head_hash) == await store.audit_head()
        assert cp.verify(key.public_key)
        assert await store.transition(_insert(3, 102.0))
        assert await store.audit_checkpoint_due(105.0) is None  # not yet 10 s
        timed = await store.audit_checkpoint_due(120.0)
        assert timed is not None
        assert timed.seq == 3
        assert await store.audit_checkpoint_due(200.0) is None  # the head did not move
        assert await store.audit_checkpoint(1) == cp
    finally:
        await store.close()


async def test_queries_filter_and_page(store: PostgresStore) -> None:
    assert await store.transition(_insert(1, 100.0))
    assert await store.transition(
        Transition(
            id=_id(2),
            role=Role.SOURCE,
            to=State.OBSERVED,
            expect=None,
            at=200.0,
            message=_msg(2, src="chain-c", dst="chain-d"),
        )
    )
    assert await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 300.0))
    assert await store.transition(_move(1, State.VERIFIED, State.REJECTED, 400.0))
    one = await _all(store, AuditFilter(message_id="0x" + _id(1).hex()))
    assert [r.seq for r in one] == [1, 3, 4]
    assert [r.seq for r in await _all(store, AuditFilter(chain="chain-d"))] == [2]
    assert [r.seq for r in await _all(store, AuditFilter(kind="evidence_verified"))] == [3]
    assert [r.seq for r in await _all(store, AuditFilter(state="rejected"))] == [4]
    window = AuditFilter(since=format_time(200.0), until=format_time(400.0))
    assert [r.seq for r in await _all(store, window)] == [2, 3]
    page, after = await store.audit_records(AuditFilter(), limit=3)
    assert ([r.seq for r in page], after) == ([1, 2, 3], 3)
    page, after = await store.audit_records(AuditFilter(), after=3, limit=3)
    assert ([r.seq for r in page], after) == ([4], None)
    assert list(await store.audit_lines(2, 3)) == [r.line() for r in (await _all(store))[1:3]]


async def test_a_restarted_store_continues_the_chain_and_the_export_verifies(
    pg_url: str, key: AuditKey
) -> None:
    first = _store(pg_url, key, every=2)
    await first.open()
    assert await first.transition(_insert(1, 100.0))
    assert await first.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    assert await first.transition(_insert(2, 102.0))
    await first.close()
    second = _store(pg_url, key, every=2)
    await second.open()
    try:
        assert await second.transition(_move(2, State.OBSERVED, State.VERIFIED, 103.0))
        records = await _all(second)
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert records[3].prev_hash == records[2].hash
        report = verify_export(await second.audit_export(200.0), key.public_key)
        assert report.ok, report.detail
        assert (report.records, report.checkpoints) == (4, 2)
    finally:
        await second.close()


async def test_concurrent_replicas_serialize_on_the_audit_head(pg_url: str, key: AuditKey) -> None:
    """Two stores (replicas, each with its own connections) write at once: one chain, no fork,
    no gap; and the change sequence lists every change (seqs commit in order)."""
    a, b = _store(pg_url, key, every=7), _store(pg_url, key, every=7)
    await a.open()
    await b.open()
    try:
        n = 30

        async def writes(store: PostgresStore, first: int) -> None:
            for i in range(first, first + n):
                assert await store.transition(_insert(i, 100.0 + i))
                assert await store.transition(_move(i, State.OBSERVED, State.VERIFIED, 200.0 + i))

        await asyncio.gather(writes(a, 1), writes(b, 1001))
        records = await _all(a)
        assert [r.seq for r in records] == list(range(1, 4 * n + 1))
        assert all(y.prev_hash == x.hash for x, y in itertools.pairwise(records))
        changes = await b.changes_since(0, limit=10_000)
        assert len(changes) == 4 * n
        assert [c.seq for c in changes] == sorted(c.seq for c in changes)
        report = verify_export(await b.audit_export(1000.0), key.public_key)
        assert report.ok, report.detail
        assert report.records == 4 * n
    finally:
        await a.close()
        await b.close()


# -- fencing -------------------------------------------------------------------------------------


async def test_a_fenced_replica_adds_no_audit_record_and_the_new_leader_continues(
    pg_url: str, key: AuditKey
) -> None:
    old, new = _store(pg_url, key, every=1000), _store(pg_url, key, every=1000)
    await old.open()
    await new.open()
    try:
        token = await old.acquire_lease(GATEWAY, "old", 60.0)
        assert token is not None
        old.fence(GATEWAY, "old", token)
        assert await old.transition(_insert(1, 100.0))
        await old.release_lease(GATEWAY, "old")
        taken = await new.acquire_lease(GATEWAY, "new", 60.0)
        assert taken is not None
        new.fence(GATEWAY, "new", taken)
        with pytest.raises(FencedError, match="held by new"):
            await old.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
        with pytest.raises(FencedError):
            await old.audit_checkpoint_due(10_000.0)
        assert await new.transition(_move(1, State.OBSERVED, State.VERIFIED, 102.0))
        records = await _all(new)
        assert [(r.seq, r.kind) for r in records] == [
            (1, AuditKind.FACT_OBSERVED),
            (2, AuditKind.EVIDENCE_VERIFIED),
        ]
        assert records[1].prev_hash == records[0].hash
        assert await new.audit_checkpoint() is None
    finally:
        await old.close()
        await new.close()


async def test_a_takeover_waits_for_a_write_already_past_its_fence_check(pg_url: str) -> None:
    """FOR SHARE on the lease row: a standby's takeover cannot slip in between the active
    replica's fence check and its commit; the write lands before the token changes."""
    old, new = PostgresStore(pg_url), PostgresStore(pg_url)
    await old.open()
    await new.open()
    try:
        token = await old.acquire_lease(GATEWAY, "old", 0.5)
        assert token is not None
        old.fence(GATEWAY, "old", token)
        release = asyncio.Event()
        entered = asyncio.Event()

        async def slow_hook(conn: Any, t: Transition, entry: Any) -> None:
            entered.set()
            await release.wait()

        old._hook = slow_hook
        write = asyncio.create_task(old.transition(_insert(1, 100.0)))
        await entered.wait()
        await asyncio.sleep(0.6)  # the lease has expired by now
        takeover = asyncio.create_task(new.acquire_lease(GATEWAY, "new", 60.0))
        await asyncio.sleep(0.3)
        assert not takeover.done()  # waits on the in-flight write's share lock
        release.set()
        assert await write
        taken = await takeover
        assert taken is not None
        assert taken > token
        assert await new.get(_id(1), Role.SOURCE) is not None
    finally:
        await old.close()
        await new.close()


# -- the commands -------------------------------------------------------------------------------


def _gateway_config(tmp_path: Path, url: str) -> Path:
    """A runnable gateway.toml (``gateway init``) whose chains nobody serves, on ``url``."""
    source = tmp_path / "chains.toml"
    source.write_text(
        f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:{free_port()}"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
relayer_key = {{ env = "T_KEY_A" }}

[chains.evm-b]
family = "evm"
endpoints = ["http://127.0.0.1:{free_port()}/b"]
chain_id = 31338
confirmations = 1
gateway = "0x{"22" * 20}"
relayer_key = {{ env = "T_KEY_B" }}
""",
        encoding="utf-8",
    )
    result = init_gateway(
        tmp_path / "gw", name="gw-pg", listen=f"127.0.0.1:{free_port()}", chains_from=source
    )
    with result.config.open("a", encoding="utf-8") as f:
        f.write('\n[store]\nurl_env = "T_STORE_URL"\nlease_seconds = 5.0\n')
    del url  # passed in the environment, as an operator with a password would
    return result.config


async def test_db_status_migrate_and_run_as_an_operator_uses_them(tmp_path: Path) -> None:
    """status says a migration is due (exit 1); gateway run refuses the database, naming the
    command, before it even asks the chains (exit 1, no traceback); migrate applies version 1
    and re-running applies nothing; status then says up to date (exit 0)."""
    url = pg.fresh_url(migrated=False)
    config = _gateway_config(tmp_path, url)
    env = {"T_STORE_URL": url, "T_KEY_A": "0x" + "01" * 32, "T_KEY_B": "0x" + "02" * 32}
    code, out, err = await run_cli("db", "status", "--config", str(config), env=env)
    assert code == 1, err
    assert "schema version: 0" in out
    assert f"known versions: 1..{known_version()}" in out
    assert "gateway db migrate" in out
    code, out, err = await run_cli("run", "--config", str(config), env=env)
    assert code == 1, err
    assert "run `gateway db migrate" in err
    assert "served chain unreachable" not in err
    assert "Traceback" not in err
    code, out, err = await run_cli("db", "migrate", "--config", str(config), env=env)
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("applied ")] == [
        f"applied {m.version:04d}_{m.name}" for m in migrations()
    ]
    code, out, err = await run_cli("db", "migrate", "--config", str(config), env=env)
    assert code == 0, err
    assert "nothing to apply" in out
    assert "applied " not in out
    code, out, err = await run_cli("db", "status", "--config", str(config), env=env)
    assert (code, "up to date" in out) == (0, True), out + err


async def test_db_commands_without_a_postgresql_store_or_server(tmp_path: Path) -> None:
    """No [store] url: exit 2 saying SQLite needs no migration. An unreachable server: exit 1
    naming host, port and database, never the password."""
    config = _gateway_config(tmp_path, "")
    text = config.read_text(encoding="utf-8")
    bare = config.parent / "sqlite.toml"  # beside it: its relative paths stay right
    bare.write_text(text[: text.index("\n[store]")] + "\n", encoding="utf-8")
    code, _, err = await run_cli("db", "migrate", "--config", str(bare))
    assert code == 2
    assert "needs no migration" in err
    env = {"T_STORE_URL": f"postgresql://gw:pa55word@127.0.0.1:{free_port()}/relay"}
    code, _, err = await run_cli("db", "migrate", "--config", str(config), env=env)
    assert code == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in err
    assert "pa55word" not in err
    assert "Traceback" not in err


# -- the pipeline on PostgreSQL -----------------------------------------------------------------


async def test_the_pipeline_relays_both_ways_on_postgresql_with_a_verifiable_trail(
    pg_url: str, key: AuditKey
) -> None:
    """The relay's own pipeline (fake chains and verifier from the unit suite) on a fenced
    PostgresStore: every message delivered and acknowledged once, each row's history in
    order, and the audit export verifies (one chain, every state change recorded)."""
    store = _store(pg_url, key, every=5)
    a, b = FakeChain(A), FakeChain(B)
    node = GatewayNode(
        store=store,
        adapters={A: a, B: b},
        verifier=FakeVerifier(),
        routes=[(A, B), (B, A)],
        settings=FAST,
        start_heights={A: 0, B: 0},
    )
    ab = [(await a.send_message(B, b"\x02" * 20, b"m%d" % i, 5000))[0] for i in range(6)]
    ba = [(await b.send_message(A, b"\x02" * 20, b"n%d" % i, 5000))[0] for i in range(3)]
    await node.start(pipeline=False)
    try:
        token = await store.acquire_lease(GATEWAY, "me", 60.0)
        assert token is not None
        store.fence(GATEWAY, "me", token)
        await node.start_pipeline()
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while not (
            await all_in(node, ab + ba, Role.SOURCE, State.ACKNOWLEDGED)
            and await all_in(node, ab + ba, Role.DESTINATION, State.RESULT_FORWARDED)
        ):
            assert loop.time() < end, "the messages never closed"
            await asyncio.sleep(0.05)
        assert sorted(b.delivered) == sorted(ab)
        assert sorted(a.delivered) == sorted(ba)
        assert sorted(a.acked) == sorted(ab)
        assert sum(len(c) for c in b.deliver_calls) == len(ab), "each message submitted once"
        changes = await store.changes_since(0, limit=10_000)
        report = verify_export(await store.audit_export(10_000.0), key.public_key)
        assert report.ok, report.detail
        assert report.records == len(changes)  # one record per state change, none rejected
        assert report.kinds.get("acknowledged") == len(ab + ba)
    finally:
        await node.stop()
        await store.close()


async def test_a_dropped_connection_fails_one_call_and_the_store_reconnects(
    store: PostgresStore,
) -> None:
    """The server ends the store's sessions (a restart, a failover): the call that hits the
    dead connection raises StoreError (retryable); the next ones reconnect and work."""
    assert await store.transition(_insert(1, 100.0))
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StoreError) as caught:
        await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    assert caught.value.retryable
    with pytest.raises(StoreError):
        await store.get(_id(1), Role.SOURCE)
    row = await store.get(_id(1), Role.SOURCE)
    assert row is not None
    assert row.state is State.OBSERVED  # the failed change did not happen
    assert await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.5))
    assert await store.transition(_insert(2, 102.0))
    row = await store.get(_id(2), Role.SOURCE)
    assert row is not None
    records = await _all(store)
    assert [r.seq for r in records] == [1, 2, 3]
    assert all(y.prev_hash == x.hash for x, y in itertools.pairwise(records))


async def test_a_replica_stalled_inside_a_write_cannot_block_a_takeover(pg_url: str) -> None:
    """A replica stopped mid-transaction (SIGSTOP; here: a hook that never returns in time)
    holds a share lock on the lease; the server ends its session after the idle-in-transaction
    timeout, the standby takes over, and the stalled write commits nothing."""
    old, new = PostgresStore(pg_url), PostgresStore(pg_url)
    await old.open()
    await new.open()
    try:
        token = await old.acquire_lease(GATEWAY, "old", 0.5)
        assert token is not None
        old.fence(GATEWAY, "old", token)
        entered = asyncio.Event()

        async def stalled(conn: Any, t: Transition, entry: Any) -> None:
            entered.set()
            await asyncio.sleep(IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000 + 2)

        old._hook = stalled
        write = asyncio.create_task(old.transition(_insert(1, 100.0)))
        await entered.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        taken = await new.acquire_lease(GATEWAY, "new", 60.0)
        waited = loop.time() - started
        assert taken is not None
        assert taken > token
        assert waited < IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000 + 1.5
        with pytest.raises(StoreError):
            await write
        assert await new.get(_id(1), Role.SOURCE) is None
    finally:
        await old.close()
        await new.close()


async def test_gateway_run_relays_on_postgresql_and_releases_its_lease(tmp_path: Path) -> None:
    """`gateway run` on Anvil and the devnode with [store] on PostgreSQL (migrated first): a
    message goes through to acknowledged, its rows, history and audit trail are in the
    database, and SIGTERM drains, releases the lease and exits 0."""
    url = pg.fresh_url(migrated=False)
    async with two_chains() as chains:
        gw = await write_gateway(chains, tmp_path / "gw")
        with gw.config.open("a", encoding="utf-8") as f:
            f.write('\n[store]\nurl_env = "T_STORE_URL"\nlease_seconds = 3.0\n')
        env = {**gw.environ, "T_STORE_URL": url}
        code, _, err = await run_cli("db", "migrate", "--config", str(gw.config), env=env)
        assert code == 0, err
        proc = await asyncio.create_subprocess_exec(
            GATEWAY_CLI,
            "run",
            "--config",
            str(gw.config),
            "--log-format",
            "json",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )
        assert proc.stderr is not None
        banner: list[str] = []
        try:
            async with asyncio.timeout(120):
                while not any("stop with SIGTERM" in line for line in banner):
                    line = (await proc.stderr.readline()).decode()
                    assert line, "gateway run ended before listening: " + "".join(banner)
                    banner.append(line)
            async with gw.channel() as channel:
                stub = interop_pb2_grpc.InteropServiceStub(channel)
                sent = await send(stub, gw, gw.evm, gw.fisco, "on postgres")
                done = await wait_for_state(
                    stub, gw, sent.id, interop_pb2.MESSAGE_STATE_ACKNOWLEDGED
                )
                assert done.state == interop_pb2.MESSAGE_STATE_ACKNOWLEDGED
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 120)
            rest = (await proc.stderr.read()).decode()
    assert code == 0, rest
    assert "Traceback" not in rest
    with psycopg.connect(url) as conn:
        states: dict[str, str] = dict(
            conn.execute("SELECT role, state FROM messages WHERE id = %s", (sent.id,)).fetchall()
        )
        kinds = [
            r[0]
            for r in conn.execute(
                "SELECT doc ->> 'kind' FROM audit_records WHERE doc ->> 'message_id' = %s "
                "ORDER BY seq",
                ("0x" + sent.id.hex(),),
            ).fetchall()
        ]
        lease = conn.execute(
            "SELECT holder, expires_at <= clock_timestamp() FROM leases"
        ).fetchall()
    assert states == {"source": "acknowledged", "destination": "result_forwarded"}
    assert kinds.count("acknowledged") == 1
    assert kinds.count("accepted_from_peer") == 1
    assert len(lease) == 1
    assert lease[0][1], "a clean stop releases the lease at once"
