"""Settings for the test suite: the same as base, with the test run's own folders.

The database and broker still come from the environment, so the suite runs against PostgreSQL and
Redis in CI and against SQLite and the filesystem broker with no configuration.
"""

import os

# Test-only secrets (base.py has no default): fixed, so that the processes a test starts (tests/live.py)
# check the tokens the test made. Distinct values, the pepper never being the key.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "k" * 40)
os.environ.setdefault("API_TOKEN_PEPPER", "test-only-token-pepper-" + "p" * 20)

from .base import *  # noqa: E402, F403
from .base import CELERY_BROKER_URL, DATABASES, VAR_DIR, broker_transport_options, env  # noqa: E402

# As the suite's web and worker processes have always run (base.py's default is off).
DEBUG = env.bool("DJANGO_DEBUG", default=True)

TEST_VAR_DIR = VAR_DIR / "test"
TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the Celery worker that tests start is another process and must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "test-db.sqlite3")}

CELERY_BROKER_DIR = TEST_VAR_DIR / "celery-broker"
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, CELERY_BROKER_DIR)
# A queue of the test run's own, so that a development worker on the same broker takes nothing.
# Live-server tests (tests/live.py) give their web and worker processes yet another one.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="tests")
WORKSPACE_CLONE_QUEUE = env.str("WORKSPACE_CLONE_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}.clones")
# Tests clone from git daemons and HTTP servers on 127.0.0.1: loopback is allowed here. The tests of
# the egress policy itself set it back to empty (in-process with ``settings``, or in a worker's env).
EGRESS_ALLOWED_NETWORKS = env.list("EGRESS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])

LOCAL_DRIVER_ROOT = TEST_VAR_DIR / "local-machines"
LOCAL_DRIVER_AGENT_PORT = env.int("LOCAL_DRIVER_AGENT_PORT", default=18080)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; passwords are not tested here

# The fly driver talks to the fake Fly Machines API (tests/fakes/fly.py) that the test run starts
# on this port (tests/conftest.py: fake_fly); the Celery workers that tests start read the same.
FAKE_FLY_PORT = env.int("FAKE_FLY_PORT", default=18580)
FLY_API_TOKEN = "test-token"  # noqa: S105 (the fake's own credential)
FLY_APP_NAME = "workspaces-test"
FLY_REGION = "iad"
FLY_IMAGE = "registry.example.com/workspace:test"
FLY_API_BASE_URL = f"http://127.0.0.1:{FAKE_FLY_PORT}"
FLY_REQUEST_TIMEOUT_SECONDS = 1.0
# Fault tests retry a lot: keep the backoff short (the policy is the same, only the cap is lower).
WORKSPACE_RETRY_BACKOFF_MAX_SECONDS = 0.5
WORKSPACE_TASK_MAX_RETRIES = 8
# Tests poll the API quickly; the rate-limit tests set their own limits.
API_RATE_LIMITS = {"user": "100000/minute", "workspace_create": "100000/minute"}
