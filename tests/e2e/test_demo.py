"""`gateway demo` as a user runs it (what `make demo` runs), in a separate process."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.processes import REPO

pytestmark = pytest.mark.integration


def _demo(*args: str, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", *args],
            stdout=stdout,
            stderr=stderr,
            cwd=REPO,
        )


def _processes_under(folder: Path, exclude: int | None = None) -> dict[int, str]:
    """Live processes whose command line names ``folder`` (devnode data, gateway configs),
    but ``exclude`` (the demo itself)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if str(folder) in cmdline and state != "Z" and int(entry.name) != exclude:
            found[int(entry.name)] = cmdline
    return found


def _ports(folder: Path) -> list[int]:
    """Every 127.0.0.1 port named in the demo's configuration files (chains, gateways, APIs,
    metrics)."""
    ports: set[int] = set()
    for config in folder.glob("*/gateway.toml"):
        for line in config.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for part in line.split('"'):
                if part.startswith(("127.0.0.1:", "http://127.0.0.1:")):
                    ports.add(int(part.rsplit(":", 1)[1]))
    return sorted(ports)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(300)
def test_demo_json_reports_every_message_acknowledged(tmp_path: Path) -> None:
    """`gateway demo --messages 3 --json` exits 0; its last line is the totals object with
    every message (3 each way, ping, pong, notarisation) acknowledged and none rejected; it
    leaves nothing running."""
    folder = tmp_path / "demo"
    proc = _demo(
        "--messages",
        "3",
        "--json",
        "--dir",
        str(folder),
        out=tmp_path / "out",
        err=tmp_path / "err",
    )
    code = proc.wait(timeout=280)
    stdout = (tmp_path / "out").read_text()
    assert code == 0, (tmp_path / "err").read_text()[-3000:]
    totals = json.loads(stdout.strip().splitlines()[-1])
    assert totals["sent"] == 9
    assert totals["acknowledged"] == 9
    assert (totals["rejected"], totals["failed"], totals["expired"]) == (0, 0, 0)
    assert totals["seconds"] > 0
    assert _processes_under(folder) == {}
    ports = _ports(folder)
    assert len(ports) == 8  # Anvil, devnode, two gateways with three ports each (metrics)
    assert [p for p in ports if _listening(p)] == []


@pytest.mark.timeout(300)
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    """`gateway demo --keep-running` leaves the chains and gateways up and prints how to reach
    them (grpcurl with the token and CA); Ctrl-C (SIGINT) then stops every process it started
    and frees every port."""
    folder = tmp_path / "demo"
    proc = _demo(
        "--messages",
        "1",
        "--json",
        "--keep-running",
        "--dir",
        str(folder),
        out=tmp_path / "out",
        err=tmp_path / "err",
    )
    try:
        _ctrl_c_after_keep_running(proc, folder, tmp_path)
    finally:
        if proc.poll() is None:  # the test failed midway: stop the demo and its children
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)


def _ctrl_c_after_keep_running(proc: subprocess.Popen[bytes], folder: Path, tmp: Path) -> None:
    deadline = time.monotonic() + 240
    while "Ctrl-C stops it all" not in (tmp / "err").read_text():
        assert proc.poll() is None, (tmp / "err").read_text()[-3000:]
        assert time.monotonic() < deadline, "the demo never reported that it keeps running"
        time.sleep(0.5)
    time.sleep(0.5)  # the rest of the instructions
    err = (tmp / "err").read_text()
    assert "grpcurl -cacert" in err
    assert "-H 'authorization: Bearer " in err
    children = _processes_under(folder, exclude=proc.pid)
    assert len(children) >= 3, children  # the devnode and two gateways (Anvil: by port)
    ports = _ports(folder)
    assert all(_listening(p) for p in ports), ports
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert (
        json.loads((tmp / "out").read_text().strip().splitlines()[-1])["acknowledged"] == 5
    )  # 1 each way, ping, pong, notary
    assert _processes_under(folder) == {}
    assert [p for p in ports if _listening(p)] == []


def _wait_for(proc: subprocess.Popen[bytes], err: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (content := err.read_text()):
        assert proc.poll() is None, content[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in:\n{content[-3000:]}"
        time.sleep(0.2)
    return content


def _chain_ports(err: str) -> list[int]:
    return [int(m) for m in re.findall(r"on http://127\.0\.0\.1:([0-9]+)", err)]


@pytest.mark.timeout(200)
def test_ctrl_c_during_set_up_leaves_nothing_running(tmp_path: Path) -> None:
    """Ctrl-C while the contracts deploy: exit 130, the chains already started are stopped and
    their ports freed."""
    folder = tmp_path / "demo"
    proc = _demo("--dir", str(folder), out=tmp_path / "out", err=tmp_path / "err")
    try:
        # Without --json the progress goes to standard output.
        err = _wait_for(proc, tmp_path / "out", "deploying the gateway contract", 120)
        assert len(_processes_under(folder, exclude=proc.pid)) == 1  # the devnode; Anvil: port
        ports = _chain_ports(err)
        assert len(ports) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _processes_under(folder) == {}
    assert [p for p in ports if _listening(p)] == []


@pytest.mark.timeout(200)
def test_the_deadline_names_what_it_waited_for_and_stops_everything(tmp_path: Path) -> None:
    """--timeout shorter than the gateways' start: exit 1 with one error naming the phase it
    was in, every child stopped and every port freed."""
    folder = tmp_path / "demo"
    proc = _demo(
        "--timeout", "0.5", "--dir", str(folder), out=tmp_path / "out", err=tmp_path / "err"
    )
    code = proc.wait(timeout=180)
    out = (tmp_path / "out").read_text()
    assert code == 1, out[-3000:]
    assert "--timeout 0.5 s passed while waiting for gateway evm to answer" in out
    assert "Traceback" not in out + (tmp_path / "err").read_text()
    assert _processes_under(folder) == {}
    ports = _ports(folder) + _chain_ports(out)
    assert len(ports) >= 6
    assert [p for p in ports if _listening(p)] == []
