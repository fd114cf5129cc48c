"""CSO Dashboard settings: one module, configured entirely by environment variables.

With nothing set the app runs on the *embedded default*: SQLite in the checkout, Celery
tasks executed in process (eager) and a local-memory cache. Setting ``DATABASE_URL`` and
``REDIS_URL`` switches to Postgres, Redis (broker, result store and cache) and real Celery
workers. ``DEBUG`` is off unless asked for; production hardening follows from it and each
flag can still be overridden on its own. See README.md, "Configuration", for the table.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (production) or DEBUG=1 (local development)."
        )
    SECRET_KEY = "django-insecure-local-development-only-never-use-in-production"
# Earlier keys, comma-separated, still accepted when verifying (sessions, signed
# unsubscribe links) so SECRET_KEY can be rotated without signing everyone out at once.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "apps.core",
    "apps.org",
    "apps.crm",
    "apps.quotas",
    "apps.performance",
    "apps.customers",
    "apps.kpis",
    "apps.demo",
    "apps.imports",
    "apps.dashboards",
    "apps.forecasting",
    "apps.forecasting.engine",
    "apps.digests",
    "apps.audit",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (policy under "Security" below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view is marked @login_not_required
    # (the login page, /healthz); static files are served by WhiteNoise before this.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Every refused request (403) of a signed-in user goes into the audit log.
    "apps.audit.middleware.AuditDenialsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked-out login attempt into the lockout page (django-axes); keep it last.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cso_dashboard.urls"
WSGI_APPLICATION = "cso_dashboard.wsgi.application"
ASGI_APPLICATION = "cso_dashboard.asgi.application"

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
                "apps.core.context_processors.navigation",
                "apps.core.context_processors.service_notice",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            # Reconnect transparently after a Postgres restart instead of failing forever.
            conn_health_checks=True,
        )
    }
    # A request's query must not outlive the request: gunicorn gives up on a worker after
    # its timeout, but Postgres would keep running the query. cso_dashboard/wsgi.py sets
    # DB_STATEMENT_TIMEOUT_MS for web processes only, so Celery rebuilds and management
    # commands (which may rightly run for minutes) are not cut short.
    _statement_timeout_ms = env_int("DB_STATEMENT_TIMEOUT_MS", 0)
    if _statement_timeout_ms > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c statement_timeout={_statement_timeout_ms}"
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or str(BASE_DIR / "db.sqlite3"),
            # IMMEDIATE avoids "database is locked" upgrades when the in-process tasks and
            # requests write at once; the timeout lets a writer wait for the other.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "org.User"

# --- Cache, broker, tasks ---------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache that degrades (acts empty, pages say "may be stale")
            # instead of failing while Redis is unreachable; see apps/core/cache.py.
            "BACKEND": "apps.core.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cso",
            "TIMEOUT": 300,
            # Fail fast when Redis is away so pages can degrade instead of hanging.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "cso-dashboard",
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# Embedded default: no broker, so tasks run in process, and their errors surface at once.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = env_str("TIME_ZONE", "UTC")
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 55 * 60)
# A task whose worker dies is delivered again; every task is idempotent so that is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How long Redis waits before handing an unacknowledged task (its worker died) to another
# worker. Keep it above the longest task time limit (large imports: 2 hours), or a running
# task is handed to a second worker; tests shorten it to exercise redelivery.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7500)}
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Nightly full rebuild of the KPI rollups; it also settles what incremental updates
    # leave to it (exchange-rate corrections, a deal moved to another account).
    "kpis-rollups-rebuild-nightly": {
        "task": "kpis.rollups_rebuild",
        "schedule": crontab(hour=env_int("ROLLUPS_REBUILD_HOUR", 2), minute=15),
    },
    # Forecasts: every method for every scope each night (after the rollups), the weekly
    # snapshot that accuracy is scored on, and the weekly retraining of the ML model.
    "forecasting-recompute-nightly": {
        "task": "forecasting.forecasts_recompute",
        "schedule": crontab(hour=env_int("ROLLUPS_REBUILD_HOUR", 2) + 1, minute=15),
    },
    "forecasting-snapshot-weekly": {
        "task": "forecasting.forecasts_snapshot",
        "schedule": crontab(
            day_of_week="mon", hour=env_int("ROLLUPS_REBUILD_HOUR", 2) + 2, minute=0
        ),
    },
    "forecasting-model-train-weekly": {
        "task": "forecast_engine.model_train",
        "schedule": crontab(
            day_of_week="sun", hour=env_int("ROLLUPS_REBUILD_HOUR", 2) + 1, minute=45
        ),
    },
    # Digests: the dispatcher finds due subscriptions and threshold alerts; delivery is
    # exactly-once per subscription and period, so running it often (or twice) is safe.
    # Imports whose task was lost (a broker restarted without persistence) are queued again.
    "imports-recover": {
        "task": "imports.import_jobs_recover",
        "schedule": env_int("IMPORTS_RECOVER_SECONDS", 600),
    },
    "digests-dispatch": {
        "task": "digests.dispatch",
        "schedule": env_int("DIGESTS_DISPATCH_SECONDS", 300),
    },
}

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- I18N -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Email ------------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "CSO Dashboard <dashboard@localhost>")
# Where the app is reached from outside: links in digests and alerts are built from it.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security (production defaults follow DEBUG; each can be overridden) -----------------
# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed attempts for one username
# from one address, that pair is locked out for AXES_COOLOFF_MINUTES; a success resets it.
# Locking the pair, not the username alone, keeps a stranger from locking the CSO out.
AUTHENTICATION_BACKENDS = [
    "apps.core.auth.ThrottledLoginBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Content-Security-Policy (django-csp): scripts only from our own static files (no inline
# or eval'd script anywhere: charts read their figures from json_script data blocks);
# inline styles are allowed because Plotly positions its SVG with style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Load balancers and container health checks probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # `Authorization: Token <key>`; keys come from `manage.py drf_create_token USERNAME`.
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON only: bulk bodies are lists, and one body format keeps validation in one place.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "apps.api.schema.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "apps.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        # Per signed-in user; anonymous calls are refused before any work is done.
        "apps.api.throttling.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "1200/minute"),
        "bulk": env_str("API_THROTTLE_BULK", "60/minute"),
    },
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CSO Dashboard API",
    "DESCRIPTION": (
        "Bookings, pipeline, quotas, reviews, customers and KPIs. Session or token "
        "authentication; every list accepts ?format=csv or ?format=xlsx. See docs/api.md."
    ),
    "VERSION": "1",
    # The schema describes real users' data, so reading it needs a login too.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,
    # Operations are tagged and named by resource (accounts, opportunities, ...).
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Separate request and response components, so read-only fields are never required input.
    "COMPONENT_SPLIT_REQUEST": True,
    # CSV/XLSX downloads are documented in docs/api.md, not as JSON schema content types.
    "RENDERER_WHITELIST": ["rest_framework.renderers.JSONRenderer"],
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # Swagger UI assets come from our own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ForecastCategoryEnum": "apps.crm.models.ForecastCategory",
        "StageOutcomeEnum": "apps.crm.models.Stage.Outcome",
        "RoleEnum": "apps.org.models.Role",
    },
}

# --- Business settings ------------------------------------------------------------------
BASE_CURRENCY = env_str("BASE_CURRENCY", "USD").upper()
if len(BASE_CURRENCY) != 3 or not BASE_CURRENCY.isalpha():
    raise ImproperlyConfigured(f"BASE_CURRENCY must be an ISO 4217 code, got {BASE_CURRENCY!r}")

FISCAL_YEAR_START_MONTH = env_int("FISCAL_YEAR_START_MONTH", 1)
if not 1 <= FISCAL_YEAR_START_MONTH <= 12:
    raise ImproperlyConfigured("FISCAL_YEAR_START_MONTH must be between 1 and 12")

try:
    GROSS_MARGIN = Decimal(env_str("GROSS_MARGIN", "0.80"))
except InvalidOperation as exc:
    raise ImproperlyConfigured("GROSS_MARGIN must be a decimal such as 0.80") from exc
if not Decimal("0") < GROSS_MARGIN <= Decimal("1"):
    raise ImproperlyConfigured("GROSS_MARGIN must be in (0, 1], e.g. 0.80 for 80%")

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every log-in at INFO; the audit log (apps/audit) keeps those events.
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- Digests ----------------------------------------------------------------------------
# A digest whose hour was missed (beat down) is still sent up to this many hours late.
DIGESTS_CATCH_UP_HOURS = env_int("DIGESTS_CATCH_UP_HOURS", 12)
DIGESTS_MAX_ATTEMPTS = env_int("DIGESTS_MAX_ATTEMPTS", 4)
DIGESTS_RETRY_BACKOFF_SECONDS = env_int("DIGESTS_RETRY_BACKOFF_SECONDS", 60)
# A delivery left "sending" longer than this (its worker died) is marked failed, not resent.
DIGESTS_SENDING_TIMEOUT_SECONDS = env_int("DIGESTS_SENDING_TIMEOUT_SECONDS", 900)
DIGESTS_KEEP_MAIL_DAYS = env_int("DIGESTS_KEEP_MAIL_DAYS", 30)
# Chromium used by Kaleido for the charts' PNG export (found on PATH when empty).
DIGESTS_CHROMIUM_PATH = env_str("DIGESTS_CHROMIUM_PATH")
DIGESTS_CHART_TIMEOUT_SECONDS = env_int("DIGESTS_CHART_TIMEOUT_SECONDS", 60)

# --- Imports ----------------------------------------------------------------------------
# Largest file the import wizard accepts, and the row count above which an import runs as a
# background task with a progress bar instead of inside the request.
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
IMPORT_TASK_ROW_THRESHOLD = env_int("IMPORT_TASK_ROW_THRESHOLD", 5000)
# On PostgreSQL, a CSV file of new deals with at least this many rows is checked and loaded
# set-based in the database (apps.imports.sqlload); same rows, about twice as fast.
IMPORTS_SQL_LOAD = env_bool("IMPORTS_SQL_LOAD", True)
IMPORTS_SQL_LOAD_MIN_ROWS = env_int("IMPORTS_SQL_LOAD_MIN_ROWS", 10_000)
