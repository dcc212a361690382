"""The JSON-RPC request envelope (``parseRpcRequestJson``), safe to run off the event loop.

``json.loads`` recurses on the C stack once per nesting level, and py-evm raises the recursion
limit, so the depth is counted first (as ``verifier.encoding.load_json`` does). The count is
done here step by step in Python rather than in one regex call, so that a 16 MiB body of
brackets costs time in a worker thread instead of holding the GIL (and so the event loop) for
seconds. For the same reason a request may hold at most ``MAX_JSON_VALUES`` arrays, objects and
list items: ``json.loads`` holds the GIL while it builds them (about 0.6 s for 3 million), and
no method takes more than a handful. The real node has neither limit; a body with fewer
brackets and commas than the depth limit needs no count at all.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from devnet.fisco.errors import (
    INVALID_REQUEST,
    MSG_INVALID_REQUEST,
    PARSE_ERROR,
    ExecutionCancelled,
    RpcError,
)
from devnet.fisco.params import as_int64, as_string

MAX_JSON_DEPTH = 64
MAX_JSON_VALUES = 100_000
# A whole string literal (one step however long), one bracket or one comma.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"?|[\[\]{},]', re.DOTALL)
_STOP_CHECK_EVERY = 4096


def parse_request(body: bytes, stop: threading.Event | None = None) -> dict[str, Any]:
    """Fields read in the node's order; a jsoncpp LogicError while reading is -32700, any
    other defect -32600, each with one fixed message."""
    root = _load(body, stop)
    try:
        return _request_fields(root)
    except RpcError as exc:
        if exc.code == INVALID_REQUEST and exc.message == MSG_INVALID_REQUEST:
            raise
        raise RpcError(PARSE_ERROR, "Invalid JSON was received by the server.") from exc


def _load(body: bytes, stop: threading.Event | None) -> Any:
    invalid = RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid from exc
    structure = body.count(b"[") + body.count(b"{") + body.count(b",")  # strings included
    if structure > MAX_JSON_DEPTH and _too_big(body, stop):
        raise invalid
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or a 4300-digit integer
        raise invalid from exc


def _too_big(body: bytes, stop: threading.Event | None) -> bool:
    """Nested deeper than MAX_JSON_DEPTH, or more than MAX_JSON_VALUES containers and items."""
    depth = values = 0
    for index, match in enumerate(_TOKEN.finditer(body)):
        if index % _STOP_CHECK_EVERY == 0 and stop is not None and stop.is_set():
            raise ExecutionCancelled("the node is stopping")
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            values += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b",":
            values += 1
        if values > MAX_JSON_VALUES:
            return True
    return False


def _request_fields(root: Any) -> dict[str, Any]:
    invalid = RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST)
    if root is not None and not isinstance(root, dict):
        # ``isMember`` on an array or scalar is a jsoncpp LogicError
        raise RpcError(INVALID_REQUEST, "in Json::Value::find: requires objectValue")
    if root is None or "jsonrpc" not in root:
        raise invalid
    jsonrpc = as_string(root["jsonrpc"])
    if "method" not in root:
        raise invalid
    method = as_string(root["method"])
    request_id = as_int64([root["id"]], 0) if "id" in root else 0
    if "params" not in root or not isinstance(root["params"], list):
        raise invalid
    return {"jsonrpc": jsonrpc, "method": method, "id": request_id, "params": root["params"]}
