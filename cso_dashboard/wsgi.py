"""WSGI entry point (gunicorn cso_dashboard.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")
# Web requests get a Postgres statement timeout (30 s unless set); see settings.py.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "30000")

application = get_wsgi_application()
