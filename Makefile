# Everyday verbs; each is a thin wrapper over a `uv run` command that also works by itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MODEL_DIR ?= artifacts/model
REAL_DATA ?= $(firstword $(wildcard data/diabetes_012_health_indicators_BRFSS2015.csv data/diabetes_012_health_indicators_BRFSS2015.csv.gz) data/diabetes_012_health_indicators_BRFSS2015.csv)
SYNTHETIC_DATA ?= data/synthetic.csv.gz
DATA_DIR ?= data
# A mirror of the real file for `make demo` (empty: Kaggle).
DATA_URL ?=
API_PORT ?= 8000
UI_PORT ?= 8501
# The batch tab's upload limit in MB: what UI_BATCH_MAX_ROWS (100,000) rows need (frontend/settings.py).
UI_UPLOAD_MB ?= 20
MLFLOW_PORT ?= 5000
# LightGBM's OpenMP threads sleep when idle instead of spinning (training and scoring on a busy or shared machine:
# 150 rounds took 9.9 s instead of 0.5 s at load 3.5); set OMP_WAIT_POLICY=ACTIVE for a dedicated machine.
export OMP_WAIT_POLICY ?= PASSIVE
# glibc gives blocks of 128 KiB or more back to the system when freed, as the image does (Dockerfile): the service
# then returns a flood's memory after it.
export MALLOC_MMAP_THRESHOLD_ ?= 131072

.PHONY: help install test test-quick lint format typecheck data synthetic train demo-model demo serve ui mlflow-ui docs image image-test bench

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: ## create the environment from uv.lock, compiled to bytecode once (see README, Tests)
	uv sync --frozen --compile-bytecode

# Two pytest-xdist workers, each taking whole modules (their servers and trained models start once); PYTEST_WORKERS=0
# runs the tests in this process, one after another. The quick loop takes three: its service tests mostly wait on
# the wire (deadlines, drains, a stop), and a third worker uses the cores meanwhile (2 cores, quiet: 136 s with two
# workers, 113 s with three). The whole suite keeps two: its image builds and browsers use the cores themselves.
PYTEST_WORKERS ?= 2
QUICK_WORKERS ?= 3
# Python may cache what it compiles (__pycache__/, git-ignored): with PYTHONDONTWRITEBYTECODE set, every worker and
# every process the tests start compiled the project and rewrote the test modules again (the quick loop: 205 s of
# CPU instead of 157 s).
unexport PYTHONDONTWRITEBYTECODE

test: ## the README's test command (what CI runs): the whole suite
	uv run pytest -n $(PYTEST_WORKERS) --dist loadscope

test-quick: ## the developer's loop: ml, service and frontend tests and the code guards (README, Tests)
	uv run pytest -n $(QUICK_WORKERS) --dist loadscope -m "not container and not browser and not end_to_end" tests/service tests/ml tests/frontend tests/test_layers.py tests/test_function_size.py tests/test_constants_are_read.py

lint: ## ruff lint + format check, mypy, the layer contracts (import-linter)
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports

format: ## apply ruff fixes and formatting
	uv run ruff check --fix .
	uv run ruff format .

typecheck: ## mypy (strict) on ml, service, frontend, stacks
	uv run mypy

data: ## download the real file from Kaggle via kagglehub (a mirror: uv run python -m ml.download --url URL)
	uv run python -m ml.download --output-dir data

synthetic: ## write a synthetic file with the real schema
	uv run python -m ml.synthetic --rows 20000 --seed 0 --output $(SYNTHETIC_DATA)

train: ## train on the real file (data/), log to MLflow, write the artifact
	uv run python -m ml.train --data $(REAL_DATA) --output $(MODEL_DIR)

demo-model: ## the model make demo serves: the real file if it can be had (else SYNTHETIC data, loudly), trained when needed
	@uv run python -m ml.demo --data-dir "$(DATA_DIR)" --model-dir "$(MODEL_DIR)" $(if $(DATA_URL),--url "$(DATA_URL)")

demo: demo-model ## make sure of the model (demo-model), then serve the API (:8000) and the UI (:8501) until Ctrl-C
	@echo "API: http://127.0.0.1:$(API_PORT)/docs   UI: http://127.0.0.1:$(UI_PORT)   (Ctrl-C stops both)"
	@trap 'trap - INT TERM EXIT; kill $$api $$ui 2>/dev/null; wait $$api $$ui 2>/dev/null; exit 0' INT TERM EXIT; \
	MODEL_URI="$(MODEL_DIR)" SERVICE_PORT=$(API_PORT) uv run python -m service & api=$$!; \
	API_URL="http://127.0.0.1:$(API_PORT)" uv run streamlit run frontend/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(UI_PORT) --browser.gatherUsageStats false \
	  --server.maxUploadSize $(UI_UPLOAD_MB) & ui=$$!; \
	wait $$api $$ui

serve: ## serve the API on 127.0.0.1:8000 (python -m service; its settings are SERVICE_* variables)
	MODEL_URI="$(MODEL_DIR)" SERVICE_PORT=$(API_PORT) uv run python -m service

ui: ## serve the Streamlit UI on 127.0.0.1:8501 against API_URL
	API_URL="$${API_URL:-http://127.0.0.1:$(API_PORT)}" uv run streamlit run frontend/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(UI_PORT) --browser.gatherUsageStats false \
	  --server.maxUploadSize $(UI_UPLOAD_MB)

mlflow-ui: ## open the MLflow UI on the project's tracking store (MLFLOW_TRACKING_URI, default sqlite:///mlflow.db)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false uv run mlflow ui \
	  --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port $(MLFLOW_PORT)

docs: ## build the Sphinx docs (executes the notebooks)
	uv run sphinx-build -W -b html docs docs/_build/html

image: demo-model ## build the api (with artifacts/model) and ui images (Docker with BuildKit)
	docker build --target api -t diabetes-status-api .
	docker build --target ui -t diabetes-status-ui .

bench: ## model quality on the real file, then the serving benchmark
	uv run python -m tests.benchmarks.model_quality
	uv run python -m tests.benchmarks.serve --model $(MODEL_DIR)

image-test: ## build and run the images offline with buildah/podman (the container tests)
	uv run pytest -m container
