"""The benchmark's settings: the production settings, on a Celery queue of the benchmark's own.

Everything else comes from the environment that bench/run.py sets (database, Redis, driver, limits).
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

# Only the benchmark's worker takes the benchmark's tasks, even on a broker others use.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="bench")
