"""Gunicorn's own error answers in our error format, instead of its HTML page.

Some requests never reach Django: gunicorn refuses them while reading the request line and headers
(a request line over ``limit_request_line``, 4094 bytes: ``414``; a header over
``limit_request_field_size`` or too many headers: ``431``; a malformed request line or header:
``400``). Gunicorn answers those with a small HTML page, which an SDK or ``curl | jq`` cannot read.
``install()`` (called by config/gunicorn.py, so in every gunicorn process) replaces the one function
gunicorn writes that page with, ``gunicorn.util.write_error``, by one that writes the same status
with the body every other error of the API has::

    HTTP/1.1 414 URI Too Long
    Content-Type: application/json

    {"error": "The request line is longer than this server accepts: shorten the query.",
     "code": "uri_too_long"}

Gunicorn keeps deciding the status and logging the refusal; only the body changes.
"""

from __future__ import annotations

import json

# status -> (code, sentence). Gunicorn's own detail is added after the sentence where it helps.
_ERRORS = {
    400: ("bad_request", "The HTTP request is malformed."),
    403: ("forbidden", "The request is forbidden."),
    414: ("uri_too_long", "The request line is longer than this server accepts: shorten the query."),
    417: ("expectation_failed", "The Expect header is not supported."),
    431: ("headers_too_large", "A request header is too large, or there are too many headers."),
    501: ("not_implemented", "The request uses a transfer coding this server does not support."),
}
_SERVER_ERROR = ("server_error", "The server could not handle the request.")


def error_body(status: int, mesg: str) -> dict:
    code, sentence = _ERRORS.get(status, _SERVER_ERROR)
    detail = " ".join(mesg.split())[:200] if status in (400, 403) and mesg else ""
    return {"error": f"{sentence} {detail}".strip() if detail else sentence, "code": code}


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error(sock, status_int, reason, mesg)``."""
    from gunicorn.util import write_nonblock

    body = json.dumps(error_body(status_int, mesg)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode("latin-1")
    write_nonblock(sock, head + body)


def install() -> None:
    from gunicorn import util

    util.write_error = write_error
