# oxoflow-notify: every command sets itself up on a fresh machine (venv, pinned packages).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# sam build of a python3.13 layer needs python3.13 on PATH; where pyenv has one, put it there.
PY313 := $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | tail -n 1)
SAM_ENV := SAM_CLI_TELEMETRY=0 $(if $(PY313),PYENV_VERSION=$(shell pyenv version-name 2>/dev/null | cut -d: -f1):$(PY313))
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: up down env examples bench soak help demo test test-unit test-integration test-e2e lint format sam-validate sam-build sam-check invoke clean

help:
	@echo "make demo      run the whole pipeline locally (moto server + loopback receivers)"
	@echo "make test      run unit, integration and end-to-end tests"
	@echo "make up        start a local stack (moto, the three functions, an HTTPS receiver) that stays up; prints its export lines"
	@echo "make env       the local stack's export lines again: eval \"\$$(make -s env)\""
	@echo "make down      stop the local stack"
	@echo "make examples  the publishing examples' tools: the AWS CLI (.venv-awscli), the AWS SDK for JavaScript (npm)"
	@echo "make lint      ruff + mypy"
	@echo "make sam-check sam validate --lint and sam build"
	@echo "make bench     speed and memory targets against baselines (writes bench-results.json)"
	@echo "make soak      5,000 events x 3 webhooks under injected faults and crashes, then 1,000 under DynamoDB faults and 100 of 256 KiB: nothing lost"
	@echo "make invoke FUNCTION=DispatchFunction EVENT=events/sns-rule-failed.json"

$(VENV)/.installed: requirements/dev.txt requirements/cli.txt layers/notify/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .   # the oxoflow-notify command, as `pip install .` gives it
	touch $@

# The publishing examples run in the tests: the AWS CLI (its own venv: it pins its own botocore)
# and the AWS SDK for JavaScript v3 from npm.
AWSCLI_VENV := .venv-awscli
$(AWSCLI_VENV)/.installed: requirements/awscli.txt
	$(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/pip install --quiet -r requirements/awscli.txt
	touch $@

scripts/examples/node_modules/.installed: scripts/examples/package.json scripts/examples/package-lock.json
	cd scripts/examples && npm ci --silent --no-audit --no-fund
	touch $@

EXAMPLES := $(AWSCLI_VENV)/.installed scripts/examples/node_modules/.installed

# The publishing examples' own tools, for trying them by hand (README): `make test` installs them too.
examples: $(EXAMPLES)

$(SAM_VENV)/.installed: requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements/sam.txt
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed requirements/bench.txt
	$(PY) -m pip install --quiet -r requirements/bench.txt
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) scripts/bench.py

soak: $(VENV)/.installed
	$(PY) scripts/soak.py --events 5000
	$(PY) scripts/soak.py --events 1000 --dynamodb-faults 0.08,0.04
	$(PY) scripts/soak.py --events 100 --big

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

# A local stack to try every command on (docs/local.md): stays up until `make down`; safe to run twice.
up: $(VENV)/.installed
	@$(PY) scripts/oxolocal/local.py up

env: $(VENV)/.installed
	@$(PY) scripts/oxolocal/local.py env

down: $(VENV)/.installed
	@$(PY) scripts/oxolocal/local.py down

# The test files run in parallel, one worker per core (at most 4), each file's tests on one worker,
# the longest files first (tests/conftest.py: LONGEST_FIRST).
test: $(VENV)/.installed $(EXAMPLES)
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

test-integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

test-e2e: $(VENV)/.installed $(EXAMPLES)
	$(PY) -m pytest tests/e2e

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

sam-validate: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) validate --lint
	$(SAM_VENV)/bin/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules

sam-build: $(SAM_VENV)/.installed
	@$(SAM_ENV) sh -c 'command -v python3.13 >/dev/null' || { echo "sam build needs python3.13 on PATH (the template's runtime); install it, e.g. pyenv install 3.13"; exit 1; }
	$(SAM_ENV) $(SAM) build

sam-check: sam-validate sam-build

FUNCTION ?= DispatchFunction
EVENT ?= events/sns-rule-failed.json
invoke: $(VENV)/.installed
	$(PY) scripts/invoke.py $(FUNCTION) -e $(EVENT)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(AWSCLI_VENV) scripts/examples/node_modules .aws-sam .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
