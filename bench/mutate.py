"""Mutation testing of ``verifier/`` with mutmut 3, bounded in time: ``make mutate``.

mutmut plants one small change at a time (a flipped comparison, ``n`` -> ``n + 1``, ``and`` ->
``or``, ``<<`` -> ``>>``, a dropped argument...) and runs the unit tests of the verifier that
reach the changed function (``tests/unit/verifier``, a few seconds in all); a mutant no test
notices has *survived* and points at an untested behaviour. The configuration is the
``[tool.mutmut]`` table of ``pyproject.toml``: which modules are mutated, which tests run.

The run never touches the checkout, which others may be editing: it copies what the tests need
(``verifier/``, ``devnet/``, ``tests/`` without its integration tests, ``pyproject.toml``) to a
temporary folder and runs mutmut there, one mutant at a time (``--max-children 1``), in its own
process group. When ``--max-minutes`` runs out, that group is stopped and the mutants checked so
far are reported; the rest count as "not checked".

Usage::

    python -m bench.mutate [--max-minutes 30] [--only 'verifier.merkle.*' ...] [--keep]
        [--json results.json]

It prints a table of counts per module and every surviving mutant with its diff. A survivor
whose changed lines all lie inside a ``raise`` statement is counted apart as an *error detail*:
the same error type is still raised and only its text or attributes (``index``, ``field``,
``expected``...) differ; such mutants point at untested diagnostics, not at a wrong verdict.

Exit code 0 when the run completed, 3 when it was cut short by the time limit (results are
still printed), 2 when the unmutated tests fail or mutmut is missing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_VECTORS = ROOT.parent / "shared" / "vectors"
COPIED_DIRS = ("verifier", "devnet", "tests")
COPIED_FILES = ("pyproject.toml",)
PYTEST_ARGS = ("-q", "-x", "-p", "no:cacheprovider", "tests/unit/verifier")
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".hypothesis", "integration"
)

# mutmut's exit-code classification (mutmut/stats.py, 3.8.1).
_STATUS = {
    0: "survived",
    1: "killed",
    3: "killed",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught by type check",
    -9: "segfault",
    -11: "segfault",
}
COLUMNS = ("killed", "survived", "detail", "timeout", "no tests", "not checked")


@dataclass
class ModuleResult:
    """Counts of one mutated module, and the names of its surviving mutants."""

    path: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def status_of(exit_code: int | None) -> str:
    """mutmut's name for a mutant's recorded exit code (``None``: the run never reached it)."""
    if exit_code is None:
        return "not checked"
    return _STATUS.get(exit_code, "suspicious")


def copy_tree(destination: Path) -> None:
    """Copy what the verifier's unit tests need into ``destination``."""
    for rel in COPIED_DIRS:
        shutil.copytree(ROOT / rel, destination / rel, ignore=IGNORED)
    for rel in COPIED_FILES:
        (destination / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, destination / rel)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # Anything mutmut starts by name comes from this interpreter's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    # The copy lives in /tmp, away from ../shared: point the vector tests at the real folder,
    # or they would skip and every check they make would look untested.
    env.setdefault("GATEWAY_SHARED_VECTORS", str(SHARED_VECTORS))
    return env


def run_baseline(workdir: Path) -> bool:
    """The unmutated copy must pass its tests, or every mutant would look killed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS],
        cwd=workdir,
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return done.returncode == 0


def run_mutmut(workdir: Path, only: list[str], seconds: float, log: Path) -> bool:
    """Run ``mutmut run`` in ``workdir``; False when the time limit stopped it."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *only]
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return False
    if proc.returncode != 0:
        print(f"mutmut exited with {proc.returncode}; see {log}", file=sys.stderr)
    return True


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        return


def collect(workdir: Path) -> list[ModuleResult]:
    """Per-module results from mutmut's ``mutants/**/*.py.meta`` files."""
    mutants = workdir / "mutants"
    results = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        module = ModuleResult(str(meta.relative_to(mutants))[: -len(".meta")])
        for name, code in data.get("exit_code_by_key", {}).items():
            status = status_of(code)
            module.counts[status] += 1
            if status == "survived":
                module.survivors.append(name)
        if module.counts:
            results.append(module)
    return results


