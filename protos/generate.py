"""Regenerate the Python code for ``protos/interop/v1/*.proto``, or check that it is current.

``python -m protos.generate`` writes ``*_pb2.py`` and ``*_pb2.pyi`` (grpcio-tools' protoc),
``*_pb2_grpc.py`` (grpcio-tools' gRPC plugin) and ``*_pb2_grpc.pyi`` (mypy-protobuf's
``protoc-gen-mypy_grpc``, so that ``mypy --strict`` can type code that uses the generated stubs)
next to the ``.proto`` files. ``python -m protos.generate --check`` generates into a temporary
folder and exits 1 naming every file that differs, is missing or is left over: ``make test``
runs it, so a ``.proto`` edited without regenerating fails the build.

protoc writes imports as ``from interop.v1 import common_pb2``, relative to the proto root;
they are rewritten to ``from protos.interop.v1 import ...`` so that the generated modules import
from this package wherever the process runs. The output depends only on the ``.proto`` files and
the pinned generator versions (files are processed in sorted order, one protoc run).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent
"""``protos/``: the proto root (imports are ``interop/v1/common.proto``)."""

PACKAGE_DIR = ROOT / "interop" / "v1"
"""Where the ``.proto`` files are."""
COMMITTED_DIR = PACKAGE_DIR
"""Where the generated files are committed (the drift check compares with it)."""
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")

_IMPORT = re.compile(r"^(from|import) interop\.v1(\b)", re.MULTILINE)


class GenerationError(Exception):
    """protoc failed or a generator is missing: the message says which."""


def proto_files() -> list[Path]:
    return sorted(PACKAGE_DIR.glob("*.proto"))


def generated_names(protos: Sequence[Path]) -> list[str]:
    return sorted(p.stem + suffix for p in protos for suffix in GENERATED_SUFFIXES)


def _mypy_grpc_plugin() -> str:
    """The ``protoc-gen-mypy_grpc`` executable installed beside this interpreter."""
    candidate = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    found = str(candidate) if candidate.exists() else shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        raise GenerationError(
            "protoc-gen-mypy_grpc not found: install the test extras (pip install -e '.[test]')"
        )
    return found


def generate(out_root: Path) -> list[Path]:
    """Generate into ``out_root/interop/v1/`` and return the generated files."""
    protos = proto_files()
    if not protos:
        raise GenerationError(f"no .proto files in {PACKAGE_DIR}")
    try:
        well_known = resources.files("grpc_tools") / "_proto"
    except ModuleNotFoundError as exc:
        raise GenerationError(
            "grpcio-tools is not installed: install the test extras (pip install -e '.[test]')"
        ) from exc
    out = str(out_root)
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={_mypy_grpc_plugin()}",
        f"--mypy_grpc_out={out}",
        *(str(p.relative_to(ROOT)) for p in protos),
    ]
    # A child process: protoc's plugins chatter on stderr ("Writing mypy to ..."), which is
    # shown only when protoc fails.
    run = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)
    if run.returncode != 0:
        raise GenerationError(f"protoc failed with status {run.returncode}: {run.stderr.strip()}")
    target = out_root / "interop" / "v1"
    files = [target / name for name in generated_names(protos)]
    for path in files:
        if not path.exists():
            raise GenerationError(f"protoc did not write {path.name}")
        text = path.read_text(encoding="utf-8")
        path.write_text(_IMPORT.sub(r"\1 protos.interop.v1\2", text), encoding="utf-8")
    return files


def drifted(generated_dir: Path, committed_dir: Path) -> list[str]:
    """Names of generated files that differ from, are missing in, or are extra in the tree."""
    problems: list[str] = []
    fresh = {p.name for p in generated_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    present = {p.name for p in committed_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    for name in sorted(fresh | present):
        if name not in present:
            problems.append(f"{name}: missing")
        elif name not in fresh:
            problems.append(f"{name}: left over (no .proto generates it)")
        elif not filecmp.cmp(generated_dir / name, committed_dir / name, shallow=False):
            problems.append(f"{name}: differs from a fresh generation")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protos.generate",
        description="Regenerate the gRPC Python code from protos/interop/v1/*.proto.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temporary folder and fail naming every drifted file",
    )
    options = parser.parse_args(argv)
    try:
        if options.check:
            with tempfile.TemporaryDirectory(prefix="protos-check-") as tmp:
                generate(Path(tmp))
                problems = drifted(Path(tmp) / "interop" / "v1", COMMITTED_DIR)
            if problems:
                print("generated gRPC code is stale; run `python -m protos.generate`:")
                for line in problems:
                    print(f"  protos/interop/v1/{line}")
                return 1
            print("protos: generated code is current")
            return 0
        for path in generate(ROOT):
            print(f"wrote {path.relative_to(ROOT.parent)}")
        return 0
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
