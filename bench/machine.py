"""The machine line every benchmark prints first: OS, CPU model and count, Python."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def describe_machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model}), "
        f"Python {platform.python_version()}"
    )
