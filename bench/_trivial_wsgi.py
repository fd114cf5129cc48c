"""WSGI entry for the dashboards benchmark: the project unchanged plus one trivial view.

``/bench-trivial`` is a plain ``HttpResponse`` behind the project's full middleware stack
(session, auth, login-required, security headers), so comparing a dashboard page with it
isolates what the page itself costs. Every other URL goes to the project's own URLconf.
Nothing in the project is edited: the URLconf and STATIC_ROOT are switched in memory,
before the WSGI handler is built, and only in processes that import this module.

    gunicorn bench._trivial_wsgi:application          # serve (from the repository root)
    python bench/_trivial_wsgi.py collectstatic       # build BENCH_STATIC_ROOT for DEBUG=0
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402

# With DEBUG=0 the manifest static storage needs a collected tree; keep it out of the
# repository so a benchmark run leaves no files behind there.
if os.environ.get("BENCH_STATIC_ROOT"):
    settings.STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]


def trivial(request: HttpRequest) -> HttpResponse:
    """The baseline: no query of its own, a few bytes of text.

    It stays behind the login requirement, like the pages, so both pay for loading the
    session and the user and the ratio measures only the page's own work.
    """
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench-trivial", trivial, name="bench-trivial"),
    path("", include("cso_dashboard.urls")),
]

if __name__ == "__main__":
    from django.core.management import call_command

    call_command(*sys.argv[1:], interactive=False, verbosity=0)
else:
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = __name__
    application = get_wsgi_application()