def show(workdir: Path, name: str) -> str:
    """The diff of one mutant (``mutmut show``), changed lines only."""
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=workdir,
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    return "\n".join(
        line for line in lines if line[:1] in "-+" and not line.startswith(("---", "+++"))
    )


def raise_lines(source: str) -> set[int]:
    """Line numbers covered by ``raise`` statements."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


# An error built without its message (``MalformedProof(check=...)``) raises TypeError instead:
# not a detail, the error path itself is untested.
_NO_MESSAGE = re.compile(r"\b[A-Z]\w*\((?:check|field|index|offset|expected|computed)=")


def is_error_detail(source: str, diff: str) -> bool:
    """True when every line the mutant removed occurs in the source only inside ``raise``, and
    the mutant still builds the error with a message."""
    if any(line.startswith("+") and _NO_MESSAGE.search(line) for line in diff.splitlines()):
        return False
    text = source.splitlines()
    inside = raise_lines(source)
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    if not removed:
        return False
    for line in removed:
        where = {n for n, src in enumerate(text, start=1) if src == line}
        if not where or not where <= inside:
            return False
    return True


def classify(workdir: Path, results: list[ModuleResult], diffs: dict[str, str]) -> None:
    """Move survivors that only change an error's details from ``survived`` to ``detail``."""
    for r in results:
        source = (workdir / r.path).read_text(encoding="utf-8")
        logic = []
        for name in r.survivors:
            if is_error_detail(source, diffs.get(name, "")):
                r.details.append(name)
            else:
                logic.append(name)
        r.survivors = logic
        r.counts["detail"] = len(r.details)
        r.counts["survived"] = len(logic)


def report(results: list[ModuleResult], diffs: dict[str, str]) -> None:
    """Print the table of counts and every survivor with its diff."""
    width = max([len(r.path) for r in results] + [len("module")])
    print(f"{'module':<{width}}  " + "  ".join(f"{c:>11}" for c in COLUMNS))
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.counts)
        print(f"{r.path:<{width}}  " + "  ".join(f"{r.counts[c]:>11}" for c in COLUMNS))
    print(f"{'total':<{width}}  " + "  ".join(f"{total[c]:>11}" for c in COLUMNS))
    others = set(total) - set(COLUMNS)
    if others:
        print("also: " + ", ".join(f"{k} {total[k]}" for k in sorted(others)))
    for r in results:
        for name in r.survivors:
            print(f"\nSURVIVED {name}\n{diffs.get(name, '')}")
    for r in results:
        for name in r.details:
            print(f"\nDETAIL {name}\n{diffs.get(name, '')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.mutate``."""
    parser = argparse.ArgumentParser(prog="python -m bench.mutate", description=__doc__)
    parser.add_argument("--max-minutes", type=float, default=30.0, help="time limit of the run")
    parser.add_argument(
        "--only", nargs="*", default=[], help="mutant name globs, e.g. 'verifier.merkle.mpt.*'"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        print("mutmut is not installed: pip install -e '.[mutate]'", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gateway-mutate-"))
    started = time.monotonic()
    try:
        copy_tree(workdir)
        if not run_baseline(workdir):
            print("the unmutated tests fail: fix them first", file=sys.stderr)
            return 2
        budget = max(args.max_minutes * 60 - (time.monotonic() - started), 1.0)
        completed = run_mutmut(workdir, args.only, budget, workdir / "mutmut.log")
        results = collect(workdir)
        diffs = {n: show(workdir, n) for r in results for n in r.survivors}
        classify(workdir, results, diffs)
        report(results, diffs)
        minutes = (time.monotonic() - started) / 60
        print(f"\n{'completed' if completed else 'stopped by --max-minutes'} in {minutes:.1f} min")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "completed": completed,
                        "modules": {r.path: dict(r.counts) for r in results},
                        "survivors": {n: diffs[n] for r in results for n in r.survivors},
                        "details": {n: diffs[n] for r in results for n in r.details},
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
        return 0 if completed else 3
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
