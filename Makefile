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
# uv installs the locks (seconds where pip takes minutes); pip, which every Python 3.11 has, installs uv itself, pinned,
# into a folder of its own in the venv (uv is one binary: nothing imports it).
UV_VERSION := 0.13.9
UV_DIR := $(VENV)/uv
UV_STAMP := $(UV_DIR)/.uv-$(UV_VERSION)
UV_BIN := $(UV_DIR)/bin/uv
# uv reads none of pip's configuration: this wrapper hands it the indexes and wheel folders pip is configured with.
UV := $(PYTHON) requirements/uv_with_pip_index.py $(UV_BIN)
# `make run` installs what the twin needs (run.lock), `make test` adds what the checks and tests need (dev.lock).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# The job environment: what the framework container the twin stands for has (requirements/job-container.txt, locked in
# job.lock), apart from the dev venv; the twin runs every job and model server with its interpreter.
JOB_VENV := .venv-job
JOB_STAMP := $(JOB_VENV)/.installed-job
JOB_PYTHON_VERSION := $(shell sed -n 's/^\# python: //p' requirements/job-container.txt)
# The container's Python where this machine has it (on PATH or under pyenv, not through pyenv's shim, which fails
# for a version that is not pyenv's global one); otherwise the job environment is made on $(PYTHON), and says so.
ifndef JOB_PYTHON
JOB_PYTHON := $(shell for candidate in python$(JOB_PYTHON_VERSION) $$HOME/.pyenv/versions/$(JOB_PYTHON_VERSION).*/bin/python$(JOB_PYTHON_VERSION); do \
	"$$candidate" -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
endif

export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test install install-run sandbox-tool lint typecheck check unit e2e bench export lock first-run-imports clean

# uv installs run.lock without compiling it (pip compiled every module it installed): the first `make run` writes the
# bytecode of just the modules it imports, once, instead of each of its processes (twin, jobs, model server) compiling
# them again. Bytecode of the project's own code lands in __pycache__/ folders (ignored by git and by the archives the
# twin and the publisher build); `make clean` removes them.
run: export PYTHONDONTWRITEBYTECODE :=
run: $(RUN_STAMP) sandbox-tool
	$(BIN)/mlops run

test: $(DEV_STAMP) lint typecheck check unit e2e

# The development environment: everything `make test` needs.
install: $(DEV_STAMP) sandbox-tool

install-run: $(RUN_STAMP) sandbox-tool

# Bubblewrap runs each job in SageMaker's container file system (emulator/sagemaker_local/sandbox.py). Installed where
# missing and apt-get can be used as root; otherwise the twin falls back to rewriting paths and says so when it runs.
sandbox-tool:
	@command -v bwrap >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && \
				apt-get install -y -qq bubblewrap >/dev/null 2>&1; } || echo "bubblewrap could not be installed: the twin runs jobs unsandboxed"; \
		else echo "bwrap is missing (Debian package bubblewrap; installing it needs root): the twin runs jobs unsandboxed"; fi; }

# The venv starts without pip (ensurepip costs seconds): the interpreter's own pip installs uv, and uv the rest.
# `--target` is one pip process (`--python` starts a second pip in the venv's interpreter); it ignores what the
# interpreter has installed, so `--no-warn-conflicts` skips pip's check of every package the interpreter has, which
# is about a second on a well-stocked Python and says nothing about uv, which has no dependencies. rm -rf: over a
# folder left by an interrupted install, pip would keep the old files ("Target directory ... already exists").
$(UV_STAMP):
	$(REQUIRE_PYTHON_311)
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	rm -rf $(UV_DIR)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --target $(UV_DIR) uv==$(UV_VERSION)
	touch $(UV_STAMP)

# The locks pin every package; the project itself installs editable so `mlops` is on the venv's PATH. uv installs
# additively: `make run` then `make test` only adds dev.lock's packages.
# `pip sync`: the job environment holds exactly job.lock, nothing an earlier lock left behind.
# The job environment's bytecode is written by the twin's first run (emulator/sagemaker_local/job_warmup.py), or by
# $(DEV_STAMP) for the tests, not here: a warm-cache install stays at a second or two.
$(JOB_STAMP): $(UV_STAMP) requirements/job.lock
	@test -n "$(JOB_PYTHON)" || echo "Python $(JOB_PYTHON_VERSION), the container's, is not on this machine: the job environment uses $(PYTHON)"
	$(UV_BIN) venv --quiet --allow-existing --python $(or $(JOB_PYTHON),$(PYTHON)) $(JOB_VENV)
	$(UV) pip sync --quiet --python $(JOB_VENV)/bin/python requirements/job.lock
	touch $(JOB_STAMP)

# The job environment installs while the run venv does (a second make, in the background: two uv processes, one a
# core), and this recipe waits for it: either install failing fails it, with uv's message. The job environment is
# made only here, so no other make can install it at the same time (`make -j`); a changed job.lock redoes this recipe,
# whose run.lock install then finds everything in place.
# datasets.lock and the project install in one uv call, both without dependencies (run.lock holds the project's); uv
# builds the project directly with uv_build, the backend it carries, so no build environment is made for it.
JOB_MAKE := $(MAKE) --no-print-directory PYTHON=$(PYTHON) JOB_PYTHON=$(JOB_PYTHON)
$(RUN_STAMP): $(UV_STAMP) pyproject.toml requirements/run.lock requirements/datasets.lock requirements/job.lock
	{ $(JOB_MAKE) -q $(JOB_STAMP) || $(JOB_MAKE) $(JOB_STAMP); } & job=$$!; \
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/run.lock && \
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -r requirements/datasets.lock -e .; \
	run=$$?; wait $$job && exit $$run
	touch $(RUN_STAMP)

