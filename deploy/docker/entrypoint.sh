#!/bin/sh
# One image, one process per container: the first argument says which.
#   web      Daphne on :8000 (behind nginx; X-Forwarded-* trusted)
#   worker   Celery on the default and billing queues
#   gpu      Celery on the gpu queue: models resident, one process per accelerator
#   beat     Celery beat (exactly one in a deployment)
#   migrate  database migrations, then model registration (run once per release, before the rest)
#   models   prepare the bundled models into PARLEY_VAR_DIR (a no-op when they are ready)
# Anything else runs as given (e.g. `python manage.py createsuperuser`).
set -eu
cd /app

# The CUDA image's CTranslate2 finds cuBLAS and cuDNN in the NVIDIA wheels torch brought along.
if [ "${PARLEY_IMAGE_VARIANT:-cpu}" = cuda ]; then
    NVIDIA_LIBS=$(python -c 'import glob, os, site; print(":".join(sorted(glob.glob(os.path.join(site.getsitepackages()[0], "nvidia", "*", "lib")))))')
    export LD_LIBRARY_PATH="${NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

prepare_models() {
    # Idempotent: checksums are verified and nothing is redone when the cache in /data is valid.
    if [ "${PARLEY_IMAGE_VARIANT:-cpu}" = cuda ]; then
        python manage.py models_install --no-register --no-engine
    else
        python manage.py models_install --no-register
    fi
}

process="${1:-web}"
export PARLEY_PROCESS="$process"
case "$process" in
    web)
        # No --proxy-headers: Daphne would believe the client-written, leftmost X-Forwarded-For entry
        # from any peer. Parley reads it itself, from PARLEY_TRUSTED_PROXIES only (common/proxy.py).
        exec daphne -b 0.0.0.0 -p "${PORT:-8000}" config.asgi:application ;;
    worker)
        exec celery -A config worker -Q default,billing -n "default@%h" \
            --concurrency="${CELERY_CONCURRENCY:-2}" --loglevel=INFO ;;
    gpu)
        prepare_models
        exec celery -A config worker -Q "${PARLEY_GPU_QUEUE:-gpu}" -n "gpu@%h" --pool=threads \
            --concurrency="${CELERY_CONCURRENCY:-16}" --prefetch-multiplier=1 --loglevel=INFO ;;
    beat)
        exec celery -A config beat --scheduler django_celery_beat.schedulers:DatabaseScheduler --loglevel=INFO ;;
    migrate)
        python manage.py migrate --noinput
        # Static files for nginx (compose mounts a shared volume at STATIC_ROOT).
        python manage.py collectstatic --noinput -v 0
        # Prepares the models into the shared volume if needed, then registers them and their routes.
        if [ "${PARLEY_IMAGE_VARIANT:-cpu}" = cuda ]; then exec python manage.py models_install --no-engine; fi
        exec python manage.py models_install ;;
    models)
        prepare_models ;;
    *)
        exec "$@" ;;
esac
