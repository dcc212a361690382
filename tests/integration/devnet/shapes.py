"""Field-by-field shape comparison: names, JSON types and string encodings."""

from __future__ import annotations

import json
import re
from typing import Any

_KINDS = (
    ("0x-hex", re.compile(r"0x[0-9a-fA-F]*")),
    ("decimal", re.compile(r"0|[1-9][0-9]*")),
    ("bare-hex", re.compile(r"([0-9a-f]{2})+")),
)


def kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        for name, pattern in _KINDS:
            if pattern.fullmatch(value):
                return f"str:{name}"
        return "str"
    return type(value).__name__


def assert_same_shape(ours: Any, real: Any, path: str = "result") -> None:
    """Raise AssertionError naming the first field whose name, type or encoding differs."""
    if isinstance(real, dict):
        assert isinstance(ours, dict), f"{path}: expected object, got {kind(ours)}"
        assert set(ours) == set(real), f"{path}: keys differ: {sorted(set(ours) ^ set(real))}"
        for key in real:
            assert_same_shape(ours[key], real[key], f"{path}.{key}")
    elif isinstance(real, list):
        assert isinstance(ours, list), f"{path}: expected list, got {kind(ours)}"
        if real and ours:
            for i, item in enumerate(ours):
                assert_same_shape(item, real[0], f"{path}[{i}]")
    elif isinstance(real, str) and real.startswith("{"):
        assert isinstance(ours, str), f"{path}: expected a JSON string"
        assert ours.endswith("\n") == real.endswith("\n"), f"{path}: trailing newline differs"
        assert_same_shape(json.loads(ours), json.loads(real), f"{path}<json>")
    else:
        k_ours, k_real = kind(ours), kind(real)
        same = k_ours == k_real or {k_ours, k_real} == {"str:decimal", "str:bare-hex"}
        if k_real == "str" or (k_real.startswith("str") and real == ""):
            same = isinstance(ours, str)
        assert same, f"{path}: {k_ours} ({ours!r:.40}) vs real {k_real} ({real!r:.40})"
