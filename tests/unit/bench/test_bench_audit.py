"""``python -m bench.audit --quick`` runs end to end, its export verifies with every bundle
re-verified and bound to its record, and it prints positive figures (never timed: the
benchmark's numbers depend on the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_NUMBER = r"([\d,]+(?:\.\d+)?)"


def _figure(out: str, pattern: str) -> float:
    match = re.search(pattern, out)
    assert match is not None, f"{pattern!r} not in the output:\n{out}"
    return float(match.group(1).replace(",", ""))


def test_quick_run_prints_positive_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.audit", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    assert out.startswith("audit benchmark: ")
    rates = {
        "audit on": rf"1,000 records: +1,200 in [\d.]+ s = {_NUMBER}/s",
        "checkpoints": rf"checkpoints signed: {_NUMBER}",
        "audit off": rf"audit off, the same transitions: +1,200 in [\d.]+ s = {_NUMBER}/s",
        "ratio": rf"same run: {_NUMBER}x",
        "audit_export": rf"\(`gateway audit export`\): {_NUMBER} records/s",
        "verify_export": rf"verify_export, in process: +records 1,200 in [\d.]+ s = {_NUMBER}/s",
        "gateway audit verify": rf"\(subprocess\): records 1,200 in [\d.]+ s = {_NUMBER}/s",
    }
    for name, pattern in rates.items():
        assert _figure(out, pattern) > 0, name
    assert "it printed: VERIFIED gateway 'bench-gw': 1200 records" in out
    # 1,200 records are 200 messages, each with its own MessageSent and MessageDelivered bundle:
    # all 400 re-verified under their trust (none digest-only) and bound to their records.
    assert "bundles: 400 for the export's 200 messages" in out
    assert "s); 400 distinct bundles re-verified by verifier/" in out
    assert "(two per message), 0 digest-only" in out
    assert "400 evidence bundles re-verified, 0 digest-checked only" in out
    assert _figure(out, rf"verify_export, in process: .*; bundles {_NUMBER}/s") > 0
    assert _figure(out, rf"verify_bundle alone, .*: {_NUMBER} µs per bundle") > 0
    assert "export of 1,200 records" in out
