# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Development only: production sets its own VOUCHERS_KEY_PASSPHRASE (see README).
DEV_PASSPHRASE := dev-only-passphrase-change-me

# The PostgreSQL the suite also runs on (CI starts one where none answers).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres init openapi clean

$(BIN)/vouchers: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

init: $(BIN)/vouchers
	@if [ -z "$$VOUCHERS_KEY_PASSPHRASE" ]; then \
	  echo "NOTE: VOUCHERS_KEY_PASSPHRASE is not set: using the development passphrase '$(DEV_PASSPHRASE)'."; \
	  echo "      Never use it for real keys; set VOUCHERS_KEY_PASSPHRASE in production."; fi
	VOUCHERS_KEY_PASSPHRASE="$${VOUCHERS_KEY_PASSPHRASE:-$(DEV_PASSPHRASE)}" $(BIN)/vouchers init

run: init
	VOUCHERS_KEY_PASSPHRASE="$${VOUCHERS_KEY_PASSPHRASE:-$(DEV_PASSPHRASE)}" \
	  GUNICORN_BIND=$(HOST):$(PORT) GUNICORN_WORKERS=$${GUNICORN_WORKERS:-2} VOUCHERS_LOG_FORMAT=$${VOUCHERS_LOG_FORMAT:-console} \
	  $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(BIN)/vouchers
	$(BIN)/python -m pytest

# The whole suite again, every test database a PostgreSQL database.
test-postgres: $(BIN)/vouchers
	VOUCHERS_TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" $(BIN)/python -m pytest

# Regenerate schemas/openapi.json after changing the API (a test fails when it drifts).
openapi: $(BIN)/vouchers
	$(BIN)/python -m voucher_service.openapi_dump schemas/openapi.json

clean:
	rm -rf $(VENV) instance
