"""Development: ``manage.py``'s default and ``make run``'s (``config/devserver.py``).

The embedded default with DEBUG on. ``DJANGO_SECRET_KEY`` and ``API_TOKEN_PEPPER`` come from the
environment when set; otherwise each is a random value made on the first command in this checkout
and kept in ``var/`` (``secret-key``, ``token-pepper``; mode 0600), so that a newcomer's first
command works with nothing configured, every process of the checkout (web, worker, manage.py) agrees
on them, and nobody else knows them. The pepper is its own value, never the secret key. Deleting
those files invalidates the checkout's sessions and API tokens.

Never use this module for a server others can reach: the WSGI, ASGI and Celery entry points default
to ``config.settings.production``, which refuses to start without real secrets.
"""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# base.py reads the secrets from the environment with no default: supply this checkout's first.
# (VAR_DIR as base.py computes it.)
_VAR_DIR = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent.parent / "var")


def checkout_secret(path: Path) -> str:
    """The random value kept in ``path``, made (readable by its owner only) if it is not there yet.
    Processes starting at once agree: the file appears whole (linked from a private temporary file),
    once, and whoever loses the race reads the winner's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it a moment ago: theirs is used
        finally:
            draft.unlink()
    value = path.read_text().strip()
    if not value:
        raise ImproperlyConfigured(f"{path} is empty: delete it, and a new random value is made.")
    return value


for _name, _file in (("DJANGO_SECRET_KEY", "secret-key"), ("API_TOKEN_PEPPER", "token-pepper")):
    if not os.environ.get(_name, "").strip():
        os.environ[_name] = checkout_secret(_VAR_DIR / _file)

from .base import *  # noqa: E402, F403
from .base import env  # noqa: E402

DEBUG = env.bool("DJANGO_DEBUG", default=True)
