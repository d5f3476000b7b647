"""Settings modules: ``development`` (manage.py's default, ``make run``), ``test`` (pytest),
``production`` (the WSGI, ASGI and Celery entry points' default). ``base`` is what they share; it
holds no secret, so it does not run on its own."""

from django.core.exceptions import ImproperlyConfigured


class SettingsRefused(ImproperlyConfigured):
    """The settings refuse to load: the message names each problem, one line each, so that an
    entry point can print it alone (manage.py does) instead of a traceback."""
