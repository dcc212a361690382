"""The WHERE clauses of the stores' filtered reads, built once for both SQL dialects.

``relay/sqlite_store.py`` and ``relay/pg_store.py`` differ in placeholders, set membership and
how a field of an audit record's JSON is read; what a :class:`relay.store.MessageFilter` or
:class:`relay.store.AuditFilter` selects is the same, so it is written here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.store import AuditFilter, MessageFilter


@dataclass(frozen=True, slots=True)
class Dialect:
    mark: str
    """The placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    record_field: Callable[[str], str]
    """The SQL reading one top-level field of an audit record's JSON, as text."""
    in_states: Callable[[list[str]], tuple[str, list[Any]]]
    """``state`` in the given values: the condition and its arguments."""


def message_conditions(flt: MessageFilter, after: int, d: Dialect) -> tuple[list[str], list[Any]]:
    """Rows of the messages table above ``after`` (its ``row``) matching ``flt``."""
    where: list[str] = [f"row > {d.mark}"]
    args: list[Any] = [after]
    for column, value in (
        ("src_chain", flt.src_chain),
        ("dst_chain", flt.dst_chain),
        ("role", str(flt.role) if flt.role else None),
    ):
        if value is not None:
            where.append(f"{column} = {d.mark}")
            args.append(value)
    if flt.states is not None:
        condition, values = d.in_states(sorted(str(s) for s in flt.states))
        where.append(condition)
        args += values
    if flt.since is not None:
        where.append(f"created_at >= {d.mark}")
        args.append(flt.since)
    if flt.until is not None:
        where.append(f"created_at < {d.mark}")
        args.append(flt.until)
    return where, args


def audit_conditions(flt: AuditFilter, after: int, d: Dialect) -> tuple[list[str], list[Any]]:
    """Audit records above seq ``after`` matching ``flt``."""
    where: list[str] = [f"seq > {d.mark}"]
    args: list[Any] = [after]
    for name, value in (
        ("message_id", flt.message_id),
        ("kind", flt.kind),
        ("state", flt.state),
        ("role", flt.role),
    ):
        if value is not None:
            where.append(f"{d.record_field(name)} = {d.mark}")
            args.append(value)
    if flt.chain is not None:
        src, dst = d.record_field("src_chain"), d.record_field("dst_chain")
        where.append(f"({src} = {d.mark} OR {dst} = {d.mark})")
        args += [flt.chain, flt.chain]
    if flt.since is not None:
        where.append(f"{d.record_field('time')} >= {d.mark}")
        args.append(flt.since)
    if flt.until is not None:
        where.append(f"{d.record_field('time')} < {d.mark}")
        args.append(flt.until)
    return where, args


SQLITE = Dialect(
    mark="?",
    record_field=lambda name: f"json_extract(record, '$.{name}')",
    in_states=lambda values: (f"state IN ({','.join('?' * len(values))})", values),
)
POSTGRES = Dialect(
    mark="%s",
    record_field=lambda name: f"doc ->> '{name}'",
    in_states=lambda values: ("state = ANY(%s)", [values]),
)