# The checks and tests run with PYTHONDONTWRITEBYTECODE, so every installed module is compiled here, as pip did
# (compileall skips what an earlier `make run` compiled; uv's --compile-bytecode would only cover dev.lock's additions;
# the SyntaxWarnings it would print are third-party code's, which pip compiled silently).
$(DEV_STAMP): $(RUN_STAMP) requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/python -W ignore::SyntaxWarning -m compileall -q -j 0 $(VENV)/lib/python3.11/site-packages
	$(JOB_VENV)/bin/python -W ignore::SyntaxWarning -m compileall -q -j 0 $(JOB_VENV)/lib/python*/site-packages
	touch $(DEV_STAMP)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy contract mlops workflows emulator functions

check: $(DEV_STAMP)
	$(BIN)/mlops check

unit: $(DEV_STAMP) sandbox-tool
	$(BIN)/pytest -q -n 2 -m "not e2e" tests

e2e: $(DEV_STAMP) sandbox-tool
	$(BIN)/pytest -q -m e2e tests

# Every benchmark runs even when an earlier one misses its target; the exit status says whether all met theirs.
bench: $(DEV_STAMP)
	missed=""; for b in bench/*.py; do $(BIN)/python $$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "missed their target or failed:$$missed"; exit 1; fi

export: $(DEV_STAMP)
	$(BIN)/mlops export

# The library modules a first `mlops run` compiles ahead of its imports (emulator/commands/first_run_bytecode.py): redo
# after a lock or the twin's imports change (tests/emulator/test_first_run_bytecode.py says when).
first-run-imports: $(DEV_STAMP)
	$(BIN)/python -m emulator.commands.first_run_bytecode

# Regenerates both locks from pyproject.toml's extras, keeping every pin the locks already hold (uv prefers the versions
# in the output file): run.lock pins the `run` extra, dev.lock what the `dev` extra adds to it, with run.lock's pins.
LOCK := $(UV) pip compile --quiet --python $(BIN)/python --no-header --no-annotate
lock: $(UV_STAMP)
	$(LOCK) --extra run pyproject.toml -o requirements/run.lock
	sed -i '1i # What `mlops run` and the local twin need, every package pinned: `make run` installs this file.\n# Regenerate after changing pyproject.toml: make lock' requirements/run.lock
	$(LOCK) --extra dev -c requirements/run.lock pyproject.toml -o requirements/dev.lock
	{ printf '%s\n' '# What the checks and tests add to run.lock, every package pinned: `make test` installs this file.' \
		'# Regenerate after changing pyproject.toml: make lock' '-r run.lock'; \
		grep -vxFf <(grep -v '^#' requirements/run.lock) requirements/dev.lock || [ $$? -eq 1 ]; } > requirements/dev.lock.new
	mv requirements/dev.lock.new requirements/dev.lock
	{ printf '%s\n' '# The job environment (.venv-job), every package pinned: requirements/job-container.txt locked; `make run` and' \
		'# `make test` install it. Regenerate after changing job-container.txt: make lock'; \
		$(LOCK) --python-version $(JOB_PYTHON_VERSION) requirements/job-container.txt; } > requirements/job.lock.new
	mv requirements/job.lock.new requirements/job.lock

clean:
	rm -rf $(VENV) $(JOB_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f requirements/dev.lock.new requirements/job.lock.new

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
	# The commit lineage records (SourceCommit): sam build runs here, in the checkout, so git can tell.
	$(PYTHON) -m contract.source_commit . > "$(ARTIFACTS_DIR)/build-info.json"
	$(PYTHON) -m compileall -q --invalidation-mode checked-hash "$(ARTIFACTS_DIR)" >/dev/null

# sam build of the event and glue functions: their code and functions/requirements.txt for the python3.11 runtime,
# minus boto3, botocore and the packages only they need, which the runtime provides: that keeps each package
# small and leaves the runtime's botocore with the urllib3 it was released with.
# The package ships compiled bytecode because /var/task is read-only: without it every cold start compiles
# pydantic, Powertools and the X-Ray SDK from source again. Hash-checked pycs stay valid whatever timestamps
# the zip gives the sources, and a source edited after the build is compiled afresh instead of shadowed.
RUNTIME_PROVIDED := boto3 botocore s3transfer urllib3 dateutil python_dateutil six
LAMBDA_FUNCTIONS := RetrainOnDriftFunction RetrainOnNewDataFunction EndpointReaperFunction EvaluationReportFunction \
	SnapshotTrainingDataFunction LineageManifestFunction SmokeTestFunction MonitoringWindowFunction \
	PublishMonitoringMetricsFunction ModelCardFunction AuditRecorderFunction ApprovalTagsFunction
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
