# The two commands: `make demo` runs the main job, `make test` runs the tests.
# Each creates .venv and installs what it needs first (idempotent).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup-venv.sh

demo: setup
	$(BIN)/sublab demo

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
