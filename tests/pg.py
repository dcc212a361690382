"""PostgreSQL for the tests: one database per test session on the local server, a clean schema
per test.

The server is ``postgresql://postgres@127.0.0.1:5432/postgres`` (trust auth; CI runs one). The
session's database is ``gateway_test_<pid>``, created on first use and dropped at exit. A test
that asks for :func:`pg_url` gets that database with its ``public`` schema dropped, recreated
and migrated (``relay/pg_schema``); when the server is unreachable the test is skipped saying so.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import threading
from typing import Final

import psycopg
import pytest
from psycopg import sql

from relay.pg_store import migrate

ADMIN_URL: Final = os.environ.get(
    "GATEWAY_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_NAME: Final = f"gateway_test_{os.getpid()}"


def _url(dbname: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


@functools.cache
def _session_db() -> str | Exception:
    """Create the session's database once; the reason as an exception when we cannot."""
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    except psycopg.Error as exc:
        return exc
    atexit.register(_drop_session_db)
    return _url(DB_NAME)


def _drop_session_db() -> None:
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
            )
    except psycopg.Error:
        pass  # the server went away: nothing left to drop that we can reach


def session_url() -> str:
    """The session database's URL (empty schema state unknown), or skip the test."""
    made = _session_db()
    if isinstance(made, Exception):
        pytest.skip(
            f"PostgreSQL at {ADMIN_URL} is unreachable ({str(made).strip()}): the PostgreSQL "
            "store's tests need a local server with trust auth (CI has one)"
        )
    return made


def reset_schema(url: str) -> None:
    """Drop everything: an empty ``public`` schema, never migrated."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def fresh_url(*, migrated: bool = True) -> str:
    """The session database, reset (and migrated to the newest schema unless told not to)."""
    url = session_url()
    reset_schema(url)
    if migrated:
        migrate_now(url)
    return url


def migrate_now(url: str) -> None:
    """``relay.pg_store.migrate`` to completion, also from inside a running event loop (its
    own loop on a thread of its own)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(migrate(url))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
