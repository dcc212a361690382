"""Adversarial verifier benchmark: the worst input at every bound of ``verifier/limits.py``.

    python -m bench.adversarial_verifier     (or `make bench`, through bench.adversarial)

Each case is built here, written to a file and verified in a fresh subprocess the way
``gateway verify`` does it (read the bytes, ``load_json``, ``verify_bundle``), so that the peak
resident memory (``VmHWM``) is that one verification's, interpreter and imports included.
The time is the best of 3 runs of the verify path in that process (one run when over 1 s).
Budget: every case within the limits accepted or rejected in under 1 s and 200 MB. Figures,
never assertions.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fuzz.bundles import (
    dumps,
    evm_bundle,
    evm_log,
    fisco_bundle,
    fisco_log,
    keccak_hex,
    pad_to,
)
from verifier import limits
from verifier.hashing import CryptoSuite

Row = tuple[str, str]

_CHILD = """
import json, resource, sys, time
from verifier.encoding import load_json
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle

def peak_kb():
    # VmHWM is this process image's own high-water mark; ru_maxrss would include the parent's
    # RSS at fork time, which Linux carries across exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

base = peak_kb()
times, outcome = [], None
for _ in range(3):
    with open(sys.argv[1], "rb") as handle:
        raw = handle.read()
    start = time.perf_counter()
    try:
        verify_bundle(load_json(raw, what="bundle"))
        outcome = "accepted"
    except VerificationError as exc:
        outcome = f"rejected [{exc.check}]"
    times.append(time.perf_counter() - start)
    del raw
    if times[-1] > 1:  # over budget already: one run says enough
        break
print(json.dumps({"best": min(times), "worst": max(times), "peak_kb": peak_kb(), "base_kb": base,
                  "outcome": outcome}))
"""

MIB = 1024 * 1024
KECCAK = CryptoSuite.KECCAK256_SECP256K1
SM = CryptoSuite.SM3_SM2


def _fill(unit: bytes, size: int = limits.MAX_BUNDLE_BYTES) -> bytes:
    """``[unit,unit,...,0]`` of exactly ``size`` bytes (``unit`` ends with a comma)."""
    count = (size - 3) // len(unit)
    raw = b"[" + unit * count + b"0]"
    return raw + b" " * (size - len(raw))


def _padded_values(bundle: dict[str, Any], element: Any, per_element: int) -> bytes:
    """``bundle`` plus an ignored list of ``element`` bringing it to MAX_JSON_VALUES values."""
    text = dumps(dict(bundle, padding=[])).decode()
    counted = text.count(",") + text.count(":") + text.count("[") + text.count("{") + 1
    return dumps(
        dict(bundle, padding=[element] * ((limits.MAX_JSON_VALUES - counted) // per_element))
    )


def _evm_logs_at_bound() -> bytes:
    logs = [evm_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)]
    return dumps(evm_bundle(logs, log_index=limits.MAX_LOGS_PER_RECEIPT - 1))


def _fisco_logs_at_bound() -> bytes:
    logs = [fisco_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)]
    return dumps(fisco_bundle(KECCAK, logs))


def _evm_logs_over() -> bytes:
    bundle = evm_bundle([evm_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)], log_index=0)
    bundle["receipt"]["logs"].append(evm_log(0))
    return dumps(bundle)


def _fisco_logs_over() -> bytes:
    bundle = fisco_bundle(KECCAK, [fisco_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)])
    bundle["receipt"]["logEntries"].append(fisco_log(0))
    return dumps(bundle)


def _minimal_logs_filling_the_bundle() -> bytes:
    """The 440k-log finding's shape cut to the size bound: as many bare logs as fit."""
    bundle = evm_bundle([evm_log(0, topics=0, data=0, rpc_fields=False)])
    log = json.dumps(bundle["receipt"]["logs"][0], separators=(",", ":"))
    room = limits.MAX_BUNDLE_BYTES - len(dumps(bundle)) - 1
    bundle["receipt"]["logs"] *= room // (len(log) + 1)
    return dumps(bundle)


