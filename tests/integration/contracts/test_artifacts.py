"""The committed contract artifacts are what the pinned solc builds from the sources."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration


def test_artifacts_match_a_fresh_compile(tmp_path: Path) -> None:
    """Recompiling contracts/*.sol with npm solc reproduces contracts/artifacts.json exactly."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("node and the pinned npm solc are needed: run `make test`, which installs them")
    out = tmp_path / "artifacts.json"
    subprocess.run(
        [node, str(ROOT / "contracts" / "build.mjs"), str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    committed = (ROOT / "contracts" / "artifacts.json").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "run: node contracts/build.mjs"
