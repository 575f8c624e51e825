"""structlog set-up: JSON lines for operators' log pipelines, the terminal view for people.

Faust, aiohttp and the Kafka clients log through the standard library; their lines go through
the same renderer, so a log pipeline sees one format from a worker, and a person one view.
"""
from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog
from rich.console import Console

from podlink.services.terminal_view import TerminalView

_SHARED: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
# The one view of this process, once configure() chose it: Faust's logging set-up and the
# runner's messages must reach the same one, whose tally the summary line reports.
_view: TerminalView | None = None


def wants_view(fmt: str, is_terminal: bool) -> bool:
    """The terminal view for `console`, or for `auto` on a terminal; JSON lines otherwise."""
    return fmt == "console" or (fmt == "auto" and is_terminal)


def view() -> TerminalView | None:
    """The terminal view, if the log format chosen is that; None for JSON lines."""
    return _view


def say(text: str) -> None:
    """A message for whoever runs podlink, on standard output: wrapped to a terminal's width.

    Written as the log lines are, under the same lock: notify and the EPR exchange start logging
    from their threads while `podlink run` is still printing where to look.
    """
    structlog.PrintLogger(sys.stdout).msg(_view.wrapped(text) if _view is not None else text)


def _renderer() -> Any:
    return _view if _view is not None else structlog.processors.JSONRenderer()


def configure(fmt: str = "auto") -> None:
    global _view
    _view = TerminalView(Console(file=sys.stdout)) if wants_view(fmt, sys.stdout.isatty()) else None
    structlog.configure(
        processors=[*_SHARED, _renderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(stdlib_config())


def set_level(level: str) -> None:
    """Drop podlink's log lines below `level` (`PODLINK_LOG_LEVEL`) before they are rendered."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())))


def stdlib_config() -> dict[str, Any]:
    """Standard-library logging at WARNING, rendered as structlog renders; Faust's worker
    replaces the logging set-up when it starts, so it is given this too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [*_SHARED, structlog.stdlib.add_logger_name,
                                  structlog.processors.format_exc_info],
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer()],
        }},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "structlog",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": "WARNING", "handlers": ["default"]},
    }
