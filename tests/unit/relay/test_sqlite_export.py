"""An audit export reads its own snapshot on a connection of its own: state changes commit
while it runs (an export on the store's single connection held every transition for its whole
duration: review finding 5), and what it returns is the snapshot it started from."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relay.audit import AuditKey, AuditLog, verify_export
from relay.sqlite_store import SqliteStore
from relay.store import Role, State, Transition
from verifier.messages import Message


def _message(nonce: int) -> Message:
    return Message(
        src_chain="chain-a",
        src_gateway=b"\x01" * 20,
        dst_chain="chain-b",
        nonce=nonce,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"p",
        timeout=10_000,
    )


def _insert(n: int) -> Transition:
    return Transition(
        id=n.to_bytes(32, "big"),
        role=Role.SOURCE,
        to=State.OBSERVED,
        expect=None,
        at=100.0 + n,
        message=_message(n),
    )


async def test_transitions_commit_while_an_export_is_being_read(tmp_path: Path) -> None:
    key = AuditKey.generate()
    log = AuditLog("gw", key)
    store = SqliteStore(tmp_path, audit_log=log)
    await store.open()
    try:
        for n in range(1, 6):
            assert await store.transition(_insert(n))
        reading, release = threading.Event(), threading.Event()
        export_lines = log.export_lines

        def held(conn: Any, **kw: Any) -> Iterator[str]:
            lines = export_lines(conn, **kw)
            yield next(lines)  # the snapshot is taken by the first read
            reading.set()
            assert release.wait(30), "the test never released the export"
            yield from lines

        log.export_lines = held  # type: ignore[method-assign]
        export = asyncio.create_task(store.audit_export(1e9))
        assert await asyncio.to_thread(reading.wait, 30)
        # The export is mid-way, holding its read transaction: a state change still commits.
        assert await asyncio.wait_for(store.transition(_insert(6)), 30)
        release.set()
        lines = await export
    finally:
        await store.close()
    records = [json.loads(x) for x in lines if '"type":"audit-record"' in x]
    # The export is the snapshot from before the sixth state change, and it verifies.
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    report = verify_export(lines, key.public_key)
    assert report.ok, (report.bad_seq, report.problem, report.detail)
