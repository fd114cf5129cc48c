"""Settings for the test suite: the real settings, made fast and deterministic.

DATABASE_URL and REDIS_URL still decide the backends, so CI tests on Postgres and Redis.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")

from cso_dashboard.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests run tasks in process unless a test starts a real worker itself.
CELERY_TASK_ALWAYS_EAGER = True
