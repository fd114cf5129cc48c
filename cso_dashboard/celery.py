"""Celery application.

Configuration comes from Django settings (``CELERY_*``). With no ``REDIS_URL`` the
settings switch tasks to eager mode, so the embedded default runs them in process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")

app = Celery("cso_dashboard")
# The default app for every thread, said explicitly: Celery's Django fix-up does it only
# when no default app exists yet, and shared tasks queued from a request thread (gunicorn
# --threads) resolve through the default app.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
