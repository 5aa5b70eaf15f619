# `make run` and `make test` do all the set-up on a machine with only Python 3.11.
SHELL := /bin/bash
# The interpreter itself, not a version manager's shim: a shim may run hooks after `pip install` (pyenv
# rehashes its shims), and those race when `sam build` runs the build targets below in parallel.
ifndef PYTHON
PYTHON := $(shell $$(command -v python3.11 || command -v python3) -c 'import sys; print(sys.executable)')
endif
VENV := .venv
# The project, its tests and the functions' bytecode (which Lambda's python3.11 runtime only uses if it matches) all
# need Python 3.11.
REQUIRE_PYTHON_311 := $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version)'
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test install lint typecheck check unit e2e bench export lock clean

run: $(STAMP)
	$(BIN)/mlops run

test: $(STAMP) lint typecheck check unit e2e

install: $(STAMP)

# The lock pins every package; the project itself installs editable so `mlops` is on the venv's PATH.
$(STAMP): pyproject.toml requirements/dev.lock
	$(REQUIRE_PYTHON_311)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy contract mlops workflows emulator functions ml

check: $(STAMP)
	$(BIN)/mlops check

unit: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not e2e" tests

e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e tests

# Every benchmark runs even when an earlier one misses its target; the exit status says whether all met theirs.
bench: $(STAMP)
	missed=""; for b in bench/*.py; do $(BIN)/python $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "missed their target or failed:$$missed"; exit 1; fi

export: $(STAMP)
	$(BIN)/mlops export

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Every package of the development environment, pinned: `make` installs from this file.\n# Regenerate after changing pyproject.toml: make lock' > requirements/dev.lock

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

# sam build (template.yaml, MlCodePublisherFunction: BuildMethod makefile, run from the project root): the bundle
# carries the publisher, ml/ and the image URI table, because the custom resource publishes ml/ from its own code.
.PHONY: build-MlCodePublisherFunction
build-MlCodePublisherFunction:
	test -n "$(ARTIFACTS_DIR)"
	$(REQUIRE_PYTHON_311)
	cp functions/ml_code_publisher/*.py "$(ARTIFACTS_DIR)/"
	mkdir -p "$(ARTIFACTS_DIR)/ml"
	cp ml/*.py "$(ARTIFACTS_DIR)/ml/"
	cp statemachines/image-uris.json "$(ARTIFACTS_DIR)/"
	$(PYTHON) -m compileall -q --invalidation-mode checked-hash "$(ARTIFACTS_DIR)" >/dev/null

# sam build of the event and glue functions: their code and functions/requirements.txt for the python3.11 runtime,
# minus boto3, botocore and the packages only they need, which the runtime provides: that keeps each package
# small and leaves the runtime's botocore with the urllib3 it was released with.
# The package ships compiled bytecode because /var/task is read-only: without it every cold start compiles
# pydantic, Powertools and the X-Ray SDK from source again. Hash-checked pycs stay valid whatever timestamps
# the zip gives the sources, and a source edited after the build is compiled afresh instead of shadowed.
RUNTIME_PROVIDED := boto3 botocore s3transfer urllib3 dateutil python_dateutil six
LAMBDA_FUNCTIONS := RetrainOnDriftFunction RetrainOnNewDataFunction EndpointReaperFunction EvaluationReportFunction \
	SmokeTestFunction
.PHONY: $(addprefix build-,$(LAMBDA_FUNCTIONS))
$(addprefix build-,$(LAMBDA_FUNCTIONS)):
	test -n "$(ARTIFACTS_DIR)"
	$(REQUIRE_PYTHON_311)
	cp functions/*.py "$(ARTIFACTS_DIR)/"
	cp -r functions/common "$(ARTIFACTS_DIR)/"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$(ARTIFACTS_DIR)" \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all: \
		-r functions/requirements.txt
	cd "$(ARTIFACTS_DIR)" && rm -rf bin six.py $(RUNTIME_PROVIDED) $(addsuffix -*.dist-info,$(RUNTIME_PROVIDED))
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode checked-hash "$(ARTIFACTS_DIR)" >/dev/null
