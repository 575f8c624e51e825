"""structlog set-up: JSON lines for operators' log pipelines, readable lines on a terminal.

Faust, aiohttp and the Kafka clients log through the standard library; their lines go through
the same renderer, so a log pipeline sees one format from a worker.
"""
from __future__ import annotations

import logging.config
import sys
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderer(fmt: str) -> Any:
    if fmt == "console" or (fmt == "auto" and sys.stdout.isatty()):
        return structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    return structlog.processors.JSONRenderer()


def configure(fmt: str = "auto") -> None:
    structlog.configure(
        processors=[*_SHARED, _renderer(fmt)],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(stdlib_config(fmt))


def stdlib_config(fmt: str) -> dict[str, Any]:
    """Standard-library logging at WARNING, rendered as structlog renders; Faust's worker
    replaces the logging set-up when it starts, so it is given this too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [*_SHARED, structlog.stdlib.add_logger_name,
                                  structlog.processors.format_exc_info],
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt)],
        }},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "structlog",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": "WARNING", "handlers": ["default"]},
    }
