"""Logging: structlog configured once, JSON lines for journald and a console view for people.

Event names are stable snake_case facts (``lwa_token_refreshed``, ``request_retried``); ids
are keys, never part of the event text. A redaction step runs last before rendering, so no
access token, refresh token or secret reaches the output even when a caller passes one by
mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog

LogFormat = Literal["auto", "json", "console"]

REDACTED = "[REDACTED]"
# Keys whose values are secret whatever they contain.
_SECRET_KEY = re.compile(
    r"(token|secret|password|authorization|credential|x-amz-access-token)", re.IGNORECASE
)
# Keys that contain the word token but hold no secret.
_PUBLIC_KEYS = frozenset({"token_expires_in", "token_lifetime", "tokens", "token_age_seconds"})
# LWA access tokens start with "Atza|", refresh tokens with "Atzr|".
_LWA_TOKEN = re.compile(r"Atz[ar]\|[^\s\"'&,;]+")
_FORM_SECRET = re.compile(r"((?:refresh_token|client_secret|access_token)=)[^&\s\"']+")


def redact_value(value: str) -> str:
    """Replace anything in ``value`` that looks like an LWA token or a form-encoded secret."""
    value = _LWA_TOKEN.sub(REDACTED, value)
    return _FORM_SECRET.sub(r"\1" + REDACTED, value)


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor that removes secrets from every key and string value."""
    for key, value in list(event_dict.items()):
        if key not in _PUBLIC_KEYS and _SECRET_KEY.search(key) and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_value(value)
    return event_dict


def configure_logging(
    log_format: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib loggers of the libraries syncd uses.

    ``auto`` renders JSON when the output is not a terminal (journald, a pipe) and a
    coloured console view otherwise.
    """
    out: TextIO = stream if stream is not None else cast(TextIO, _CurrentStderr())
    as_json = log_format == "json" or (log_format == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # httpx logs every request at INFO with the full URL; syncd logs its own calls instead.
    for name in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _route_library_logs(out, renderer, max(numeric_level, logging.WARNING))


def _library_event(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Name a library's log record ``library_log`` and keep its text under ``message``."""
    record = event_dict.get("_record")
    event_dict["message"] = event_dict.get("event")
    event_dict["event"] = "library_log"
    if isinstance(record, logging.LogRecord):
        event_dict["library"] = record.name
    return event_dict


def _route_library_logs(out: TextIO, renderer: structlog.typing.Processor, level: int) -> None:
    """Render the warnings of SQLAlchemy, APScheduler and other stdlib loggers like syncd's.

    Without this they reach journald as plain text and tracebacks, which a log system that
    reads JSON lines cannot parse. The handler replaces the one a previous call installed.
    """
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _library_event,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


_HANDLER_NAME = "syncd"


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the moment of writing.

    A logger configured once must keep working when something replaces ``sys.stderr``
    later, as test runners and some process managers do.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger whose entries carry ``logger_name=name``."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(logger_name=name)
    return logger
