"""Settings of the real Celery worker started by the digest worker test: the normal
settings, with the test's own queue as the default (so tasks the worker queues itself, such
as a retry, come back to it) and a one-second retry backoff."""

import os

from cso_dashboard.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["DIGESTS_TEST_QUEUE"]
DIGESTS_RETRY_BACKOFF_SECONDS = 1
DIGESTS_MAX_ATTEMPTS = 3
