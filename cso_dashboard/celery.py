"""Celery application.

Configuration comes from Django settings (``CELERY_*``). With no ``REDIS_URL`` the
settings switch tasks to eager mode, so the embedded default runs them in process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")

app = Celery("cso_dashboard")
# The app for every thread, not only the one that created it: shared tasks queued from a
# request thread (gunicorn --threads) or a test thread must not fall back to an
# unconfigured default app, which would publish them to a broker nobody reads.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