def _signatures_over() -> bytes:
    bundle = fisco_bundle(SM, sealers=limits.MAX_SEALERS)
    bundle["block"]["signatureList"].append(bundle["block"]["signatureList"][0])
    return dumps(bundle)


def _largest_log_data() -> bytes:
    """As many 1 MiB logs as fit (their hex appears twice: receipt and proof leaf)."""
    count = (limits.MAX_BUNDLE_BYTES - 64 * 1024) // (4 * limits.MAX_LOG_DATA_BYTES + 8)
    logs = [evm_log(i, data=limits.MAX_LOG_DATA_BYTES) for i in range(count)]
    return pad_to(evm_bundle(logs, log_index=count - 1), limits.MAX_BUNDLE_BYTES)


def _fisco_largest_log_data() -> bytes:
    count = (limits.MAX_BUNDLE_BYTES - 64 * 1024) // (2 * limits.MAX_LOG_DATA_BYTES + 8)
    logs = [fisco_log(i, data=limits.MAX_LOG_DATA_BYTES) for i in range(count)]
    return pad_to(fisco_bundle(KECCAK, logs), limits.MAX_BUNDLE_BYTES)


def _emoji_over() -> bytes:
    emoji = "\U0001f600".encode()
    return b'["' + b"x" * (limits.MAX_BUNDLE_BYTES - 4 - len(emoji)) + emoji + b'"]'


