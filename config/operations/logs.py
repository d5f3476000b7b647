"""Structured logs: JSON lines in production, readable ``key=value`` lines in development.

Every log line, whether from our code, Django, Celery or httpx, goes through the standard library's
``logging`` and is rendered by structlog's ``ProcessorFormatter`` (so our code keeps using
``logging.getLogger(__name__)``). Context comes from ``contextvars``:

* a web request binds ``request_id`` (``config.operations.middleware.RequestIdMiddleware``);
* a Celery task binds ``task_id``, ``task`` and, for the workspace tasks, ``workspace_id``, plus the
  ``request_id`` of the request that sent it (a message header; ``config.celery``);
* ``extra={...}`` fields of a call are added as keys (the fly driver's ``fly_request_id``).

A JSON line reads ``{"event": "...", "level": "info", "logger": "...", "timestamp": "...Z",
"request_id": "...", ...}``. Before rendering, every value is scrubbed of secrets: Bearer
credentials, the secret part of API tokens (``wsk_<key>_<secret>``) and agent tokens
(``wsa_<id>_<mac>``), preview tokens, a URL's credential (``config.security.redaction``), and the values of the secret settings
(``SECRET_KEY``, ``API_TOKEN_PEPPER``, ``FLY_API_TOKEN``, ``METRICS_TOKEN``). The code does not log
secrets in the first place (tests/test_logs.py checks that at DEBUG level); the scrubber is the
second line of defence for what a library might print.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars, get_contextvars

from config.security.redaction import redact_credentials

__all__ = ["bind_contextvars", "clear_contextvars", "current_request_id", "each_logged", "logging_config"]

REDACTED = "[redacted]"
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(wsk_[A-Za-z0-9]+_)[A-Za-z0-9]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(wsa_[0-9a-f]+_)[0-9a-f]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(ptk_)[A-Za-z0-9_\-]+"), rf"\1{REDACTED}"),
]
SECRET_SETTINGS = ("SECRET_KEY", "API_TOKEN_PEPPER", "FLY_API_TOKEN", "METRICS_TOKEN")
_MIN_SECRET_LENGTH = 8  # shorter values would match ordinary words


def current_request_id() -> str | None:
    return get_contextvars().get("request_id")


def each_logged(items, workspace_id_of=lambda workspace: str(workspace.id)):
    """The items one by one, each with its ``workspace_id`` on every log line written while the
    loop's body handles it: for periodic tasks that act on many workspaces (the reconciler, idle
    stop), whose lines then say which workspace they are about, as a workspace task's do."""
    for item in items:
        with bound_contextvars(workspace_id=workspace_id_of(item)):
            yield item


def _secret_values() -> list[str]:
    try:
        from django.conf import settings

        values = [getattr(settings, name, "") or "" for name in SECRET_SETTINGS]
    except Exception:  # settings not configured yet (a line logged while Django starts)
        return []
    return [v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH]


def scrub(text: str) -> str:
    # URLs' credentials (scheme://user:password@, scheme://token@), masked as everywhere else.
    text = redact_credentials(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact_secrets(logger: Any, method_name: str, event_dict: dict) -> dict:
    """A structlog processor: scrub every string value (after exceptions were formatted)."""
    return {key: _scrub_value(value) for key, value in event_dict.items()}


def _shared_processors() -> list:
    """Run on every record: ours and foreign (Django's, Celery's, libraries')."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: ``json`` or ``console``."""
    if fmt == "json":
        tail = [structlog.processors.format_exc_info, redact_secrets, structlog.processors.JSONRenderer()]
    else:
        tail = [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def logging_config(*, fmt: str, level: str) -> dict:
    """The ``LOGGING`` setting: one handler on the root logger, on standard output (twelve-factor:
    the platform collects it)."""
    if fmt not in ("json", "console"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'console'; got {fmt!r}.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": formatter, "fmt": fmt}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            # Django's request warnings ("Not Found: /x") duplicate our one line per request.
            "django.request": {"level": "ERROR"},
            # runserver's own access line ("GET /x HTTP/1.1" 200) duplicates it too (make run).
            "django.server": {"level": "CRITICAL", "propagate": True},
            # One line per HTTP call to Fly comes from the fly driver, with Fly's request id.
            "httpx": {"level": "WARNING"},
        },
    }
