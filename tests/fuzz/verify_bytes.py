"""Coverage-guided fuzzing (atheris) of the whole path from bytes to verdict.

    python -m tests.fuzz.verify_bytes --seconds 600 [--corpus DIR] [--max-len BYTES]

Each input goes through what ``gateway verify`` does with a file: ``load_json`` and then
``verify_bundle``. The only allowed outcomes are a :class:`VerifiedEvidence` or a
:class:`~verifier.errors.VerificationError`; any other exception is a crash. The same bytes then
go through the CLI itself (``gateway verify - [--json]`` on an in-memory stdin), whose exit code
must agree with that outcome (0 verified, 1 a failed check, 2 not JSON or not a bundle) and whose
``--json`` output must be one JSON object. An input slower than ``--slow`` seconds is saved as a
``slow-*`` artifact, since hostile evidence must not buy time.

The corpus starts from ``docs/examples/*.json`` and bundles built by ``tests.fuzz.bundles``; the
mutator (``tests.fuzz.mutate``) perturbs JSON values and re-seals the bundle so that mutations
reach the deep checks. Not collected by pytest (no ``test_`` prefix); atheris is the ``fuzz``
extra, installed by ``make fuzz``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["verifier", "gateway"]):
    import gateway
    from verifier.encoding import load_json
    from verifier.errors import VerificationError
    from verifier.evidence import BundleFormatError, verify_bundle
    from verifier.types import VerifiedEvidence

from tests.fuzz import mutate as structured
from tests.fuzz.seeds import seed_bundles

DEFAULT_MAX_LEN = 65_536
_state: dict[str, Any] = {"slow": 2.0, "artifacts": Path("."), "slowest": 0.0}


class _Stdin:
    """Stands in for ``sys.stdin``: ``gateway verify -`` reads ``sys.stdin.buffer``."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def expected_exit(data: bytes) -> int:
    """The library's verdict on ``data`` as the CLI's exit code; raises on any other outcome."""
    try:
        document = load_json(data, what="-")
    except VerificationError as exc:
        _check_error(exc)
        return gateway.EXIT_USAGE
    try:
        result = verify_bundle(document)
    except BundleFormatError:
        return gateway.EXIT_USAGE
    except VerificationError as exc:
        _check_error(exc)
        return gateway.EXIT_INVALID
    if not isinstance(result, VerifiedEvidence):
        raise AssertionError(f"verify_bundle returned {type(result).__name__}")
    return gateway.EXIT_OK


def _check_error(exc: VerificationError) -> None:
    """A typed failure names its check and says why."""
    if not isinstance(exc.check, str) or not exc.check or not str(exc):
        raise AssertionError(f"{type(exc).__name__} without a check or a reason: {exc!r}")


def run_cli(data: bytes, *, as_json: bool) -> tuple[int, str]:
    """``gateway verify - [--json]`` on ``data``: exit code and standard output."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = _Stdin(data)  # type: ignore[assignment,unused-ignore]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = gateway.main(["verify", "-", *(["--json"] if as_json else [])])
    finally:
        sys.stdin = saved
    return code, out.getvalue()


def test_one_input(data: bytes) -> None:
    """The fuzz target: library verdict, then the CLI's classification of the same bytes."""
    start = time.perf_counter()
    want = expected_exit(data)
    as_json = bool(data) and data[-1] & 1 == 1
    code, out = run_cli(data, as_json=as_json)
    if code != want:
        raise AssertionError(f"gateway verify exited {code}, the library's verdict is {want}")
    if as_json:
        shown = json.loads(out)
        if not isinstance(shown, dict) or shown.get("valid") is not (want == gateway.EXIT_OK):
            raise AssertionError(f"--json output disagrees with exit {code}: {out[:200]}")
    elapsed = time.perf_counter() - start
    if elapsed > _state["slowest"]:
        _state["slowest"] = elapsed
    if elapsed > _state["slow"]:
        name = f"slow-{elapsed:.2f}s-{hashlib.sha1(data).hexdigest()}"
        (_state["artifacts"] / name).write_bytes(data)
        sys.stderr.write(f"slow input ({elapsed:.2f} s, {len(data)} bytes) saved as {name}\n")


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    return structured.mutate(data, max_size, seed, atheris.Mutate)


def write_seeds(corpus: Path, max_len: int) -> int:
    """Write the seed bundles into ``corpus`` (named by content hash); return how many."""
    corpus.mkdir(parents=True, exist_ok=True)
    count = 0
    for raw in seed_bundles():
        if len(raw) <= max_len:
            (corpus / hashlib.sha1(raw).hexdigest()).write_bytes(raw)
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60, help="total fuzzing time")
    parser.add_argument("--corpus", type=Path, help="corpus folder to keep (default: a temp one)")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="largest input")
    parser.add_argument("--slow", type=float, default=2.0, help="save inputs slower than this")
    parser.add_argument("--runs", type=int, default=-1, help="stop after this many inputs")
    args, libfuzzer_flags = parser.parse_known_args(argv)
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="verify-bytes-corpus-"))
    artifacts = corpus.parent / f"{corpus.name}-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    _state.update(slow=args.slow, artifacts=artifacts)
    seeds = write_seeds(corpus, args.max_len)
    sys.stderr.write(
        f"verify_bytes: {seeds} seeds in {corpus}; crashes and slow inputs go to {artifacts}/\n"
    )
    flags = [
        f"-max_total_time={args.seconds}",
        f"-max_len={args.max_len}",
        f"-runs={args.runs}",
        "-timeout=30",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        *libfuzzer_flags,
        str(corpus),
    ]
    atheris.Setup([sys.argv[0], *flags], test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
