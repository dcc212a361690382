""":class:`relay.store.Store` on PostgreSQL, shared by the replicas of one gateway.

psycopg 3, async: one write connection (writes run one transaction at a time, in order) and one
read connection (autocommit). The schema is versioned (``relay/pg_schema/NNNN_name.sql``,
applied by ``gateway db migrate``); :meth:`PostgresStore.open` refuses a database whose schema
is older or newer than this gateway knows (:class:`relay.store.SchemaError`).

Every write transaction:

1. when fenced (:meth:`PostgresStore.fence`), reads the lease ``FOR SHARE`` and raises
   :class:`relay.store.FencedError` unless this replica holds it with its token, unexpired by
   the database clock (a takeover's ``UPDATE`` waits for writes already past this check);
2. takes the transaction-scoped advisory lock :data:`WRITE_LOCK`, so that writers of every
   replica serialize: history seqs commit in order and the audit head is read, never cached,
   under the lock (no gap, no fork after a restart or a takeover);
3. writes the change, its history row and its audit record, and commits them together.
"""

# ruff: noqa: S608 - the f-strings insert column lists only; values are always bound

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict

from relay.audit import (
    AuditLog,
    AuditRecord,
    ChainHead,
    Checkpoint,
    Reliance,
    canonical_json,
    evidence_digest,
    record_from_json,
    record_from_rejected,
    record_from_transition,
    write_export,
)
from relay.audit_guard import FALLBACK_CHECKPOINTS
from relay.sql_filters import POSTGRES, audit_conditions, message_conditions
from relay.store import (
    ATTEMPTS_KEPT,
    TERMINAL,
    AuditFilter,
    Bounds,
    EvidenceRecord,
    FencedError,
    HistoryEntry,
    Hop,
    MessageFilter,
    MessageRecord,
    Page,
    RejectedAttempt,
    Role,
    SchemaError,
    State,
    StoreError,
    StuckMessage,
    Transition,
    message_from_json,
    message_to_json,
    result_from_json,
    result_to_json,
    truncate_error,
)
from verifier.messages import DeliveryStatus

SCHEMA_DIR: Final = Path(__file__).parent / "pg_schema"
WRITE_LOCK: Final = 0x6761_7465_7761_7901
"""``pg_advisory_xact_lock`` key every write transaction takes (any replica of any gateway
sharing the database)."""
MIGRATE_LOCK: Final = 0x6761_7465_7761_7902
"""Session advisory lock held while migrating: two ``gateway db migrate`` never interleave."""

STATEMENT_TIMEOUT_MS: Final = 30_000
LOCK_TIMEOUT_MS: Final = 10_000
IDLE_IN_TRANSACTION_TIMEOUT_MS: Final = 5_000
"""A replica stopped (SIGSTOP) inside a write transaction loses it after this, so its share lock
on the lease cannot block a takeover for ever (write transactions are a few statements)."""
READ_IDLE_IN_TRANSACTION_TIMEOUT_MS: Final = 120_000
"""The read connection's one transaction is an audit export's snapshot (parsed between reads)."""

_T = TypeVar("_T")
PgAuditHook = Callable[[AsyncConnection[Any], Transition, HistoryEntry], Awaitable[None] | None]
"""The PostgreSQL store's audit hook: called inside the transaction with its connection."""

_COLUMNS: Final = (
    "row, id, role, state, src_chain, dst_chain, message, result, ack_status, attempts, "
    "last_error, next_try_at, created_at, updated_at, state_since"
)
_HISTORY_COLUMNS: Final = (
    "seq, id, role, state, at, kind, height, tx_hash, error, src_chain, dst_chain"
)


# ---------------------------------------------------------------------------------------------
# Schema versions


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations(folder: Path = SCHEMA_DIR) -> tuple[Migration, ...]:
    """``NNNN_name.sql`` in version order; versions must be 1, 2, 3, ... without a gap."""
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit():
            raise SchemaError(f"{path.name}: a migration is named NNNN_name.sql")
        found.append(Migration(int(number), name, path))
    found.sort(key=lambda m: m.version)
    for expected, m in enumerate(found, start=1):
        if m.version != expected:
            raise SchemaError(f"migration {m.path.name}: version {expected} was due")
    return tuple(found)


def known_version() -> int:
    known = migrations()
    return known[-1].version if known else 0


