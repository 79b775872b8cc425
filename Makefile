# Zhouxin — every stage is a target; `make help` lists them. No logic here: the CLI does the work.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
ZX := $(BIN)/zhouxin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export ZHOUXIN_PERSON_SALT ?= local-development-salt-not-secret

.PHONY: help install run simulate ingest quarantine calibrate data-dictionary features features-get serve bento contract test test-all lint typecheck bench bench-features bench-redis bench-serving bench-training bench-scoring bench-large clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## create .venv from the lock file (uv sync --frozen)

run: install ## the main job end to end on the embedded defaults: simulate, ingest, features, reports
	$(ZX) run

simulate: install ## simulate the default world (raw deliveries + truth/) under the workspace
	$(ZX) data simulate

ingest: install ## validate, quarantine and land every delivery into the warehouse (+ data-quality report)
	$(ZX) data ingest

quarantine: install ## quarantine counts by department, rule and month
	$(ZX) data quarantine --summary

calibrate: install ## print and store the calibration report of the last simulated world
	$(ZX) data calibrate

features: install ## marts, Feast sources and registry, bulk online materialization (local profile)
	$(ZX) features build

features-get: install ## one firm's online feature vector: make features-get USCC=913309...
	$(ZX) features get --uscc $(USCC)

serve: install ## the bank-facing BentoML service on the workspace (WORKERS=2 for two workers)
	$(ZX) serve start $(if $(WORKERS),--workers $(WORKERS),)

bento: install ## build the service as a Bento (offline; models come from the MLflow registry at start)
	PATH=$(CURDIR)/$(TOOLS)/bin:$$PATH $(BIN)/bentoml build .

contract: install ## schemathesis against the running service's own OpenAPI, plus the HTTP end-to-end tests
	$(BIN)/pytest -q tests/serving/test_service_http.py

data-dictionary: install ## generate the human data dictionary from configs/catalog.yaml
	$(ZX) catalog dictionary

test: install ## the default test suite (fast unit, property and small-world integration tests)
	$(BIN)/pytest -q -n 2 --dist loadgroup

test-all: install ## every test, slow ones included
	$(BIN)/pytest -q -n 2 --dist loadgroup -m ""

lint: install ## ruff
	$(BIN)/ruff check .

typecheck: install ## mypy on the shared kernel
	$(BIN)/mypy kernel

bench: install ## benchmarks on the default world; figures written under benchmarks/results/
	$(BIN)/python benchmarks/bench_simulate.py --enterprises 5000
	$(BIN)/python benchmarks/bench_ingest.py --enterprises 5000

bench-features: install ## feature-store benchmarks on the built workspace (run `make run` first)
	$(BIN)/python benchmarks/bench_features.py

bench-training: install ## credit-rating training vs raw LightGBM on the same matrix (built workspace)
	$(BIN)/python benchmarks/bench_training.py

bench-redis: install ## full-population Redis write: our RESP frames vs a redis-py pipeline, same layout (built workspace)
	$(BIN)/python benchmarks/bench_redis_write.py

bench-scoring: install ## nightly scoring of 100k firm-months with the champion (built workspace)
	$(BIN)/python benchmarks/bench_scoring.py

bench-serving: install ## /v1/score load (1 and 2 workers) and a 10-minute soak on the built workspace
	$(BIN)/python benchmarks/bench_serving.py

bench-large: install ## benchmarks on a world of >= 20M records
	$(BIN)/python benchmarks/bench_simulate.py --enterprises 60000 --label large --no-oracle
	$(BIN)/python benchmarks/bench_ingest.py --enterprises 60000 --label large

clean: ## remove the workspace (generated data), keep the virtual environment
	rm -rf workspace
