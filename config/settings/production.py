"""Production: ``DJANGO_SETTINGS_MODULE=config.settings.production``.

Safe by default: DEBUG is off whatever the environment says, secrets and hosts must come from the
environment, and start-up fails naming each problem, one line each, before anything else is read:
a missing variable, a secret key shorter or plainer than Django's deploy check allows, a token
pepper that is short or the secret key itself, a placeholder (``CHANGE-ME``, ``example``, ...) for a
secret or a URL's password, a short ``METRICS_TOKEN``, a wildcard in ``DJANGO_ALLOWED_HOSTS``.
Cookies are secure, HTTPS is enforced behind a proxy that sets ``X-Forwarded-Proto``, passwords are hashed with Argon2, static files are served by WhiteNoise from
``collectstatic``'s output, and logs are JSON lines. ``manage.py check --deploy`` is clean
(tests/test_production_settings.py).
"""

import os
from urllib.parse import urlsplit

from config.settings import SettingsRefused

# Checked before base.py is read, so that what is missing is named (base.py has no default for the
# secrets, and the embedded default for the rest).
REQUIRED_ENV = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "API_TOKEN_PEPPER",  # the key of the tokens' digests: its own random value, never the secret key
    "CACHE_URL",  # rate limits and reconciler counters must be shared by every web process
)
# Django's own rule for a secret key (its check security.W009): this long, this many distinct characters.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
API_TOKEN_PEPPER_MIN_LENGTH = 32
METRICS_TOKEN_MIN_LENGTH = 32
# A value holding one of these is a placeholder (every .env.example and deploy/k8s example secret
# does) or was never meant to be secret.
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "replace-me", "insecure", "example")
SECRET_ENV = ("DJANGO_SECRET_KEY", "API_TOKEN_PEPPER", "METRICS_TOKEN", "FLY_API_TOKEN")
URLS_WITH_PASSWORDS = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")


def configuration_problems(environ) -> list[str]:
    """Every reason to refuse this environment, one line each: missing, weak or placeholder secrets, a
    wildcard host."""
    problems = []
    missing = [name for name in REQUIRED_ENV if not environ.get(name, "").strip()]
    if missing:
        problems.append(
            f"missing environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}. "
            f"Set {'them' if len(missing) > 1 else 'it'}; see docs/operations.md."
        )
    key, pepper = environ.get("DJANGO_SECRET_KEY", "").strip(), environ.get("API_TOKEN_PEPPER", "").strip()
    if key and (len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS):
        problems.append(
            f"DJANGO_SECRET_KEY is too weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters, "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different."
        )
    if pepper and len(pepper) < API_TOKEN_PEPPER_MIN_LENGTH:
        problems.append(
            f"API_TOKEN_PEPPER is too short: it needs at least {API_TOKEN_PEPPER_MIN_LENGTH} characters."
        )
    if pepper and pepper == key:
        problems.append("API_TOKEN_PEPPER is the secret key: give it its own random value.")
    metrics = environ.get("METRICS_TOKEN", "").strip()
    if metrics and len(metrics) < METRICS_TOKEN_MIN_LENGTH:
        problems.append(
            f"METRICS_TOKEN is too short: it needs at least {METRICS_TOKEN_MIN_LENGTH} characters (or unset it)."
        )
    for name in SECRET_ENV:
        if _placeholder(environ.get(name, "")):
            problems.append(f"{name} is a placeholder (like .env.example's): replace it with a random value.")
    for name in URLS_WITH_PASSWORDS:
        try:
            password = urlsplit(environ.get(name, "")).password or ""
        except ValueError:
            password = ""
        if _placeholder(password):
            problems.append(f"{name} holds a placeholder password: replace it with a random one.")
    hosts = [host.strip() for host in environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    wildcards = [host for host in hosts if host == "*" or (host.startswith(".") and "." not in host[1:])]
    if wildcards:
        problems.append(
            f"DJANGO_ALLOWED_HOSTS may not hold a wildcard ({', '.join(wildcards)}): "
            "name the hosts this API answers to."
        )
    return problems


def _placeholder(value: str) -> bool:
    return any(word in value.lower() for word in PLACEHOLDER_WORDS)


_problems = configuration_problems(os.environ)
if _problems:
    raise SettingsRefused(
        "config.settings.production refuses to start:\n" + "\n".join(f"- {p}" for p in _problems)
    )

from .base import *  # noqa: E402, F403
from .base import env, logging_config  # noqa: E402

DEBUG = False

# --- HTTPS and headers ---------------------------------------------------------------------------------
# The platform's proxy or load balancer terminates TLS and says so in X-Forwarded-Proto; only ever
# run this behind one that sets (and overwrites) that header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes and Prometheus speak plain HTTP inside the cluster. (config.operations.middleware.ProbeMiddleware
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
