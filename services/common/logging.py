"""structlog configured once: JSON lines to stderr (or a readable console form)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured.

    structlog's ``PrintLoggerFactory(file=sys.stderr)`` keeps the stream object it was given.
    A CLI run under a test runner (or anything that swaps ``sys.stderr`` and closes the
    replacement) would leave every later log call raising ``ValueError: I/O operation on
    closed file``; a failure path that logs would then fail for the wrong reason.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["json", "console"] = "json",
) -> None:
    numeric = getattr(logging, level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
