"""Structured logging: configured once; JSON off a terminal, pretty on one; secrets redacted.

Post text and tokens must never reach the logs. Two processors enforce it: one drops keys that
carry content (``text``, ``body``, ``token`` ...), the other replaces any configured secret value
wherever it appears in a rendered line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

CONTENT_KEYS = frozenset(
    {
        "text",
        "body",
        "message_text",
        "content",
        "post_text",
        "raw",
        "payload",
        "token",
        "access_token",
        "refresh_token",
        "password",
        "secret",
        "app_secret",
        "authorization",
        "cookie",
        "session_string",
    }
)
REDACTED = "[redacted]"


class Redactor:
    """Removes content keys and masks configured secret values in every event."""

    def __init__(self, secrets: Iterable[str] = (), *, allow_text: bool = False) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self.allow_text = allow_text

    def _mask(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            lowered = key.lower()
            if lowered in CONTENT_KEYS and not (self.allow_text and lowered == "text"):
                event_dict[key] = REDACTED
            elif isinstance(event_dict[key], str):
                event_dict[key] = self._mask(event_dict[key])
        return event_dict

    def mask_line(self, line: str) -> str:
        return self._mask(line)


_current = Redactor()


def configure_logging(
    *,
    level: str = "info",
    json: bool | None = None,
    secrets: Iterable[str] = (),
    allow_text: bool = False,
    stream: Any = None,
) -> Redactor:
    """Configure structlog (and stdlib logging) once for the process."""
    global _current  # noqa: PLW0603 - logging is process-wide by nature
    out = stream or sys.stdout
    as_json = (not out.isatty()) if json is None else json
    redactor = Redactor(secrets, allow_text=allow_text)
    _current = redactor

    def mask_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
        # Exceptions are rendered into text late; mask secrets in the final line too.
        return redactor.mask_line(rendered) if isinstance(rendered, str) else rendered

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor,
        structlog.processors.format_exc_info
        if as_json
        else structlog.processors.StackInfoRenderer(),
        renderer,
        mask_rendered,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=out, force=True)
    return redactor
