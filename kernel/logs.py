"""Structured logs: key=value on a terminal, one JSON object per line with --log-format json."""

from __future__ import annotations

import logging
import re
import sys

import structlog


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written: a test runner that swaps and closes it
    (typer's CliRunner) must not leave the loggers writing to a closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_configured = ("INFO", "console")


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    global _configured
    _configured = (level, fmt)
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging; keep their chatter at WARNING unless asked.
    logging.basicConfig(level=max(logging.WARNING, logging.getLevelName(level.upper())), stream=_CurrentStderr(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# scheme://user:password@host, and libpq's key=value form
_URL_PASSWORD = re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<keep>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """The text with any password in a URL or a connection string replaced by ***: for log lines
    that name an endpoint or repeat a library's error."""
    return _KEYWORD_PASSWORD.sub(r"\g<keep>***", _URL_PASSWORD.sub(r"\g<keep>:***@", text))


def logging_configuration() -> tuple[str, str]:
    """The level and format last configured: what a child process configures to log as its parent does."""
    return _configured


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
