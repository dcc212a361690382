"""Shared fixtures: the real-chain vectors in ../shared/vectors, read at test time."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests must not fail because a shared 2-core machine is busy: no per-example deadline
# and no "input generation is slow" health check. Examples stay bounded by each test's settings.
settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("gateway")

# tests/conftest.py -> parents[1] is the checkout, parents[2] the folder that holds shared/.
# GATEWAY_SHARED_VECTORS overrides it for copies of the tests run elsewhere (make mutate).
SHARED_VECTORS = Path(
    os.environ.get("GATEWAY_SHARED_VECTORS")
    or Path(__file__).resolve().parents[2] / "shared" / "vectors"
)

VectorLoader = Callable[[str], Any]


@functools.cache
def _parse(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_shared_vector(rel: str) -> Any:
    """Parse ../shared/vectors/<rel> (cached; deep-copy before changing it), or skip the test."""
    path = SHARED_VECTORS / rel
    if not path.is_file():
        pytest.skip(f"shared vector not available: {path} (the ../shared/vectors folder is absent)")
    return _parse(path)


@pytest.fixture(name="shared_vector")
def _shared_vector() -> VectorLoader:
    """Return a loader for ../shared/vectors/<rel>; skips the calling test if the file is absent."""
    return load_shared_vector
