# The README's two commands: `make demo` (the main job) and `make test` (the suite).
# Both create the virtual environment when it is missing.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hf_nvib-installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test lint format bench env clean

env: $(STAMP)

# torch==2.13.0 is installed first: any other torch requirement pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hf-nvib demo $(DEMO_ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hf_nvib tests scripts bench
	$(BIN)/ruff format --check hf_nvib tests scripts bench

format: $(STAMP)
	$(BIN)/ruff check --fix hf_nvib tests scripts bench
	$(BIN)/ruff format hf_nvib tests scripts bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