def _emoji_text_at_bound() -> bytes:
    """A valid bundle of 8 Mi characters with one emoji: 4 bytes a character once decoded."""
    bundle = evm_bundle([evm_log(0)], log_index=0)
    bundle["chain_id"] = "limits \U0001f600"
    size = sys.getsizeof(dumps(dict(bundle, padding="")).decode())
    return dumps(dict(bundle, padding="x" * ((limits.MAX_DECODED_TEXT_BYTES - size) // 4)))


def _aliased_event_tails() -> bytes:
    """The worst aliasing verifier/events.py still lets reach the decoder: top-level offsets
    must be canonical, so the aliases sit inside one tuple of three ``uint256[]`` (4 dynamic
    values, the bound) whose member offsets all point at one tail filling the 1 MiB log; it is
    decoded three times over before the canonical re-encoding refuses it. (With 1,024 aliases,
    before these bounds, 34 KB of data took 3.6 s; with 8 top-level aliases, 1.2 s.)"""
    members, word = 3, 32
    length = (limits.MAX_LOG_DATA_BYTES - (members + 2) * word) // word
    components = [{"name": f"c{i}", "type": "uint256[]"} for i in range(members)]
    event = {
        "type": "event",
        "name": "E",
        "anonymous": False,
        "inputs": [{"name": "t", "type": "tuple", "components": components, "indexed": False}],
    }
    signature = "E((" + ",".join(["uint256[]"] * members) + "))"
    data = word.to_bytes(word, "big")  # the tuple's (canonical) offset
    data += (members * word).to_bytes(word, "big") * members  # members alias one tail
    data += length.to_bytes(word, "big") + b"\x01" * word * length
    log = {
        "address": "0x" + "11" * 20,
        "topics": [keccak_hex(signature)],
        "data": "0x" + data.hex(),
    }
    bundle = evm_bundle([log], log_index=0)
    bundle["trust"]["event"] = event
    return dumps(bundle)


def _mpt_nodes_at_bound() -> bytes:
    bundle = evm_bundle([evm_log(0)])
    bundle["proof"] = ["0x" + "c0" * 532] * limits.MAX_MPT_PROOF_NODES
    return dumps(bundle)


def cases() -> list[tuple[str, Callable[[], bytes]]]:
    """(what, builder of the input bytes), at or just past each bound."""
    size = f"{limits.MAX_BUNDLE_BYTES // MIB} MiB"
    logs = f"{limits.MAX_LOGS_PER_RECEIPT:,}"
    return [
        (f"{size} of `{{}},` (the 918 MB finding at the size bound)", lambda: _fill(b"{},")),
        (f"{size} of `[],`", lambda: _fill(b"[],")),
        (f'{size} of `"",`', lambda: _fill(b'"",')),
        (f"{size} of `[` (depth)", lambda: b"[" * limits.MAX_BUNDLE_BYTES),
        (f"{size} of `]`", lambda: b"]" * limits.MAX_BUNDLE_BYTES),
        (f"{size} + 1 byte", lambda: b" " * (limits.MAX_BUNDLE_BYTES + 1)),
        (f"{size} string with one emoji (64 MiB decoded)", _emoji_over),
        ("valid bundle, 8 Mi characters with one emoji", _emoji_text_at_bound),
        (
            f"valid bundle + {limits.MAX_JSON_VALUES:,} values of `{{}}`",
            lambda: _padded_values(evm_bundle([evm_log(0)]), {}, 2),
        ),
        (
            f"valid bundle + {limits.MAX_JSON_VALUES:,} values of `0` ",
            lambda: _padded_values(evm_bundle([evm_log(0)]), 0, 1),
        ),
        (
            f'valid bundle + {limits.MAX_JSON_VALUES:,} strings `"0x00"`',
            lambda: _padded_values(evm_bundle([evm_log(0)]), "0x00", 1),
        ),
        (f"EVM receipt, {logs} logs x 4 topics, all RPC fields", _evm_logs_at_bound),
        (f"EVM receipt, {logs} + 1 logs", _evm_logs_over),
        (
            f"EVM receipt, bare logs filling {size} (the 440k-log finding)",
            _minimal_logs_filling_the_bundle,
        ),
        (f"EVM receipt, 1 MiB logs filling {size}", _largest_log_data),
        (f"FISCO receipt, {logs} logs x 4 topics", _fisco_logs_at_bound),
        (f"FISCO receipt, {logs} + 1 logs", _fisco_logs_over),
        (f"FISCO receipt, 1 MiB logs filling {size}", _fisco_largest_log_data),
        (
            f"FISCO SM3+SM2, {limits.MAX_SEALERS} sealers all signing",
            lambda: dumps(fisco_bundle(SM, sealers=limits.MAX_SEALERS)),
        ),
        (
            f"FISCO keccak+secp256k1, {limits.MAX_SEALERS} sealers all signing",
            lambda: dumps(fisco_bundle(KECCAK, sealers=limits.MAX_SEALERS)),
        ),
        (f"FISCO SM3+SM2, {limits.MAX_SIGNATURES_PER_HEADER} + 1 signatures", _signatures_over),
        (f"EVM proof, {limits.MAX_MPT_PROOF_NODES} nodes of 532 bytes", _mpt_nodes_at_bound),
        ("EVM event, 3 uint256[] in a tuple aliasing one 1 MiB tail", _aliased_event_tails),
    ]


def measure(raw: bytes, workdir: Path) -> dict[str, Any]:
    """Verify ``raw`` in a fresh interpreter; its timing, peak RSS and outcome."""
    path = workdir / "case.json"
    path.write_bytes(raw)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run() -> list[Row]:
    """One row per case: (what, "outcome, best time, peak RSS")."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="adversarial-") as tmp:
        for what, build in cases():
            raw = build()
            r = measure(raw, Path(tmp))
            best, worst = r["best"] * 1000, r["worst"] * 1000
            figure = (
                f"{r['outcome']}: {best:,.0f} ms (worst of 3: {worst:,.0f}),"
                f" {r['peak_kb'] / 1024:,.0f} MB peak RSS"
                f" ({r['base_kb'] / 1024:,.0f} MB after imports), input {len(raw) / MIB:.1f} MiB"
            )
            rows.append((what, figure))
    return rows


def print_rows(rows: list[Row]) -> None:
    width = max(len(what) for what, _ in rows)
    for what, figure in rows:
        sys.stdout.write(f"{what:<{width}}  {figure}\n")


def main() -> int:
    sys.stdout.write(
        f"adversarial verifier benchmark: Python {platform.python_version()}, "
        f"load_json + verify_bundle per case in a fresh process\n\n"
    )
    print_rows(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
