# imagejobs: every target installs what it needs (a venv with pinned packages, the SAM CLI, the npm validator).
# The Lambda runtime's Python (template.yaml: python3.13): every test runs on the same version.
RUNTIME_PYTHON := 3.13
# Found on PATH, or under pyenv (whose shim answers only when that version is selected), or as
# the system's: the first candidate that really is $(RUNTIME_PYTHON).
PYTHON ?= $(shell for candidate in python$(RUNTIME_PYTHON) \
	  $$(pyenv root 2>/dev/null)/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON) \
	  $$HOME/.pyenv/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON) \
	  /usr/local/bin/python$(RUNTIME_PYTHON) /usr/bin/python$(RUNTIME_PYTHON); do \
	  "$$candidate" --version 2>/dev/null | grep -q "^Python $(RUNTIME_PYTHON)\." && { command -v "$$candidate"; break; }; \
	done)
VENV := .venv
PY := $(VENV)/bin/python
# The SAM CLI pins its own boto3, click and flask exactly: it gets a venv of its own.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# OpenAI's Python SDK as an app installs it, for the e2e tests (checkov pins openai<1 in .venv).
SDK_VENV := .venv-sdk
BUILD_DIR := .aws-sam/build
export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/shared:$(CURDIR)/local:$(CURDIR)/cli
PORT ?= 0
TIME_SCALE ?= 0.1

.PHONY: admin demo serve test build build-check unit browser lint types template pytest bench bench-small bench-poll loadtest loadtest-small costs-small faults clean

$(VENV)/.stamp: requirements.txt layers/shared/requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python $(RUNTIME_PYTHON) (the Lambda runtime's) not found: install it (e.g. pyenv install $(RUNTIME_PYTHON)) or run make PYTHON=/path/to/python$(RUNTIME_PYTHON)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the `imagejobs` command
	touch $@

$(SAM_VENV)/.stamp: requirements-sam.txt
	@test -n "$(PYTHON)" || { echo "Python $(RUNTIME_PYTHON) not found"; exit 1; }
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	touch $@

$(SDK_VENV)/.stamp: requirements-sdk.txt
	@test -n "$(PYTHON)" || { echo "Python $(RUNTIME_PYTHON) not found"; exit 1; }
	rm -rf $(SDK_VENV)
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet -r requirements-sdk.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

## The main job: the offline demo (3 generation jobs over HTTP, images into ./out/)
demo: $(VENV)/.stamp
	$(PY) -m imagejobs_local.demo

## The offline stack in the foreground on 127.0.0.1 (PORT=8080 to choose)
serve: $(VENV)/.stamp
	$(PY) -m imagejobs_local.serve --port $(PORT) --time-scale $(TIME_SCALE)

## Admin commands (keys, budgets), e.g. make admin ARGS="keys create --tenant acme" (AWS settings from make serve or your profile)
admin: $(VENV)/.stamp
	$(VENV)/bin/imagejobs $(ARGS)

## The whole gate: lint, types, template and ASL checks, sam build and its imports, tests
test: lint types template build-check unit browser pytest loadtest-small bench-small

## The unit tier alone, in a process of its own (fakes of our ports, no network): seconds
unit: $(VENV)/.stamp
	$(PY) -m pytest -p no:cacheprovider tests/unit

## Debian's Chromium for the browser test (tests/e2e/test_browser.py): installed under CI=true
## when missing; elsewhere the test is skipped and this says how to get it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ -n "$$CI" ]; then apt-get install -y chromium >/dev/null || sudo apt-get install -y chromium >/dev/null; \
	  else echo "no Chromium: the browser test will be skipped (sudo apt-get install chromium)"; fi; }

## sam build (no container): functions and layer as Lambda gets them, wheels for the runtime's platform.
## ARCH=arm64 builds for Graviton (the template's Architecture parameter).
ARCH ?= x86_64
## Then byte-compiles it: sam build ships no .pyc, and Lambda's /opt and /var/task are read-only, so
## every cold start would compile the layer's ~700 modules again (half the handlers' import time).
## unchecked-hash: the .pyc is used whatever the zip does to the sources' mtimes.
build: $(SAM_VENV)/.stamp $(VENV)/.stamp
	rm -rf $(BUILD_DIR)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --template-file template.yaml --build-dir $(BUILD_DIR) \
	  --parameter-overrides Architecture=$(ARCH)
	$(PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR) > /dev/null

## Every handler imported from the build alone, on the runtime's Python, with the template's environment;
## and an arm64 build whose wheels are checked (this machine cannot import aarch64 code).
build-check: build
	$(PY) -m imagejobs_local.build_check --build-dir $(BUILD_DIR) --parameter Architecture=$(ARCH)
	$(MAKE) --no-print-directory build ARCH=arm64 BUILD_DIR=.aws-sam/build-arm64
	$(PY) -m imagejobs_local.build_check --build-dir .aws-sam/build-arm64 --parameter Architecture=arm64

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

types: $(VENV)/.stamp
	$(VENV)/bin/mypy layers/shared/imagejobs local/imagejobs_local cli/imagejobs_cli bench tests/unit tests/integration tests/fakes.py tests/helpers.py tests/conftest.py
	for handler in functions/*/app.py; do $(VENV)/bin/mypy $$handler || exit 1; done

template: $(VENV)/.stamp node_modules/.stamp
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/checkov --config-file .checkov.yaml --file template.yaml --skip-download
	$(PY) -m imagejobs_local.asl_check --out $(VENV)/asl
	for asl in $(VENV)/asl/*.asl.json; do node_modules/.bin/asl-validator --json-path $$asl || exit 1; done

## Integration (moto, the real template, IAM enforced) and e2e (make serve over HTTP, a browser)
pytest: $(VENV)/.stamp $(SDK_VENV)/.stamp node_modules/.stamp
	$(PY) -m pytest tests/integration tests/e2e

bench: build
	$(PY) -m bench.run

## Every part of make bench at a small size (in make test, after build-check's build): none of it rots
bench-small: $(VENV)/.stamp
	test -f $(BUILD_DIR)/template.yaml || $(MAKE) --no-print-directory build
	$(PY) -m bench.run --small

## Poll strategies side by side on latency traces (virtual clock): fixed 5/10/60 s vs ours
bench-poll: $(VENV)/.stamp
	$(PY) -m bench.poll

## N jobs at once through the offline stack with faults and a provider cap, then fair share:
## one tenant floods 300 jobs past the provider's limit while two send 20 each (prints numbers)
loadtest: $(VENV)/.stamp
	$(PY) -m bench.loadtest
	$(PY) -m bench.fairshare --time-scale 0.25 --timeout 3000

## The same, small, in make test (30 jobs; a flood of 40 against 5 each): it fails on a lost,
## stuck or twice-submitted job
loadtest-small: $(VENV)/.stamp
	$(PY) -m bench.loadtest --jobs 30 --timeout 240
	$(PY) -m bench.fairshare --flood 40 --light 5 --limit 6 --provider-limit 4 --time-scale 0.1 --timeout 900

## One job's AWS cost, every billed request counted (bench/costs.py), 3 jobs (make bench-small runs it too)
costs-small: $(VENV)/.stamp
	$(PY) -m bench.costs --jobs 3

## The fault matrix through the offline stack, as docs/reliability.md's table
faults: $(VENV)/.stamp
	$(PY) -m imagejobs_local.fault_matrix

clean:
	rm -rf $(VENV) $(SAM_VENV) $(SDK_VENV) .aws-sam node_modules out .pytest_cache .mypy_cache .ruff_cache
