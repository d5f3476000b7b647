# syntax=docker/dockerfile:1
#
# The control plane's one image. Every process runs it with its own command (compose.yaml,
# deploy/k8s, Procfile):
#   web       gunicorn -c config/gunicorn.py config.wsgi          (the default command)
#   worker    celery -A config worker --loglevel=INFO              (any number of them)
#   beat      celery -A config beat --loglevel=INFO --schedule /app/var/celerybeat-schedule  (exactly one)
#   migrate   python manage.py migrate --noinput                   (before new web pods; a Job / one-shot)
#
# Build: docker build -t workspaces-control-plane .
# No secret is baked in: configuration comes from the environment at run time (docs/operations.md).
# CI has no Docker engine, so this file is not built there: deploy/check lints it with hadolint and
# checks the commands above name modules that exist.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the pinned dependencies of pyproject.toml in a virtualenv ------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The runtime dependencies (not the dev extra) exactly as pyproject.toml pins them, in their own
# layer: a change to the code alone does not reinstall them. Every pin has a manylinux wheel, so no
# compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --only-binary=:all: -r requirements.txt

# --- runtime -----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="workspaces-control-plane" \
      org.opencontainers.image.description="A self-hostable control plane for cloud development workspaces"

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    WHITENOISE_USE_FINDERS=false \
    PORT=8000

WORKDIR /app
# The code belongs to root: the app user can read it, not change it. It writes only to /app/var.
COPY . /app

# Static files (the admin's, Swagger UI's) are collected into the image and served by whitenoise.
# collectstatic needs settings to import, not a database or a broker: the values below exist only for
# this command and are not kept in the image (long and distinct enough for the production settings'
# checks, and never a deployment's secrets).
RUN DJANGO_SECRET_KEY=collectstatic-only-this-is-not-a-secret-key-of-any-deployment \
    DJANGO_ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://build@localhost:5432/build \
    CELERY_BROKER_URL=redis://localhost:6379/0 \
    CACHE_URL=locmemcache:// \
    API_TOKEN_PEPPER=collectstatic-only-this-is-not-a-token-pepper \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var \
    && chown app:app /app/var

USER 10001:10001
EXPOSE 8000

# Liveness of the web process (no database). Worker and beat containers override or disable it
# (compose.yaml); Kubernetes ignores it and uses the probes of deploy/k8s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