def describe_url(url: str) -> str:
    """``host:port/dbname as user``, never the password (for messages and logs)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "the configured PostgreSQL URL (unparsable)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = info.get("port") or "5432"
    db = info.get("dbname") or info.get("user") or "?"
    user = f" as {info['user']}" if info.get("user") else ""
    return f"{host}:{port}/{db}{user}"


def _scrub(text: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    return text.replace(str(password), "***") if password else text


async def connect(url: str, *, autocommit: bool = False) -> AsyncConnection[Any]:
    """A connection with the store's timeouts; :class:`StoreError` naming host, port and
    database (never the password) when it fails. Reads (``autocommit``) have no statement
    timeout: an auditor's export of a long trail may take a while and holds no lock a writer
    waits for."""
    statement = 0 if autocommit else STATEMENT_TIMEOUT_MS
    idle = READ_IDLE_IN_TRANSACTION_TIMEOUT_MS if autocommit else IDLE_IN_TRANSACTION_TIMEOUT_MS
    options = (
        f"-c statement_timeout={statement} -c lock_timeout={LOCK_TIMEOUT_MS} "
        f"-c idle_in_transaction_session_timeout={idle}"
    )
    try:
        return await AsyncConnection.connect(
            url, autocommit=autocommit, options=options, connect_timeout=10
        )
    except psycopg.Error as exc:
        reason = _scrub(str(exc).strip(), url)
        raise StoreError(f"cannot connect to PostgreSQL at {describe_url(url)}: {reason}") from None


async def schema_version(conn: AsyncConnection[Any]) -> int:
    """The highest applied migration; 0 for a database never migrated."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


def check_version(current: int, url: str) -> None:
    """:class:`SchemaError` unless the database is at exactly the version this gateway knows."""
    known = known_version()
    if current < known:
        raise SchemaError(
            f"the database at {describe_url(url)} has schema version {current}, this gateway "
            f"needs {known}: run `gateway db migrate --config <your gateway.toml>`"
        )
    if current > known:
        raise SchemaError(
            f"this gateway knows schema versions 1..{known}; the database at "
            f"{describe_url(url)} is at {current} (migrated by a newer gateway): run that "
            "version, or restore a backup"
        )


async def status(url: str) -> tuple[int, int]:
    """(the database's schema version, the newest this gateway knows)."""
    conn = await connect(url, autocommit=True)
    try:
        return await schema_version(conn), known_version()
    except psycopg.Error as exc:
        raise StoreError(f"reading the schema version: {exc}") from exc
    finally:
        await conn.close()


async def migrate(url: str) -> list[Migration]:
    """Apply the migrations the database lacks, each in its own transaction, in order; the
    ones applied (none when it is up to date). Refuses a database newer than this gateway."""
    known = migrations()
    conn = await connect(url, autocommit=True)
    applied: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        )
        current = await schema_version(conn)
        if current > len(known):
            check_version(current, url)
        for m in known[current:]:
            async with conn.transaction():
                await conn.execute(m.sql().encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (m.version, m.name),
                )
            applied.append(m)
        return applied
    except psycopg.Error as exc:
        done = f" (applied {', '.join(str(m.version) for m in applied)})" if applied else ""
        raise StoreError(f"migrating {describe_url(url)} failed{done}: {exc}") from exc
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# Rows


def _record(r: tuple[Any, ...]) -> MessageRecord:
    return MessageRecord(
        row=int(r[0]),
        id=bytes(r[1]),
        role=Role(r[2]),
        state=State(r[3]),
        src_chain=r[4],
        dst_chain=r[5],
        message=message_from_json(r[6]) if r[6] is not None else None,
        result=result_from_json(r[7]) if r[7] is not None else None,
        ack_status=DeliveryStatus(r[8]) if r[8] is not None else None,
        attempts=int(r[9]),
        last_error=r[10],
        next_try_at=float(r[11]),
        created_at=float(r[12]),
        updated_at=float(r[13]),
        state_since=float(r[14]),
    )


