"""structlog set up once for a running gateway: JSON lines for machines, console on a terminal.

Standard-library loggers (grpc, aiohttp) go through the same processors, so one stream has one
format. Logs go to stdout; nothing here ever formats a key or a token (callers never pass them).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(json: bool | None = None, *, level: int = logging.INFO) -> None:
    """``json`` None: JSON unless stdout is a terminal."""
    as_json = not sys.stdout.isatty() if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info
            if as_json
            else structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("grpc", "aiohttp", "asyncio", "web3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
