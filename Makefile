# Two commands for a fresh machine:  make run  (demo on SQLite + the Stripe sandbox)  and  make test.
VENV   ?= .venv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
PYTHON ?= python3
# make run PORT=8080 HOST=0.0.0.0: where `tutorbook serve` listens (the Stripe sandbox: TUTORBOOK_SANDBOX_PORT)
HOST   ?= 127.0.0.1
PORT   ?= 8000
# make test's pytest-xdist workers (0: one process, as before); the drills stay on one of them
TEST_WORKERS ?= 2

.PHONY: run test test-service lint bench mutation shifted-clock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

run: $(STAMP)
	$(VENV)/bin/tutorbook demo-data
	$(VENV)/bin/tutorbook serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	scripts/ensure-chromium
	scripts/ensure-pgbouncer
	scripts/ensure-haproxy
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The service-level tier alone (tests/service, marker `service`): the booking, payment and refund
# rules through the use cases and flows with a fake Stripe gateway, no HTTP, on SQLite: seconds.
# `make test` runs it too, on both databases.
test-service: $(STAMP)
	TUTORBOOK_TEST_DATABASES=sqlite $(VENV)/bin/pytest -q -m service tests/service $(PYTEST_ARGS)

# Style (ruff), the import contracts (import-linter, [tool.importlinter]) and types (mypy,
# [tool.mypy]) in pyproject.toml; CI runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py

# Mutation testing of the money and status modules (scripts/mutation.toml; docs/RELIABILITY.md):
# every mutant of every module, one module at a time (policy.py alone: 10-25 minutes on the shared
# 2 cores; all ten modules: hours, not yet run in full).
# `make mutation MUTATION_ARGS="policy lifecycle"` for some modules only.
mutation: $(STAMP)
	nice -n 10 $(VENV)/bin/python scripts/mutation.py --check $(MUTATION_ARGS)

# The money tests with the clock at 00:15, 09:59 and 23:45 UTC, each in a zone far from UTC.
shifted-clock: $(STAMP)
	scripts/shifted-clock

clean:
	rm -rf $(VENV) var
