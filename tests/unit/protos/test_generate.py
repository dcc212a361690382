"""protos/generate.py: the committed code is current, output is deterministic, drift is named."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from protos import generate

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate.generate(out)
    return out / "interop" / "v1"


def test_check_passes_on_the_committed_tree() -> None:
    """What `make test` runs, as a process, from the repository root."""
    run = subprocess.run(
        [sys.executable, "-m", "protos.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "current" in run.stdout


def test_generation_is_deterministic(fresh: Path, tmp_path: Path) -> None:
    generate.generate(tmp_path)
    again = tmp_path / "interop" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert names == generate.generated_names(generate.proto_files())
    _, mismatch, errors = filecmp.cmpfiles(fresh, again, names, shallow=False)
    assert mismatch == []
    assert errors == []


def test_generated_imports_are_package_absolute(fresh: Path) -> None:
    for path in fresh.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "from interop.v1 import" not in text, path.name
        assert "import interop.v1" not in text, path.name
    assert "from protos.interop.v1 import relay_pb2" in (fresh / "relay_pb2_grpc.py").read_text()


def test_check_names_every_drifted_file(
    fresh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "committed"
    shutil.copytree(fresh, tree)
    (tree / "relay_pb2.py").write_text("# edited by hand\n", encoding="utf-8")
    (tree / "interop_pb2_grpc.pyi").unlink()
    (tree / "old_pb2.py").write_text("", encoding="utf-8")
    assert generate.drifted(fresh, tree) == [
        "interop_pb2_grpc.pyi: missing",
        "old_pb2.py: left over (no .proto generates it)",
        "relay_pb2.py: differs from a fresh generation",
    ]
    monkeypatch.setattr(generate, "COMMITTED_DIR", tree)
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr().out
    for name in ("relay_pb2.py", "interop_pb2_grpc.pyi", "old_pb2.py"):
        assert f"protos/interop/v1/{name}" in out


def test_generated_modules_import_and_describe_the_services() -> None:
    from protos.interop.v1 import interop_pb2, relay_pb2  # noqa: PLC0415

    relay = relay_pb2.DESCRIPTOR.services_by_name["RelayService"]
    assert [m.name for m in relay.methods] == ["Forward", "Acknowledge"]
    interop = interop_pb2.DESCRIPTOR.services_by_name["InteropService"]
    assert [m.name for m in interop.methods] == [
        "SendMessage",
        "GetMessage",
        "ListMessages",
        "WatchMessages",
        "GetEvidence",
        "VerifyEvidence",
        "ListChains",
        "GetChainStatus",
    ]
    assert interop.methods_by_name["WatchMessages"].server_streaming


def test_every_enum_starts_with_unspecified_zero() -> None:
    from protos.interop.v1 import common_pb2, interop_pb2, relay_pb2  # noqa: PLC0415

    for module in (common_pb2, interop_pb2, relay_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero.endswith("_UNSPECIFIED"), (enum.name, zero)


def test_every_field_and_rpc_is_commented() -> None:
    """Clients in other languages read the .proto: every field, enum value and rpc says what
    it is (a comment line right above it)."""
    for proto in generate.proto_files():
        lines = proto.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            is_member = stripped.endswith(";") and ("=" in stripped or stripped.startswith("rpc "))
            if is_member and not stripped.startswith(("option", "package", "syntax", "import")):
                above = lines[number - 1].strip()
                assert above.startswith("//"), f"{proto.name}:{number + 1}: {stripped}"
