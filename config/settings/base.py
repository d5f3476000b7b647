"""Settings for every environment, read from the process environment (django-environ).

Not used on its own: ``config.settings.development``, ``test`` and ``production`` build on it. With
nothing configured (development) the project runs on the embedded default: SQLite, kombu's
filesystem broker and the ``local`` machine driver, all kept under ``var/`` in the checkout.
Production points ``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.operations.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# Where the embedded default keeps its state (SQLite file, broker messages, local machines).
# Made here so that the first command on a fresh checkout needs no set-up step.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Secrets and debug: no default here --------------------------------------
# A public fallback key would let anyone who read this repository forge sessions and, through the
# token pepper, API and agent tokens. So none: config.settings.development makes a random key and
# pepper once per checkout (in var/), config.settings.test has test-only ones, and production must be
# given them (and checks their strength). Reading this module without them is an ImproperlyConfigured
# naming the variable.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# --- end of secrets and debug ------------------------------------------------------------------------
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # the admin login's lockout (below, "Operator console")
    "accounts",
    "projects",
    "workspaces",
]

MIDDLEWARE = [
    "config.operations.middleware.RequestIdMiddleware",  # first: every response and log line gets the request id
    "config.operations.metrics.MetricsMiddleware",
    "config.operations.middleware.ProbeMiddleware",  # /healthz, /readyz, /metrics: before the host check and HTTPS redirect
    "config.operations.middleware.StripTrailingSlashMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "config.operations.admin.AdminNulMiddleware",  # the admin never passes a NUL on to the database: a 400
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.operations.middleware.JsonServerErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write to the same file: wait for the lock instead of failing at once,
    # and use WAL so that readers never block the writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# Passwords are only for operators logging in to the admin (the API takes Bearer tokens): axes'
# backend first refuses a username locked out from this address, then Django's checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # where collectstatic writes; WhiteNoise looks there too
# Serve static files straight from the apps (no collectstatic step), so that /docs and the admin
# work the same under runserver, gunicorn and the test client.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# --- API -----------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: form parsers make generated clients fail, and any other body is a 415.
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONParser"],  # DRF's, with deep nesting a 400 too
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.UserRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",  # as in the seed: 2025-01-15T10:30:00Z
}

# Requests per user (DRF rate syntax). "workspace_create" applies to creates on top of "user".
API_RATE_LIMITS = env.json(
    "API_RATE_LIMITS", default={"user": "1200/minute", "workspace_create": "60/minute"}
)
# The cache counts rate limits: per process by default; point it at Redis for several web processes.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "config.backends.cache.RedisCache"  # the same, without a client per call

# Lists return every result up to this many; `limit` may ask for fewer, never more.
API_LIST_MAX_LIMIT = env.int("API_LIST_MAX_LIMIT", default=1000)

SPECTACULAR_SETTINGS = {
    "TITLE": "Workspaces API",
    "DESCRIPTION": (
        "Create and manage cloud development workspaces: machines with a persistent volume, "
        "inside projects. Authenticate with `Authorization: Bearer <token>`."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_COERCE_PATH_PK_SUFFIX": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A nullable enum is `nullable: true` on a reference, not a oneOf with a NullEnum component, which
    # openapi-generator's Python client turns into a class that does not compile.
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    # drf-spectacular's own pass (named enums), then ours: response headers, nullable types, servers
    # and the string rules (config/api/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.openapi.contract_postprocessing_hook",
    ],
    "ENUM_NAME_OVERRIDES": {
        "WorkspaceStatus": "workspaces.models.WorkspaceStatus",
        "EventActorKind": "workspaces.models.ActorKind",
        "AttemptOutcome": "workspaces.models.AttemptOutcome",
    },
}

# --- API tokens ------------------------------------------------------------------------------------

# Token digests are HMAC-SHA256 keyed with this pepper, so a copy of the database alone cannot be
# used to check guessed tokens. Changing it invalidates every token. No default, and never the secret
# key: see "Secrets and debug" above.
API_TOKEN_PEPPER = env.str("API_TOKEN_PEPPER")
API_TOKEN_LAST_USED_RESOLUTION_SECONDS = 60

# --- Workspaces ------------------------------------------------------------------------------------

# The hardware catalogue (docs/api.md, "Hardware"). A deployment can replace it with a JSON value.
WORKSPACE_HARDWARE_CATALOGUE = env.json(
    "WORKSPACE_HARDWARE_CATALOGUE",
    default={
        "cpu_kinds": {
            "shared": {"cpus": [1, 2, 4, 6, 8], "memory_per_cpu_mb": [256, 2048], "memory_step_mb": 256},
            "performance": {
                "cpus": [1, 2, 4, 6, 8, 10, 12, 14, 16],
                "memory_per_cpu_mb": [2048, 8192],
                "memory_step_mb": 1024,
            },
        },
        "volume_size_gb": [1, 500],
        "gpu_kinds": [],
    },
)
WORKSPACE_DEFAULT_HARDWARE = {
    "cpu_kind": "shared",
    "cpus": 2,
    "memory_mb": 2048,
    "volume_size_gb": 10,
    "gpu_kind": None,
}
# Per-user limits over all live workspaces; operators can override them per user in the admin.
WORKSPACE_QUOTA_DEFAULTS = env.json(
    "WORKSPACE_QUOTA_DEFAULTS",
    # Room for at least the largest workspace of the default catalogue (16 performance CPUs, 128 GB).
    default={"max_workspaces": 20, "max_vcpus": 32, "max_memory_mb": 131072, "max_volume_gb": 1000},
)
# How long a booting machine may take to answer before provisioning fails.
WORKSPACE_START_TIMEOUT_SECONDS = env.float("WORKSPACE_START_TIMEOUT_SECONDS", default=120)
# Idle auto-stop: a running workspace with keep_active false and no activity (a heartbeat from its
# machine, or a start, stop or patch) for this long is stopped by the stop_idle_workspaces beat task.
WORKSPACE_IDLE_TIMEOUT_SECONDS = env.int("WORKSPACE_IDLE_TIMEOUT_SECONDS", default=600)
# Where machines send their heartbeats: this API's address as the machines see it. Each machine gets
# <base>/workspaces/<id>/heartbeat as WORKSPACE_HEARTBEAT_URL, with its WORKSPACE_AGENT_TOKEN.
WORKSPACE_HEARTBEAT_BASE_URL = env.str("WORKSPACE_HEARTBEAT_BASE_URL", default="http://127.0.0.1:8000")
# Which URL schemes a project's repo_url may use. `file` is off by default: with the local driver it
# would let a user copy any directory of the host into their workspace.
PROJECT_REPO_URL_SCHEMES = env.list("PROJECT_REPO_URL_SCHEMES", default=["https", "http", "ssh", "git"])
# How long an invitation to a project (POST /projects/{id}/members) may be accepted.
PROJECT_INVITATION_EXPIRY_DAYS = env.int("PROJECT_INVITATION_EXPIRY_DAYS", default=14)
# The egress policy (config/security/egress.py): the control plane connects to no loopback, private, link-local
# (cloud metadata), unique-local, shared (CGNAT), multicast or reserved address on a user's behalf (a
# project's repo_url), except in the networks listed here (CIDRs, e.g. "10.20.0.0/16,fd00:1::/64" for
# an internal git server). Empty by default.
EGRESS_ALLOWED_NETWORKS = env.list("EGRESS_ALLOWED_NETWORKS", default=[])
for _cidr in EGRESS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"EGRESS_ALLOWED_NETWORKS: {_cidr!r} is not a network ({_exc}).") from None

# The machine driver: "local" (the embedded default) or another registered driver.
WORKSPACE_DRIVER = env.str("WORKSPACE_DRIVER", default="local")
LOCAL_DRIVER_ROOT = Path(env.str("LOCAL_DRIVER_ROOT", default=str(VAR_DIR / "local-machines")))
LOCAL_DRIVER_AGENT_PORT = env.int("LOCAL_DRIVER_AGENT_PORT", default=8080)
LOCAL_DRIVER_CLONE_TIMEOUT_SECONDS = env.float("LOCAL_DRIVER_CLONE_TIMEOUT_SECONDS", default=300)
# A clone slower than 1 KiB/s for this long is abandoned (git's http.lowSpeedLimit/lowSpeedTime), well
# before the timeout above: a repository that accepts the connection and then stalls gives its slot back.
LOCAL_DRIVER_CLONE_LOW_SPEED_SECONDS = env.int("LOCAL_DRIVER_CLONE_LOW_SPEED_SECONDS", default=60)
# The fly driver (WORKSPACE_DRIVER=fly): the Fly.io Machines API. With that driver selected, start-up
# fails naming whichever of the token, app, region and image is missing (workspaces/apps.py).
FLY_API_TOKEN = env.str("FLY_API_TOKEN", default="")
FLY_APP_NAME = env.str("FLY_APP_NAME", default="")  # the Fly app that holds every workspace machine
FLY_REGION = env.str("FLY_REGION", default="")  # where volumes and machines are made, e.g. "ams"
FLY_IMAGE = env.str("FLY_IMAGE", default="")  # the workspace image; it clones WORKSPACE_REPO_URL at boot
FLY_API_BASE_URL = env.str("FLY_API_BASE_URL", default="https://api.machines.dev")
# How long one call to Fly may take before it counts as a (transient) timeout.
FLY_REQUEST_TIMEOUT_SECONDS = env.float("FLY_REQUEST_TIMEOUT_SECONDS", default=30)
# GPU kinds this deployment may ask Fly for (Fly's guest.gpu_kind values); none by default.
FLY_GPU_KINDS = env.list("FLY_GPU_KINDS", default=[])

# --- Celery --------------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "celery-broker")))


def broker_transport_options(broker_url: str, broker_dir: Path) -> dict:
    if broker_url.startswith("filesystem://"):
        # The embedded broker: messages are files in one folder that web and worker share,
        # polled often so that a task starts within a few milliseconds of its commit.
        return {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "control_folder": str(broker_dir / "control"),
            "polling_interval": 0.05,
        }
    # Redis: a message not acknowledged within this time is delivered again. It must be longer
    # than any task may run, or a slow task would be run twice.
    return {"visibility_timeout": 3600}


CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, CELERY_BROKER_DIR)
# The queue tasks are sent to and workers consume (and their readiness heartbeat's key): two
# deployments may share one Redis with a queue each.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Provisioning runs that clone a repository on this host (the local driver) go to a queue of their own,
# consumed by a worker of its own (own concurrency and time limit: Procfile, compose.yaml, deploy/k8s):
# a slow or hanging repository then holds only clone slots, never those that start, stop and destroy
# workspaces or create the ones without a repository. Within that queue it is first come, first served.
WORKSPACE_CLONE_QUEUE = env.str("WORKSPACE_CLONE_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.clones")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# At-least-once delivery: a task is acknowledged after it ran, and given back if its worker dies.
# Our tasks are idempotent (conditional transitions), so running one twice is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 660
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request that sends a task must not hang on a broker that is down: a few quick tries, then the
# send is given up and logged (the row is committed; the reconciler queues the work again).
# Transient provider errors are retried this many times, with full-jitter exponential backoff
# capped at this many seconds; then the workspace goes to the failure of its state.
WORKSPACE_TASK_MAX_RETRIES = env.int("WORKSPACE_TASK_MAX_RETRIES", default=6)
WORKSPACE_RETRY_BACKOFF_MAX_SECONDS = env.float("WORKSPACE_RETRY_BACKOFF_MAX_SECONDS", default=60)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_ALWAYS_EAGER = False
# Periodic tasks, for `celery beat` (one beat per deployment; `make run` embeds it in its worker).
# Each run expires after one interval: a backlog of them, queued while no worker ran, is dropped.
WORKSPACE_IDLE_CHECK_INTERVAL_SECONDS = env.float("WORKSPACE_IDLE_CHECK_INTERVAL_SECONDS", default=60)
# The reconciler (workspaces/reconciler.py): how long each transient state may last, how long
# work may show no progress before it is queued again, and when an open attempt means a dead worker.
WORKSPACE_STATE_CEILINGS_SECONDS = env.json(
    "WORKSPACE_STATE_CEILINGS_SECONDS", default={"creating": 900, "starting": 600, "stopping": 300}
)
WORKSPACE_REQUEUE_AFTER_SECONDS = env.int("WORKSPACE_REQUEUE_AFTER_SECONDS", default=120)
WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = env.int(
    "WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60
)
WORKSPACE_RECONCILE_INTERVAL_SECONDS = env.float("WORKSPACE_RECONCILE_INTERVAL_SECONDS", default=30)
WORKSPACE_RECONCILE_LOCK_SECONDS = 600
CELERY_BEAT_SCHEDULE = {
    "stop-idle-workspaces": {
        "task": "workspaces.tasks.stop_idle_workspaces",
        "schedule": WORKSPACE_IDLE_CHECK_INTERVAL_SECONDS,
        "options": {"expires": WORKSPACE_IDLE_CHECK_INTERVAL_SECONDS},
    },
    "reconcile-workspaces": {
        "task": "workspaces.tasks.reconcile_workspaces",
        "schedule": WORKSPACE_RECONCILE_INTERVAL_SECONDS,
        "options": {"expires": WORKSPACE_RECONCILE_INTERVAL_SECONDS},
    },
}

# --- Operator console (the admin) ---------------------------------------------------------------------

# Login throttling (django-axes; the API takes Bearer tokens, so only the admin's login counts): after
# ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one client address, that pair is
# refused (a 429 page, even with the right password) until ADMIN_LOGIN_COOLOFF_SECONDS pass without
# another try; a successful login clears the count. `manage.py axes_reset_username <email>` lifts one.
AXES_ONLY_ADMIN_SITE = True
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("ADMIN_LOGIN_COOLOFF_SECONDS", default=900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The login form's field and authenticate()'s argument are "username" (it holds the email): axes would
# otherwise look for USERNAME_FIELD ("email") and count every failure as one of no username.
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every process start
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The client address is REMOTE_ADDR, as everywhere in this project: X-Forwarded-For is written by
# whoever sends the request, and trusting it would let one client pose as any number of addresses.
# Behind a proxy every client has the proxy's address, so the lockout is then per username.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# --- Idempotency-Key purge (config/api/idempotency.py) ---------------------------------------------------
# Keys (with the responses they replay) are kept 24 hours, the API's promise; then a periodic task
# deletes them, this often, this many rows per delete statement.
IDEMPOTENCY_PURGE_INTERVAL_SECONDS = env.float("IDEMPOTENCY_PURGE_INTERVAL_SECONDS", default=3600)
IDEMPOTENCY_PURGE_BATCH_SIZE = env.int("IDEMPOTENCY_PURGE_BATCH_SIZE", default=1000)
CELERY_BEAT_SCHEDULE["purge-idempotency-keys"] = {
    "task": "accounts.tasks.purge_idempotency_keys",
    "schedule": IDEMPOTENCY_PURGE_INTERVAL_SECONDS,
    "options": {"expires": IDEMPOTENCY_PURGE_INTERVAL_SECONDS},
}

# --- Operations: logs, health, metrics ----------------------------------------------------------------

# Structured logs (config/operations/logs.py): "console" (readable key=value lines) here, "json" in production.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
# /readyz (config/operations/health.py) wants a worker heartbeat younger than this. Web processes that must be
# ready before any worker exists can set READINESS_REQUIRE_WORKER=false: the check is then reported
# but does not make the answer 503.
READINESS_REQUIRE_WORKER = env.bool("READINESS_REQUIRE_WORKER", default=True)
READINESS_WORKER_MAX_AGE_SECONDS = env.float("READINESS_WORKER_MAX_AGE_SECONDS", default=60)
# /metrics (config/operations/metrics.py) answers only with "Authorization: Bearer <METRICS_TOKEN>"; unset, it is a 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