def _history(r: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(
        seq=int(r[0]),
        id=bytes(r[1]),
        role=Role(r[2]),
        state=State(r[3]),
        at=float(r[4]),
        kind=r[5],
        height=r[6],
        tx_hash=r[7],
        error=r[8],
        src_chain=r[9],
        dst_chain=r[10],
    )


def _checkpoint(text: str) -> Checkpoint:
    d = json.loads(text)
    return Checkpoint(**{k: v for k, v in d.items() if k not in {"type", "v"}})


def _states(values: frozenset[State]) -> list[str]:
    return sorted(str(v) for v in values)


class PostgresStore:
    """``PostgresStore(url)``; :meth:`open` before use (checks the schema version), :meth:`close`
    at the end. ``audit_log`` appends an audit record in the transaction of every state change
    and rejected attempt; ``audit`` is a bare hook (tests of the hook's place)."""

    def __init__(
        self,
        url: str,
        *,
        bounds: Bounds | None = None,
        audit_log: AuditLog | None = None,
        audit: PgAuditHook | None = None,
    ) -> None:
        self.url = url
        self.audit_log = audit_log
        self._hook = audit
        self._bounds = bounds or Bounds()
        self._write_conn: AsyncConnection[Any] | None = None
        self._read_conn: AsyncConnection[Any] | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._fence: tuple[str, str, int] | None = None
        self._open = False

    def __repr__(self) -> str:
        return f"PostgresStore({describe_url(self.url)})"

    # -- plumbing -----------------------------------------------------------------------------

    async def open(self) -> None:
        conn = await connect(self.url, autocommit=True)
        try:
            check_version(await schema_version(conn), self.url)
        except BaseException:
            await conn.close()
            raise
        try:
            self._write_conn = await connect(self.url)
        except BaseException:
            await conn.close()
            raise
        self._read_conn = conn
        self._open = True

    async def check(self) -> None:
        """Connect and check the schema version, without opening: a start fails fast (before
        the chains are probed) on an unreachable or un-migrated database."""
        conn = await connect(self.url, autocommit=True)
        try:
            check_version(await schema_version(conn), self.url)
        finally:
            await conn.close()

    async def close(self) -> None:
        self._open = False
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                await conn.close()
        self._write_conn = self._read_conn = None

    async def _conn(self, write: bool) -> AsyncConnection[Any]:
        if not self._open:
            raise StoreError("the store is not open")
        conn = self._write_conn if write else self._read_conn
        if conn is None or conn.closed or conn.broken:
            # The server restarted or the network dropped: a fresh connection (the failed
            # call already raised; this one starts clean).
            if conn is not None:
                await conn.close()
            conn = await connect(self.url, autocommit=not write)
            if write:
                self._write_conn = conn
            else:
                self._read_conn = conn
        return conn

    async def _write(
        self, fn: Callable[[AsyncConnection[Any]], Awaitable[_T]], *, fenced: bool = True
    ) -> _T:
        """``fn`` in one transaction, after the fence check and under :data:`WRITE_LOCK`. The
        transaction runs to its end even if the caller is cancelled (a shutdown): it commits or
        rolls back whole, and :meth:`close` waits for it."""
        task = asyncio.create_task(self._write_tx(fn, fenced))
        self._inflight.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def _write_tx(
        self, fn: Callable[[AsyncConnection[Any]], Awaitable[_T]], fenced: bool
    ) -> _T:
        async with self._write_lock:
            conn = await self._conn(True)
            try:
                async with conn.transaction():
                    if fenced:
                        if self._fence is not None:
                            await _check_fence(conn, *self._fence)
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    return await fn(conn)
            except psycopg.Error as exc:
                raise StoreError(f"store failure: {exc}") from exc

    async def _read(self, fn: Callable[[AsyncConnection[Any]], Awaitable[_T]]) -> _T:
        async with self._read_lock:
            conn = await self._conn(False)
            try:
                return await fn(conn)
            except psycopg.Error as exc:
                raise StoreError(f"store failure: {exc}") from exc

    async def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        async def read(conn: AsyncConnection[Any]) -> list[Any]:
            cur = await conn.execute(sql, args)
            return await cur.fetchall()

        return await self._read(read)

    # -- leases and fencing -------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        async def apply(conn: AsyncConnection[Any]) -> int | None:
            cur = await conn.execute(
                "INSERT INTO leases (name, holder, token, expires_at) VALUES "
                "(%s, %s, 1, clock_timestamp() + make_interval(secs => %s)) "
                "ON CONFLICT (name) DO NOTHING RETURNING token",
                (name, holder, ttl),
            )
            if await cur.fetchone() is not None:
                return 1
            # FOR UPDATE waits for write transactions that passed their fence check.
            cur = await conn.execute(
                "SELECT holder, token FROM leases WHERE name=%s FOR UPDATE", (name,)
            )
            row = await cur.fetchone()
            assert row is not None  # the insert conflicted and leases are never deleted
            cur = await conn.execute(
                "SELECT expires_at > clock_timestamp() FROM leases WHERE name=%s", (name,)
            )
            live_row = await cur.fetchone()
            live = bool(live_row[0]) if live_row is not None else False
            current, token = str(row[0]), int(row[1])
            if live and current != holder:
                return None
            if not live:
                token += 1  # taken anew (by anyone): writes fenced with the old token fail
            await conn.execute(
                "UPDATE leases SET holder=%s, token=%s, "
                "expires_at=clock_timestamp() + make_interval(secs => %s) WHERE name=%s",
                (holder, token, ttl, name),
            )
            return token

        return await self._write(apply, fenced=False)

    async def release_lease(self, name: str, holder: str) -> None:
        async def apply(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "UPDATE leases SET expires_at = LEAST(expires_at, clock_timestamp()) "
                "WHERE name=%s AND holder=%s",
                (name, holder),
            )

        await self._write(apply, fenced=False)

    async def lease_holder(self, name: str) -> tuple[str, int, float] | None:
        rows = await self._rows(
            "SELECT holder, token, "
            "EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 "
            "FROM leases WHERE name=%s",
            (name,),
        )
        return (str(rows[0][0]), int(rows[0][1]), float(rows[0][2])) if rows else None

    def fence(self, name: str, holder: str, token: int | None) -> None:
        self._fence = None if token is None else (name, holder, token)

    # -- writes -------------------------------------------------------------------------------

    async def transition(self, t: Transition) -> bool:
        async def apply(conn: AsyncConnection[Any]) -> bool:
            error = truncate_error(t.error) if t.error else None
            if t.expect is None:
                if t.message is None:
                    raise StoreError("inserting a row needs its message")
                cur = await conn.execute(
                    "INSERT INTO messages (id, role, state, src_chain, dst_chain, message, "
                    "result, ack_status, next_try_at, created_at, updated_at, state_since, "
                    "last_error) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (id, role) DO NOTHING RETURNING src_chain, dst_chain",
                    (
                        t.id,
                        str(t.role),
                        str(t.to),
                        t.message.src_chain,
                        t.message.dst_chain,
                        message_to_json(t.message),
                        result_to_json(t.result) if t.result else None,
                        int(t.ack_status) if t.ack_status is not None else None,
                        t.next_try_at,
                        t.at,
                        t.at,
                        t.at,
                        error,
                    ),
                )
            else:
                cur = await conn.execute(
                    "UPDATE messages SET state=%s, attempts=0, last_error=%s, next_try_at=%s, "
                    "updated_at=%s, state_since=%s, result=COALESCE(%s, result), "
                    "ack_status=COALESCE(%s, ack_status), message=COALESCE(%s, message) "
                    "WHERE id=%s AND role=%s AND state = ANY(%s) "
                    "RETURNING src_chain, dst_chain",
                    (
                        str(t.to),
                        error,
                        t.next_try_at,
                        t.at,
                        t.at,
                        result_to_json(t.result) if t.result else None,
                        int(t.ack_status) if t.ack_status is not None else None,
                        message_to_json(t.message) if t.replace_message and t.message else None,
                        t.id,
                        str(t.role),
                        _states(t.expect),
                    ),
                )
            row = await cur.fetchone()
            if row is None:
                return False
            src, dst = str(row[0]), str(row[1])
            if t.evidence is not None:
                hop, bundle, endpoint = t.evidence
                conflict = (
                    "DO UPDATE SET bundle=excluded.bundle, endpoint=excluded.endpoint, "
                    "at=excluded.at"
                    if t.replace_evidence
                    else "DO NOTHING"
                )
                await conn.execute(
                    "INSERT INTO evidence (id, hop, bundle, endpoint, at) "
                    f"VALUES (%s,%s,%s,%s,%s) ON CONFLICT (id, hop) {conflict}",
                    (t.id, str(hop), json.dumps(bundle, sort_keys=True), endpoint, t.at),
                )
                if t.fact is not None:
                    await conn.execute(
                        "INSERT INTO facts (id, hop, locator) VALUES (%s,%s,%s) "
                        "ON CONFLICT (id, hop) DO UPDATE SET locator=excluded.locator",
                        (t.id, str(hop), json.dumps(t.fact, sort_keys=True)),
                    )
            cur = await conn.execute(
                "INSERT INTO history (id, role, state, at, kind, height, tx_hash, error, "
                "src_chain, dst_chain) VALUES (%s,%s,%s,%s,'state',%s,%s,%s,%s,%s) "
                "RETURNING seq",
                (t.id, str(t.role), str(t.to), t.at, t.height, t.tx_hash, error, src, dst),
            )
            seq_row = await cur.fetchone()
            entry = HistoryEntry(
                seq=int(seq_row[0]) if seq_row is not None else 0,
                id=t.id,
                role=t.role,
                state=t.to,
                at=t.at,
                kind="state",
                height=t.height,
                tx_hash=t.tx_hash,
                error=error,
                src_chain=src,
                dst_chain=dst,
            )
            if self._hook is not None:
                called = self._hook(conn, t, entry)
                if called is not None:
                    await called
            if self.audit_log is not None:
                await self._append_transition(conn, self.audit_log, t, entry)
            return True

        return await self._write(apply)

    async def record_attempt(
        self, id: bytes, role: Role, *, state: State, error: str, next_try_at: float, at: float
    ) -> bool:
        text = truncate_error(error)

        async def apply(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE messages SET attempts=attempts+1, last_error=%s, next_try_at=%s, "
                "updated_at=%s WHERE id=%s AND role=%s AND state=%s "
                "RETURNING src_chain, dst_chain",
                (text, next_try_at, at, id, str(role), str(state)),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute(
                "INSERT INTO history (id, role, state, at, kind, error, src_chain, dst_chain) "
                "VALUES (%s,%s,%s,%s,'attempt',%s,%s,%s)",
                (id, str(role), str(state), at, text, row[0], row[1]),
            )
            # Only the newest attempts are kept (the row's ``attempts`` counts them all).
            await conn.execute(
                "DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE id=%s AND "
                "role=%s AND state=%s AND kind='attempt' ORDER BY seq DESC OFFSET %s)",
                (id, str(role), str(state), ATTEMPTS_KEPT),
            )
            return True

        return await self._write(apply)

    async def record_rejected(self, attempt: RejectedAttempt) -> None:
        per_id, total = self._bounds.rejected_per_id, self._bounds.rejected_total
        log = self.audit_log

        async def apply(conn: AsyncConnection[Any]) -> None:
            if log is not None:
                # The audit record keeps every rejection (the table below is pruned).
                cur = await conn.execute(
                    "SELECT src_chain, dst_chain, state FROM messages WHERE id=%s AND role=%s",
                    (attempt.id, str(attempt.role)),
                )
                row = await cur.fetchone()
                src, dst, state = row if row is not None else ("", "", str(State.REJECTED))
                record = record_from_rejected(
                    attempt,
                    gateway=log.gateway,
                    src_chain=src,
                    dst_chain=dst,
                    state=State(state),
                    prev=await _audit_head(conn),
                )
                await self._append(conn, log, record, bundle=None, relied=None, at=attempt.at)
            await conn.execute(
                "INSERT INTO rejected (id, role, hop, check_name, reason, peer, at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                (
                    attempt.id,
                    str(attempt.role),
                    str(attempt.hop),
                    attempt.check[:64],
                    truncate_error(attempt.reason),
                    attempt.peer[:64],
                    attempt.at,
                ),
            )
            await conn.execute(
                "DELETE FROM rejected WHERE n IN (SELECT n FROM rejected WHERE id=%s "
                "ORDER BY n DESC OFFSET %s)",
                (attempt.id, per_id),
            )
            await conn.execute(
                "DELETE FROM rejected WHERE n IN (SELECT n FROM rejected ORDER BY n DESC "
                "OFFSET %s)",
                (total,),
            )

        await self._write(apply)

    async def set_cursor(self, chain: str, cursor: str, at: float) -> None:
        async def apply(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO cursors (chain, cursor, updated_at) VALUES (%s,%s,%s) "
                "ON CONFLICT (chain) DO UPDATE SET cursor=excluded.cursor, "
                "updated_at=excluded.updated_at",
                (chain, cursor, at),
            )

        await self._write(apply)

    async def save_fact(self, id: bytes, hop: Hop, locator: Mapping[str, Any]) -> None:
        text = json.dumps(locator, sort_keys=True)

        async def apply(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO facts (id, hop, locator) VALUES (%s,%s,%s) "
                "ON CONFLICT (id, hop) DO UPDATE SET locator=excluded.locator",
                (id, str(hop), text),
            )

        await self._write(apply)

    # -- the audit trail, written in the caller's transaction (under WRITE_LOCK) ----------------

    async def _append_transition(
        self, conn: AsyncConnection[Any], log: AuditLog, t: Transition, entry: HistoryEntry
    ) -> None:
        relied = t.audit if isinstance(t.audit, Reliance) else None
        record = record_from_transition(
            t, entry, gateway=log.gateway, prev=await _audit_head(conn), relied=relied
        )
        bundle = t.evidence[1] if t.evidence is not None else None
        await self._append(conn, log, record, bundle=bundle, relied=relied, at=entry.at)

    async def _append(
        self,
        conn: AsyncConnection[Any],
        log: AuditLog,
        record: AuditRecord,
        *,
        bundle: Mapping[str, Any] | None,
        relied: Reliance | None,
        at: float,
    ) -> None:
        await conn.execute(
            "INSERT INTO audit_records (seq, hash, record) VALUES (%s,%s,%s)",
            (record.seq, record.hash, record.line()),
        )
        if bundle is not None and record.evidence_digest == evidence_digest(bundle):
            await conn.execute(
                "INSERT INTO audit_evidence (digest, bundle) VALUES (%s,%s) "
                "ON CONFLICT (digest) DO NOTHING",
                (record.evidence_digest, json.dumps(bundle, sort_keys=True)),
            )
        if relied is not None and relied.trust is not None:
            await conn.execute(
                "INSERT INTO audit_trust (digest, trust) VALUES (%s,%s) "
                "ON CONFLICT (digest) DO NOTHING",
                (relied.trust_digest, json.dumps(relied.trust, sort_keys=True)),
            )
        await _checkpoint_if_due(conn, log, ChainHead(record.seq, record.hash), at)

    async def audit_checkpoint_due(self, now: float) -> Checkpoint | None:
        """The timer's checkpoint: signed and stored when the policy says one is due."""
        log = self.audit_log
        if log is None:
            return None

        async def apply(conn: AsyncConnection[Any]) -> Checkpoint | None:
            return await _checkpoint_if_due(conn, log, await _audit_head(conn), now)

        return await self._write(apply)

    # -- audit reads ----------------------------------------------------------------------------

    async def audit_records(
        self, flt: AuditFilter, *, after: int = 0, limit: int = 100
    ) -> tuple[tuple[AuditRecord, ...], int | None]:
        """Records matching ``flt`` with seq above ``after``, in seq order, and the seq to
        pass as ``after`` for the next page (None: this was the last)."""
        where, args = audit_conditions(flt, after, POSTGRES)
        limit = max(1, limit)
        rows = await self._rows(
            f"SELECT record FROM audit_records WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s",
            [*args, limit + 1],
        )
        items = tuple(record_from_json(json.loads(r[0])) for r in rows[:limit])
        more = len(rows) > limit and items
        return items, items[-1].seq if more else None

    async def audit_lines(self, first: int, last: int) -> tuple[str, ...]:
        """The canonical lines of records ``first..last`` (a chain segment), in seq order."""
        rows = await self._rows(
            "SELECT record FROM audit_records WHERE seq BETWEEN %s AND %s ORDER BY seq",
            (first, last),
        )
        return tuple(str(r[0]) for r in rows)

    async def audit_checkpoint(self, seq: int = 0) -> Checkpoint | None:
        """The first checkpoint at or after ``seq``; 0: the newest. None when there is none."""
        if seq <= 0:
            rows = await self._rows(
                "SELECT checkpoint FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
            )
        else:
            rows = await self._rows(
                "SELECT checkpoint FROM audit_checkpoints WHERE seq >= %s ORDER BY seq LIMIT 1",
                (seq,),
            )
        return _checkpoint(rows[0][0]) if rows else None

    async def audit_head(self) -> tuple[int, str] | None:
        """The last record's seq and hash."""
        rows = await self._rows("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def audit_export(self, now: float, *, from_seq: int = 1) -> list[str]:
        """The export's lines (``relay.audit.write_export``), read in one snapshot."""
        log = self.audit_log
        if log is None:
            raise StoreError("the store keeps no audit trail")

        async def read(conn: AsyncConnection[Any]) -> list[str]:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur = await conn.execute(
                    "SELECT record FROM audit_records WHERE seq >= %s ORDER BY seq", (from_seq,)
                )
                records = [record_from_json(json.loads(r[0])) for r in await cur.fetchall()]
                cur = await conn.execute(
                    "SELECT checkpoint FROM audit_checkpoints WHERE seq >= %s ORDER BY seq",
                    (from_seq,),
                )
                checkpoints = [_checkpoint(r[0]) for r in await cur.fetchall()]
                digests = sorted({r.evidence_digest for r in records if r.evidence_digest})
                trusts = sorted({r.trust_digest for r in records if r.trust_digest})
                cur = await conn.execute(
                    "SELECT digest, bundle FROM audit_evidence WHERE digest = ANY(%s)", (digests,)
                )
                bundle_map = {str(r[0]): json.loads(r[1]) for r in await cur.fetchall()}
                cur = await conn.execute(
                    "SELECT digest, trust FROM audit_trust WHERE digest = ANY(%s)", (trusts,)
                )
                trust_map = {str(r[0]): json.loads(r[1]) for r in await cur.fetchall()}
            return list(
                write_export(
                    records,
                    checkpoints,
                    key=log.key,
                    gateway=log.gateway,
                    bundles=bundle_map.get,
                    trusts=trust_map.get,
                    now=now,
                    from_seq=from_seq,
                )
            )

        return await self._read(read)

    # -- reads --------------------------------------------------------------------------------

    async def get(self, id: bytes, role: Role) -> MessageRecord | None:
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM messages WHERE id=%s AND role=%s", (id, str(role))
        )
        return _record(rows[0]) if rows else None

    async def get_any(self, id: bytes) -> tuple[MessageRecord, ...]:
        rows = await self._rows(f"SELECT {_COLUMNS} FROM messages WHERE id=%s ORDER BY row", (id,))
        return tuple(_record(r) for r in rows)

    async def list_messages(
        self, flt: MessageFilter, *, after: int | None = None, limit: int = 100
    ) -> Page:
        where, args = message_conditions(flt, after or 0, POSTGRES)
        limit = max(1, limit)
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM messages WHERE {' AND '.join(where)} ORDER BY row LIMIT %s",
            [*args, limit + 1],
        )
        items = tuple(_record(r) for r in rows[:limit])
        more = len(rows) > limit
        return Page(items=items, next_after=items[-1].row if more and items else None)

    async def history(self, id: bytes) -> tuple[HistoryEntry, ...]:
        rows = await self._rows(
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE id=%s ORDER BY seq", (id,)
        )
        return tuple(_history(r) for r in rows)

    async def changes_since(self, seq: int, *, limit: int = 1000) -> tuple[HistoryEntry, ...]:
        rows = await self._rows(
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE seq > %s AND kind='state' "
            "ORDER BY seq LIMIT %s",
            (seq, max(1, limit)),
        )
        return tuple(_history(r) for r in rows)

    async def evidence(self, id: bytes) -> tuple[EvidenceRecord, ...]:
        rows = await self._rows(
            "SELECT hop, bundle, endpoint, at FROM evidence WHERE id=%s ORDER BY at, hop", (id,)
        )
        return tuple(
            EvidenceRecord(hop=Hop(r[0]), bundle=json.loads(r[1]), endpoint=r[2], at=float(r[3]))
            for r in rows
        )

    async def fact(self, id: bytes, hop: Hop) -> Mapping[str, Any] | None:
        rows = await self._rows("SELECT locator FROM facts WHERE id=%s AND hop=%s", (id, str(hop)))
        value: Mapping[str, Any] | None = json.loads(rows[0][0]) if rows else None
        return value

    async def rejected(self, id: bytes) -> tuple[RejectedAttempt, ...]:
        rows = await self._rows(
            "SELECT id, role, hop, check_name, reason, peer, at FROM rejected WHERE id=%s "
            "ORDER BY n",
            (id,),
        )
        return tuple(
            RejectedAttempt(
                id=bytes(r[0]),
                role=Role(r[1]),
                hop=Hop(r[2]),
                check=r[3],
                reason=r[4],
                peer=r[5],
                at=float(r[6]),
            )
            for r in rows
        )

    async def stuck(self, now: float, older_than: float) -> tuple[StuckMessage, ...]:
        rows = await self._rows(
            "SELECT id, role, state, src_chain, dst_chain, state_since, attempts, last_error "
            "FROM messages WHERE state_since <= %s ORDER BY state_since LIMIT 1000",
            (now - older_than,),
        )
        return tuple(
            StuckMessage(
                id=bytes(r[0]),
                role=Role(r[1]),
                state=State(r[2]),
                src_chain=r[3],
                dst_chain=r[4],
                age=now - float(r[5]),
                attempts=int(r[6]),
                last_error=r[7],
            )
            for r in rows
            if (Role(r[1]), State(r[2])) not in TERMINAL
        )

    async def due(
        self,
        role: Role,
        states: frozenset[State],
        now: float,
        *,
        chain: str | None = None,
        limit: int = 100,
    ) -> tuple[MessageRecord, ...]:
        where = "role=%s AND state = ANY(%s) AND next_try_at <= %s"
        args: list[Any] = [str(role), _states(states), now]
        if chain is not None:
            where += " AND dst_chain=%s" if role is Role.DESTINATION else " AND src_chain=%s"
            args.append(chain)
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY next_try_at, row LIMIT %s",
            [*args, max(1, limit)],
        )
        return tuple(_record(r) for r in rows)

    async def count(self, role: Role, states: frozenset[State]) -> int:
        rows = await self._rows(
            "SELECT COUNT(*) FROM messages WHERE role=%s AND state = ANY(%s)",
            (str(role), _states(states)),
        )
        return int(rows[0][0])

    async def count_by_route(self) -> dict[tuple[str, str, Role, State], int]:
        """Rows by (src_chain, dst_chain, role, state): the metrics' ``gateway_messages``."""
        rows = await self._rows(
            "SELECT src_chain, dst_chain, role, state, COUNT(*) FROM messages "
            "GROUP BY src_chain, dst_chain, role, state"
        )
        return {(s, d, Role(r), State(st)): int(n) for s, d, r, st, n in rows}

    async def get_cursor(self, chain: str) -> str | None:
        rows = await self._rows("SELECT cursor FROM cursors WHERE chain=%s", (chain,))
        return str(rows[0][0]) if rows else None


