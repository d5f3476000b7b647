"""Production: ``DJANGO_SETTINGS_MODULE=config.settings.production``.

Safe by default: DEBUG is off whatever the environment says, secrets and hosts must come from the
environment (start-up fails naming each one that is missing, before anything falls back to a
development default), cookies are secure, HTTPS is enforced behind a proxy that sets
``X-Forwarded-Proto``, passwords are hashed with Argon2, static files are served by WhiteNoise from
``collectstatic``'s output, and logs are JSON lines. ``manage.py check --deploy`` is clean
(tests/test_production_settings.py).
"""

import os

from django.core.exceptions import ImproperlyConfigured

# Checked before base.py is read: base has a development fallback for each of these.
REQUIRED_ENV = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "API_TOKEN_PEPPER",  # the key of the tokens' digests: never the secret key's fallback
    "CACHE_URL",  # rate limits and reconciler counters must be shared by every web process
)
_missing = [name for name in REQUIRED_ENV if not os.environ.get(name, "").strip()]
if _missing:
    raise ImproperlyConfigured(
        f"config.settings.production: missing environment variable{'s' if len(_missing) > 1 else ''} "
        f"{', '.join(_missing)}. Set {'them' if len(_missing) > 1 else 'it'}; see docs/operations.md."
    )

from .base import *  # noqa: E402, F403
from .base import env, logging_config  # noqa: E402

DEBUG = False

# --- HTTPS and headers ---------------------------------------------------------------------------------
# The platform's proxy or load balancer terminates TLS and says so in X-Forwarded-Proto; only ever
# run this behind one that sets (and overwrites) that header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes and Prometheus speak plain HTTP inside the cluster. (config.middleware.ProbeMiddleware
# answers these paths before the redirect anyway; this says the same to anyone reading settings.)
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SILENCED_SYSTEM_CHECKS = []
if not SECURE_HSTS_PRELOAD:
    # Preloading puts the domain in the browsers' built-in HTTPS-only lists, which is hard to undo:
    # an operator opts in (SECURE_HSTS_PRELOAD=true) knowing that; it is not a default.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# --- Passwords (operator accounts of the admin) ----------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Older hashes still verify, and are upgraded to Argon2 at the next login.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

# --- Database ----------------------------------------------------------------------------------------
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405 (a persistent connection that died is replaced)

# --- Static files -----------------------------------------------------------------------------------------
# Built by `manage.py collectstatic --noinput` into STATIC_ROOT (at image build time), served by
# WhiteNoise with hashed names and far-future caching. Not strict: a file missing from the
# manifest is served under its plain name rather than failing the page.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MANIFEST_STRICT = False
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=False)

# --- Logs ----------------------------------------------------------------------------------------------------
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)  # noqa: F405
