"""Settings for the test suite: the same as base, with the test run's own folders.

The database and broker still come from the environment, so the suite runs against PostgreSQL and
Redis in CI and against SQLite and the filesystem broker with no configuration.
"""

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, DATABASES, VAR_DIR, broker_transport_options, env

TEST_VAR_DIR = VAR_DIR / "test"
TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the Celery worker that tests start is another process and must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "test-db.sqlite3")}

CELERY_BROKER_DIR = TEST_VAR_DIR / "celery-broker"
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, CELERY_BROKER_DIR)
# A queue of the test run's own, so that a development worker on the same broker takes nothing.
CELERY_TASK_DEFAULT_QUEUE = "tests"

LOCAL_DRIVER_ROOT = TEST_VAR_DIR / "local-machines"
LOCAL_DRIVER_AGENT_PORT = env.int("LOCAL_DRIVER_AGENT_PORT", default=18080)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; passwords are not tested here
