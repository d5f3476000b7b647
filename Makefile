# The two commands of README.md: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test browser check deploy-check lint format schema clean bench

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

## make run: web + worker on the embedded default (SQLite, filesystem broker, local driver), with the
## development settings (a random secret key and token pepper per checkout, kept in var/)
run: $(STAMP)
	@DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.development} $(BIN)/python -m config.devserver

## make test: the whole test suite against whatever DATABASE_URL / CELERY_BROKER_URL say (default: embedded)
test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; exit $$status

## The browser tests drive Debian's chromium; installed here when we may (root with apt-get), as in CI.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "No chromium: the browser tests (tests/browser) will be skipped. Install Debian's chromium to run them."; fi; }

## make bench: docs/benchmarks.md's figures: gunicorn, Celery, PostgreSQL and Redis on this machine, loaded
## from another process. Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; see bench/run.py).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make check: lint, migrations in step with models, a clean OpenAPI schema equal to the committed openapi.yaml, deploy recipes
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file var/openapi.generated.yaml
	@diff -u openapi.yaml var/openapi.generated.yaml || { \
	  echo "The API contract changed: openapi.yaml is not what the code generates. If that is meant, run 'make schema' and commit openapi.yaml."; exit 1; }
	$(MAKE) --no-print-directory deploy-check

## make deploy-check: Dockerfile, compose.yaml, Procfile and deploy/k8s checked offline (deploy/check says how)
deploy-check: $(STAMP)
	BIN=$(BIN) deploy/check

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: $(STAMP)
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file openapi.yaml

## make clean: stop this checkout's workspace machines (by its own records, never another checkout's),
## then remove var/ and the venv. Without a usable venv the machines cannot be asked: say so, go on.
clean:
	@if [ -x $(BIN)/python ]; then \
	  DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.development} \
	    $(BIN)/python manage.py machines stop --all || echo "Some machines could not be stopped (see above)."; \
	elif [ -d var/local-machines/machines ]; then \
	  echo "No $(BIN)/python: this checkout's workspace machines (if any run) were not stopped."; \
	fi
	rm -rf var/ $(VENV)
