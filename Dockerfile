# syntax=docker/dockerfile:1
#
# One image for every process of the platform (gateway, auth, auth relay, events, booking,
# payments, notifications, analytics); docker-compose.yml and deploy/k8s/ pick the command.
#
#   docker build -t eventbooking/platform:dev .
#   docker run --rm -p 8002:8002 -e PORT=8002 eventbooking/platform:dev \
#       uvicorn apps.events.main:app --host 0.0.0.0 --port 8002
#
# Stages: `assets` fetches the docs pages' front-end files from npm, `builder` turns the pinned
# runtime dependencies into wheels and a virtualenv, `runtime` is python:3.11-slim with that
# virtualenv, the source and the assets, run as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- docs assets (Swagger UI, AsyncAPI React component), the same versions as `make install` ---
FROM ${NODE_IMAGE} AS assets
WORKDIR /assets
# Only what kit/assets.py serves (plus the licences) goes on: ~22 MB instead of ~130 MB.
RUN npm install --no-save --no-package-lock --no-audit --no-fund \
        @asyncapi/react-component@3.1.5 swagger-ui-dist@5.35.0 \
    && mkdir -p /out/node_modules/@asyncapi/react-component/browser \
    && cp -r node_modules/swagger-ui-dist /out/node_modules/ \
    && cd node_modules/@asyncapi/react-component \
    && cp -r package.json LICENSE styles /out/node_modules/@asyncapi/react-component/ \
    && cp -r browser/standalone /out/node_modules/@asyncapi/react-component/browser/

# --- dependencies: wheels, then a virtualenv built from them ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml requirements.txt ./
# The runtime dependencies of pyproject.toml (not the [dev] extra: no pytest in the image), at
# the exact versions requirements.txt pins.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.in \
    && pip wheel --wheel-dir /wheels -r runtime.in -c requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels -r runtime.in -c requirements.txt

# --- the image that runs ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="event-booking-platform" \
      org.opencontainers.image.description="Event booking backend: gateway, auth and the services" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ASSETS_DIR=/app/.var/assets/node_modules \
    JWT_KEYS_DIR=/app/.var/keys \
    DJANGO_SETTINGS_MODULE=auth.config.settings \
    LOG_FORMAT=json \
    PORT=8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Only the packages pyproject.toml declares (see .dockerignore); the code runs from /app.
COPY --chown=root:root apps ./apps
COPY --chown=root:root kit ./kit
COPY --chown=root:root auth ./auth
COPY --chown=root:root contracts ./contracts
COPY --chown=root:root gateway ./gateway
COPY --chown=root:root observability ./observability
COPY --chown=root:root pyproject.toml ./
COPY --from=assets --chown=root:root /out/node_modules ./.var/assets/node_modules
# Byte-compile once at build time (the root filesystem may be read-only at run time); the only
# writable place the app owns is the development key directory (a volume in docker-compose).
RUN python -m compileall -q /app/apps /app/kit /app/auth /app/contracts /app/gateway /app/observability \
    && mkdir -p /app/.var/keys && chown app:app /app/.var/keys

USER 10001:10001
EXPOSE 8000

# Each process sets PORT to the port it listens on; the auth relay has no HTTP port and turns
# the check off (docker-compose: `healthcheck: disable: true`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

CMD ["uvicorn", "gateway.main:app", "--host", "0.0.0.0", "--port", "8000"]
