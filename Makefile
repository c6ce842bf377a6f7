# One command runs the stack, one command tests it. Both set themselves up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MNIST_PATH ?=
MODEL_DIR ?= models/mnist

.PHONY: setup run test lint compose-check clean

setup: $(STAMP)

$(STAMP): requirements-*.txt
	@echo "==> Creating $(VENV) and installing pinned requirements"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-serving-nodeps.txt
	touch $(STAMP)

run: setup
	$(BIN)/python -m scripts.local_stack --model-dir $(MODEL_DIR) $(if $(MNIST_PATH),--data $(MNIST_PATH))

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The compose stack built and run for real, with the local model server in place of
# tensorflow/serving (installs Docker where missing; needs root and MNIST_PATH).
compose-check: setup
	scripts/docker_host.sh
	$(BIN)/python -m scripts.compose_check --data $(MNIST_PATH)

clean:
	rm -rf $(VENV) .venv-deploy .venv-serving-image .pytest_cache .mypy_cache .ruff_cache
