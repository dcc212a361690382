"""Child processes for the demo and the end-to-end tests: each in its own session (process
group), its output in a log file, stopped with the whole group so nothing is left running.

A child in its own session does not get the terminal's Ctrl-C; the parent stops it (and every
process it started) with :meth:`Child.stop`, which signals the group, not just the leader.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent


class ChildError(RuntimeError):
    """A child did not start or died; the message names it and ends with its log's tail."""


@dataclass
class Child:
    """One started process and the log file holding its output."""

    name: str
    args: tuple[str, ...]
    log_path: Path
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: Path = REPO
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _offset: int = field(default=0, repr=False)
    """The log's size when the process last started: what it printed since is after this."""

    def start(self) -> None:
        """Start (or restart) the process; the log is appended to."""
        if self.running:
            raise ChildError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._offset = self._log.tell()
        self.process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=dict(self.env) if self.env is not None else None,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # The leader may be gone while something it started lingers in its group.
        _signal_group(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the group at once (a crash, as the tests want it)."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, size: int = 3000) -> str:
        return self.output()[-size:]

    def output(self) -> str:
        """What the process printed since it last started."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise :class:`ChildError` with the log's tail when the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ChildError(
                f"{self.name} exited with status {self.process.returncode}; "
                f"its log {self.log_path} ends:\n{self.tail()}"
            )

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the log (from its current end on start) matches ``pattern``."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            match = regex.search(self.output())
            if match is not None:
                return match
            self.check_alive()
            if time.monotonic() > deadline:
                raise ChildError(
                    f"{self.name} did not get ready within {timeout:.0f} s; "
                    f"its log {self.log_path} ends:\n{self.tail()}"
                )
            time.sleep(0.1)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def python_child(
    name: str,
    module_args: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
) -> Child:
    """A child running this interpreter with ``module_args`` (e.g. ``-m gateway run ...``)."""
    return Child(name, (sys.executable, *module_args), log_path, env=env, cwd=cwd)
