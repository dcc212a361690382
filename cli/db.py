"""``gateway db``: the PostgreSQL store's schema (``relay/pg_schema``).

``db migrate --config FILE`` applies the migrations the database named by ``[store]`` lacks, each
in its own transaction, and prints what it applied (nothing when up to date: safe to re-run).
``db status --config FILE`` prints the database's version and the versions this gateway knows.
Exit status: 0 done (status: the database is at this gateway's version); 1 the database is
unreachable, refused a migration, or (status) is not at this gateway's version; 2 the file is
unusable or names no PostgreSQL store.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    """Add ``db`` and its sub-commands."""
    db = sub.add_parser(
        "db",
        help="migrate or inspect the PostgreSQL store's schema",
        description="The PostgreSQL store's versioned schema ([store] url or url_env). "
        "`gateway run` refuses a database that is not at its schema version.",
    )
    commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        help="apply the schema migrations the database lacks",
        description="Apply, in order and each in its own transaction, the schema versions the "
        "database named by [store] lacks; print each one applied. Re-running applies nothing. "
        "A database newer than this gateway is refused (exit 1).",
    )
    status = commands.add_parser(
        "status",
        help="print the database's schema version and the ones this gateway knows",
        description="Print the database's schema version and the versions this gateway "
        "knows; exit 0 when they match, 1 when a migration is due or the database is newer.",
    )
    for parser, handler in ((migrate, cmd_migrate), (status, cmd_status)):
        parser.add_argument(
            "--config", type=Path, required=True, metavar="FILE", help="the gateway's gateway.toml"
        )
        parser.set_defaults(handler=handler)
    db.set_defaults(handler=lambda _args: _help(db))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _url(args: argparse.Namespace) -> str | None:
    from relay.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        url = config.store.resolve_url(source=str(args.config))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return None
    if url is None:
        sys.stderr.write(
            f"error: {args.config} has no PostgreSQL store ([store] url or url_env): the "
            "SQLite store in the data folder needs no migration\n"
        )
    return url


def cmd_migrate(args: argparse.Namespace) -> int:
    from relay.pg_store import describe_url, known_version, migrate
    from relay.store import StoreError

    url = _url(args)
    if url is None:
        return EXIT_USAGE
    try:
        applied = asyncio.run(migrate(url))
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    where = describe_url(url)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if applied:
        print(f"{where}: schema version {applied[-1].version}")
    else:
        print(f"{where}: already at schema version {known_version()}, nothing to apply")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from relay.pg_store import describe_url, migrations, status
    from relay.store import StoreError

    url = _url(args)
    if url is None:
        return EXIT_USAGE
    try:
        current, known = asyncio.run(status(url))
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    print(f"database: {describe_url(url)}")
    print(f"schema version: {current}")
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in migrations())
    print(f"known versions: 1..{known} ({names})")
    if current < known:
        due = known - current
        print(f"pending: {due} migration(s): run `gateway db migrate --config {args.config}`")
        return EXIT_INVALID
    if current > known:
        print("the database is newer than this gateway: run the gateway version that migrated it")
        return EXIT_INVALID
    print("up to date")
    return EXIT_OK
