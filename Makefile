# One command runs the stack, one command tests it. Both set themselves up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MNIST_PATH ?=
MODEL_DIR ?= models/mnist
# The TensorFlow inside the pinned tensorflow/serving image, for `make check-export`.
SERVING_TF := .venv-serving-image
TF_PIN = $(shell sed -n 's/^tensorflow-cpu==//p' requirements-serving-image-tf.txt)
EXPECT_DIGIT ?=

.PHONY: setup run test lint check-export compose-check clean

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

# Loads the newest export under MODEL_DIR as TF Serving does, in the image's TensorFlow.
check-export: $(SERVING_TF)/.installed
	$(SERVING_TF)/bin/python -m scripts.check_export_in_serving_tf --model-dir $(MODEL_DIR) \
	  $(if $(EXPECT_DIGIT),--expect-digit $(EXPECT_DIGIT))

# tensorflow-serving-api holds the warm-up records' protos; it asks for the `tensorflow` wheel,
# which tensorflow-cpu already provides, hence --no-deps.
$(SERVING_TF)/.installed: requirements-serving-image-tf.txt
	$(PYTHON) -m venv $(SERVING_TF)
	$(SERVING_TF)/bin/pip install --quiet -r requirements-serving-image-tf.txt
	$(SERVING_TF)/bin/pip install --quiet --no-deps tensorflow-serving-api==$(TF_PIN)
	touch $@

# The compose stack built and run for real, with the local model server in place of
# tensorflow/serving (installs Docker where missing; needs root and MNIST_PATH).
compose-check: setup
	scripts/docker_host.sh
	$(BIN)/python -m scripts.compose_check --data $(MNIST_PATH)

clean:
	rm -rf $(VENV) .venv-deploy $(SERVING_TF) .pytest_cache .mypy_cache .ruff_cache
