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

.PHONY: run test test-postgres init openapi clean bench translations

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

# lint-imports: the layout's contracts (setup.cfg [importlinter], DESIGN §7).
test: $(BIN)/vouchers
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# The whole suite again, every test database a PostgreSQL database.
test-postgres: $(BIN)/vouchers
	$(BIN)/lint-imports --no-cache
	VOUCHERS_TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" $(BIN)/python -m pytest

# The console's catalogues: extract its strings, merge them into zh and en, compile
# (the compiled .mo files are committed; a test fails when they drift from the .po).
TRANSLATIONS := voucher_service/console/translations
translations: $(BIN)/vouchers
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -o $(TRANSLATIONS)/messages.pot --no-location --sort-output .
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel -q compile -d $(TRANSLATIONS)

# Regenerate schemas/openapi.json after changing the API (a test fails when it drifts).
openapi: $(BIN)/vouchers
	$(BIN)/python -m voucher_service.http.openapi_dump schemas/openapi.json

# Benchmarks, not tests (docs/performance.md): every script in bench/ with modest
# defaults, each printing its figures against a baseline measured in the same run
# (JSON copies in bench/.cache/results/). The first run builds and caches a
# 1M-entry ledger in bench/.cache (about 3 minutes, plus 1 minute to load it into
# PostgreSQL); the whole target takes about 17-20 minutes on 2 cores. The
# end-to-end write benchmarks (bench_writes, bench_checkpoint_readers) need wrk
# (Debian: apt-get install -y wrk) and are skipped without it; the PostgreSQL
# parts are skipped when none answers at VOUCHERS_BENCH_POSTGRES_URL (default
# $(TEST_POSTGRES_URL)).
# `$(BIN)/python bench/ledger_data.py --clean` drops the caches.
bench: $(BIN)/vouchers
	$(BIN)/python bench/ledger_data.py --entries 1000000 --postgres
	@if command -v wrk >/dev/null 2>&1; then $(BIN)/python bench/bench_writes.py --duration 10; \
	  else echo "bench_writes.py SKIPPED: it needs wrk (Debian: apt-get install -y wrk)"; fi
	@if command -v wrk >/dev/null 2>&1; then $(BIN)/python bench/bench_checkpoint_readers.py; \
	  else echo "bench_checkpoint_readers.py SKIPPED: it needs wrk (Debian: apt-get install -y wrk)"; fi
	$(BIN)/python bench/bench_merkle.py
	$(BIN)/python bench/bench_verify.py --entries 300000
	$(BIN)/python bench/bench_reconciliation.py --repeat 2
	$(BIN)/python bench/bench_entries.py
	$(BIN)/python bench/bench_memory.py

clean:
	rm -rf $(VENV) instance
