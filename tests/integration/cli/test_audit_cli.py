"""``gateway audit verify`` as an auditor runs it (the console script, real files, offline),
and the by-hand check of ``docs/audit.md`` run with jq, sha256sum, xxd and openssl.

Exports are built by ``build_export`` of ``tests/unit/relay/test_audit.py`` (real SQLite,
bundles proving the records' facts), loaded by path since test modules are not a package.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relay.audit import AuditKey, canonical_json

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GATEWAY = str(Path(sys.executable).parent / "gateway")
DOC = ROOT / "docs" / "audit.md"


def _builder() -> Callable[..., tuple[AuditKey, list[str]]]:
    spec = importlib.util.spec_from_file_location(
        "audit_fixtures", ROOT / "tests" / "unit" / "relay" / "test_audit.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build: Callable[..., tuple[AuditKey, list[str]]] = module.build_export
    return build


@pytest.fixture(name="exported", scope="module")
def _exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AuditKey, list[str]]:
    """A folder with ``export.jsonl`` (21 records, checkpoints every 4) and ``audit.pub``."""
    folder = tmp_path_factory.mktemp("audit-cli")
    key, lines = _builder()(folder)
    (folder / "export.jsonl").write_text("\n".join(lines) + "\n")
    key.save(folder / "audit.key", folder / "audit.pub")
    return folder, key, lines


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, "audit", "verify", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _tampered(
    folder: Path, lines: list[str], name: str, edit: Callable[[list[dict[str, Any]]], None]
) -> Path:
    objs = [json.loads(x) for x in lines]
    edit(objs)
    path = folder / name
    path.write_text("\n".join(canonical_json(o).decode() for o in objs) + "\n")
    return path


def _index(objs: list[dict[str, Any]], kind: str, seq: int) -> int:
    return next(i for i, o in enumerate(objs) if o["type"] == kind and o.get("seq") == seq)


def test_a_good_export_verifies_offline_with_every_key_form(
    exported: tuple[Path, AuditKey, list[str]],
) -> None:
    """Exit 0 and a summary, with --key as the PEM file, hex, or base64; --json agrees."""
    folder, key, _ = exported
    raw = bytes.fromhex(key.public_hex)
    for form in ("audit.pub", key.public_hex, base64.b64encode(raw).decode()):
        done = _run("export.jsonl", "--key", form, cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("VERIFIED gateway 'gw-a': 21 records (seq 1..21, ")
        assert "5 signed checkpoints, 6 evidence bundles re-verified" in done.stdout
    done = _run("export.jsonl", "--key", "audit.pub", "--json", cwd=folder)
    data = json.loads(done.stdout)
    assert (data["valid"], data["records"], data["unsigned_tail"], data["bad_seq"]) == (
        True,
        21,
        1,
        None,
    )


def _edit_reason(objs: list[dict[str, Any]]) -> None:
    objs[_index(objs, "audit-record", 10)]["peer"] = "someone-else"


def _delete_7(objs: list[dict[str, Any]]) -> None:
    del objs[_index(objs, "audit-record", 7)]


def _swap_5_6(objs: list[dict[str, Any]]) -> None:
    a, b = _index(objs, "audit-record", 5), _index(objs, "audit-record", 6)
    objs[a], objs[b] = objs[b], objs[a]


def _truncate(objs: list[dict[str, Any]]) -> None:
    del objs[_index(objs, "audit-record", 21) :]


def _forge_checkpoint(objs: list[dict[str, Any]]) -> None:
    objs[_index(objs, "checkpoint", 8)]["signature"] = "00" * 64


def _swap_bundle(objs: list[dict[str, Any]]) -> None:
    ev = [i for i, o in enumerate(objs) if o["type"] == "evidence"]
    objs[ev[0]]["bundle"] = objs[ev[1]]["bundle"]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (_edit_reason, "INVALID seq 10 [hash]"),
        (_delete_7, "INVALID seq 7 [seq]"),
        (_swap_5_6, "INVALID seq 5 [seq]"),
        (_truncate, "INVALID seq 21 [truncated]"),
        (_forge_checkpoint, "INVALID seq 8 [checkpoint_signature]"),
        (_swap_bundle, "INVALID seq 1 [evidence_digest]"),
    ],
)
def test_a_tampered_export_exits_1_naming_the_first_bad_seq(
    exported: tuple[Path, AuditKey, list[str]],
    edit: Callable[[list[dict[str, Any]]], None],
    named: str,
) -> None:
    """Each tampering is one line naming the seq and the check; exit status 1."""
    folder, _, lines = exported
    path = _tampered(folder, lines, f"{edit.__name__}.jsonl", edit)
    done = _run(str(path), "--key", "audit.pub", cwd=folder)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(named), done.stdout


def test_unusable_input_exits_2(exported: tuple[Path, AuditKey, list[str]]) -> None:
    """An evidence bundle instead of an export, a missing file, a key that is no key."""
    folder, _, _ = exported
    bundle = ROOT / "docs" / "examples" / "evm-receipt-with-log.json"
    for args in (
        [str(bundle), "--key", "audit.pub"],
        ["missing.jsonl", "--key", "audit.pub"],
        ["export.jsonl", "--key", "abcd"],
    ):
        done = _run(*args, cwd=folder)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ")
        assert "Traceback" not in done.stderr


def _by_hand_script() -> str:
    text = DOC.read_text()
    m = re.search(r"<!-- by-hand:start -->\s*```sh\n(.*?)```\s*<!-- by-hand:end -->", text, re.S)
    assert m is not None, "docs/audit.md lost its by-hand block"
    return m.group(1)


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("jq", "sha256sum", "xxd", "openssl", "bash")),
    reason="jq, sha256sum, xxd, openssl and bash are needed for the by-hand check",
)
def test_the_documented_by_hand_check_works_and_catches_an_edit(
    exported: tuple[Path, AuditKey, list[str]],
) -> None:
    """docs/audit.md's shell commands, run as written: every hash, link, the checkpoint and
    export-end signatures and a bundle's digest hold on the good export; an edited record
    fails the hash step."""
    folder, _, lines = exported
    script = _by_hand_script()
    env = {"PATH": f"{Path(GATEWAY).parent}:/usr/bin:/bin", "EXPORT": "export.jsonl"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in (
        "every record hash matches",
        "every link matches",
        "seq contiguous",
        "checkpoint head matches",
        "Signature Verified Successfully",
        "bundle digest matches",
        "VALID ",
    ):
        assert expected in done.stdout, expected
    path = _tampered(folder, lines, "by-hand-edited.jsonl", _edit_reason)
    env["EXPORT"] = path.name
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "every record hash matches" not in done.stdout