# ---------------------------------------------------------------------------------------------
# Inside a write transaction


def _settled(task: asyncio.Task[Any]) -> None:
    """A write whose caller was cancelled: its outcome is nobody's to report (no "exception
    never retrieved" warning); it committed or rolled back whole."""
    if not task.cancelled():
        task.exception()


async def _check_fence(conn: AsyncConnection[Any], name: str, holder: str, token: int) -> None:
    cur = await conn.execute(
        "SELECT holder, token, expires_at > clock_timestamp() FROM leases WHERE name=%s FOR SHARE",
        (name,),
    )
    row = await cur.fetchone()
    if row is not None and (str(row[0]), int(row[1]), bool(row[2])) == (holder, token, True):
        return
    now = "nobody" if row is None else f"{row[0]} with token {row[1]}"
    state = "" if row is None or row[2] else " (expired)"
    raise FencedError(
        f"lease {name!r} is not held by {holder!r} with token {token} (held by {now}{state}): "
        "the write was refused"
    )


async def _audit_head(conn: AsyncConnection[Any]) -> ChainHead | None:
    """Read in the transaction, under WRITE_LOCK: never cached."""
    cur = await conn.execute("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
    row = await cur.fetchone()
    return ChainHead(int(row[0]), str(row[1])) if row is not None else None


async def _checkpoint_if_due(
    conn: AsyncConnection[Any], log: AuditLog, head: ChainHead | None, now: float
) -> Checkpoint | None:
    """``AuditLog.checkpoint_due`` (the rule SQLite uses too), stored in this transaction."""
    cur = await conn.execute("SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
    last = await cur.fetchone()
    first_time: str | None = None
    if last is None and head is not None:
        cur = await conn.execute("SELECT doc ->> 'time' FROM audit_records ORDER BY seq LIMIT 1")
        first = await cur.fetchone()
        first_time = str(first[0]) if first is not None else None
    last_pair = (int(last[0]), float(last[1])) if last is not None else None
    if head is None or not log.is_due(head, last_pair, first_time, now):
        return None
    await _check_chain(conn, log, head)
    cp = log.sign_head(head, now)
    line = canonical_json(cp.to_json()).decode()
    await conn.execute(
        "INSERT INTO audit_checkpoints (seq, at, checkpoint) VALUES (%s,%s,%s)",
        (cp.seq, now, line),
    )
    log.guard.signed(cp, line)
    return cp


async def _check_chain(conn: AsyncConnection[Any], log: AuditLog, head: ChainHead) -> None:
    """``AuditLog.check_chain`` for PostgreSQL: from the last checkpoint this replica signed
    (its own data folder's file), else the newest one this key signed in the database."""
    guard = log.guard
    pending = guard.pending()
    if pending is not None:
        cur = await conn.execute(
            "SELECT checkpoint FROM audit_checkpoints WHERE seq = %s", (pending.seq,)
        )
        row = await cur.fetchone()
        guard.settle(str(row[0]) if row is not None else None)
    anchor = guard.known()
    if anchor is None:
        cur = await conn.execute(
            "SELECT checkpoint FROM audit_checkpoints WHERE seq <= %s ORDER BY seq DESC LIMIT %s",
            (head.seq, FALLBACK_CHECKPOINTS),
        )
        anchor = guard.from_checkpoints(str(r[0]) for r in await cur.fetchall())
    cur = await conn.execute(
        "SELECT seq, hash, record FROM audit_records WHERE seq BETWEEN %s AND %s ORDER BY seq",
        (anchor.seq if anchor is not None else 1, head.seq),
    )
    rows = await cur.fetchall()
    guard.check(anchor, ((int(r[0]), str(r[1]), str(r[2])) for r in rows), head)
