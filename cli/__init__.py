"""The ``gateway`` command's command groups, one module each; ``gateway.py`` assembles them.

Each module exposes ``register(subparsers) -> None``, which adds its commands with a one-line
``help`` (what ``gateway --help`` lists) and sets ``handler`` to a function taking the parsed
arguments and returning the exit status. Modules import heavy dependencies (web3, the devnode,
rich) inside their handlers, so ``gateway --help`` and ``gateway verify`` start fast.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
"""The subject failed: evidence invalid, a chain unreachable, a deployment reverted."""
EXIT_USAGE: Final = 2
"""The input is unusable: bad options, an unreadable or invalid file."""
