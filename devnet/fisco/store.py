"""Key-value storage for the chain and the EVM state: a dict in memory or one SQLite file.

Every block is written in one SQLite transaction (``commit``), so a crash never leaves a block
half stored; the EVM trie nodes of that block go into the same transaction. The EVM worker
writes while the event loop reads, so every access holds one lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from eth.db.backends.base import BaseDB


class KeyValueStore(BaseDB):
    """A bytes -> bytes map; also usable as py-evm's backing database."""

    def __init__(self, path: Path | None = None) -> None:
        self._memory: dict[bytes, bytes] = {}
        self._pending: dict[bytes, bytes | None] = {}
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)"
            )
            self._conn.commit()

    @property
    def persistent(self) -> bool:
        return self._conn is not None

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get_value(key)
        if value is None:
            raise KeyError(key)
        return value

    def get_value(self, key: bytes) -> bytes | None:
        with self._lock:
            if self._conn is None:
                return self._memory.get(key)
            if key in self._pending:
                return self._pending[key]
            row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            return None if row is None else bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._lock:
            if self._conn is None:
                self._memory[key] = bytes(value)
            else:
                self._pending[key] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            if self._conn is None:
                self._memory.pop(key, None)
            else:
                self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        return self.get_value(key) is not None

    def commit(self) -> None:
        """Write everything set since the last commit, atomically."""
        with self._lock:
            if self._conn is None or not self._pending:
                return
            with self._conn:
                for key, value in self._pending.items():
                    if value is None:
                        self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))
                    else:
                        self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
            self._pending.clear()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self.commit()
                self._conn.close()
                self._conn = None

    # JSON records under a text key, for the ledger tables.
    def put_json(self, key: str, value: Any) -> None:
        self[b"j:" + key.encode()] = json.dumps(value, separators=(",", ":")).encode()

    def get_json(self, key: str) -> Any:
        raw = self.get_value(b"j:" + key.encode())
        return None if raw is None else json.loads(raw)
