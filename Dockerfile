# Production image: gunicorn for the web service, the same image for the Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Chromium renders the digests' charts to PNG (Plotly's Kaleido drives it headless).
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
ENV DIGESTS_CHROMIUM_PATH=/usr/bin/chromium

# Dependencies first so that a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time (compressed, with hashed names for WhiteNoise).
# The key below exists only for this build step; the container gets the real one at run time.
RUN DEBUG=0 SECRET_KEY=build-only-collectstatic-key python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && chown -R app:app /app/staticfiles

USER app
EXPOSE 8000

# --max-requests: a worker is replaced after about a thousand requests, so memory a worker
# kept after large cold pages (docs/load-testing.md, the soak) is given back.
CMD ["gunicorn", "cso_dashboard.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--max-requests", "1000", "--max-requests-jitter", "100", "--access-logfile", "-"]
