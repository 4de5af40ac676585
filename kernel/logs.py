"""Structured logs: key=value on a terminal, one JSON object per line with --log-format json.

No secret in any log line (docs/security.md): every path is redacted — structlog's processors end with
`redact_event`, stdlib logging (the libraries') records are redacted when made and formatted by a redacting
formatter — and tracebacks are plain text without local variables. That holds from the import of this
module on, whether `configure_logging` ran or not (a library use, a test): structlog's own default would
print tracebacks with every frame's locals, the database URL and its password among them.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written: a test runner that swaps and closes it
    (typer's CliRunner) must not leave the loggers writing to a closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# scheme://user:password@host, and libpq's key=value form
_URL_PASSWORD = re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(
    r"""(?P<keep>\b(?:password|passwd|pwd|secret|token|api_key|apikey|client_secret)["']?\s*[=:]\s*)"""
    r"""("[^"]*"|'[^']*'|[^\s,;&}]+)""", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"(?P<keep>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_API_KEY = re.compile(r"(?P<keep>\bmes_[0-9a-f]{12}_)[A-Za-z0-9_-]+")  # the key id stays: it names the key, not its secret
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SENSITIVE_KEYS = re.compile(r"password|passwd|secret|token|authorization|api_key|apikey", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """The text with any password in a URL or a connection string, credentials of an Authorization header,
    API-key secrets and JWTs replaced by ***: for every log line."""
    text = _URL_PASSWORD.sub(r"\g<keep>:***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\g<keep>***", text)
    text = _AUTHORIZATION.sub(r"\g<keep>***", text)
    text = _API_KEY.sub(r"\g<keep>***", text)
    return _JWT.sub("***", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_secrets(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    shown = str(value)
    cleaned = redact_secrets(shown)
    return value if cleaned == shown else cleaned


def redact_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: every value redacted; a value under a key that names a secret replaced whole."""
    return {key: "***" if _SENSITIVE_KEYS.search(key) and value else _redacted(value) for key, value in event_dict.items()}


class _RedactingFormatter(logging.Formatter):
    """stdlib logging's lines, traceback included, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))


_PLAIN = logging.Formatter()


def _redacting_record_factory(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a library's malformed format: left for logging to report
            return record
        cleaned = redact_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:  # formatted once here, redacted; every formatter reuses exc_text
            record.exc_text = redact_secrets(_PLAIN.formatException(record.exc_info))
        return record

    make.redacting = True  # type: ignore[attr-defined]
    return make


def _processors(renderer: Any) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # plain traceback text, no locals; then redacted with the rest
        redact_event,
        renderer,
    ]


def _console_renderer() -> Any:
    # plain_traceback: were an exception to reach the renderer unformatted, still no locals (rich's would show them)
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)


_configured = ("INFO", "console")


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    global _configured
    _configured = (level, fmt)
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else _console_renderer()
    structlog.configure(
        processors=_processors(renderer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging; keep their chatter at WARNING unless asked.
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=max(logging.WARNING, logging.getLevelName(level.upper())), handlers=[handler])


def _safe_defaults() -> None:
    """Before (or without) `configure_logging`: structlog's defaults but redacted and without locals, and
    stdlib records, their tracebacks included, redacted when made (logging's last-resort handler prints
    them as they are)."""
    if not structlog.is_configured():
        structlog.configure(processors=_processors(_console_renderer()),
                            logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()))
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacting", False):
        logging.setLogRecordFactory(_redacting_record_factory(factory))


_safe_defaults()


def logging_configuration() -> tuple[str, str]:
    """The level and format last configured: what a child process configures to log as its parent does."""
    return _configured


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
