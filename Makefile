# imagejobs: every target installs what it needs (a venv with pinned packages, the npm validator).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/layers/shared:$(CURDIR)/local:$(CURDIR)/cli
PORT ?= 0
TIME_SCALE ?= 0.1

.PHONY: admin demo serve test lint types template pytest bench bench-poll loadtest faults clean

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the `imagejobs` command
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

## The whole gate: lint, types, template and ASL checks, tests
test: lint types template pytest

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

types: $(VENV)/.stamp
	$(VENV)/bin/mypy layers/shared/imagejobs local/imagejobs_local cli/imagejobs_cli
	for handler in functions/*/app.py; do $(VENV)/bin/mypy $$handler || exit 1; done

template: $(VENV)/.stamp node_modules/.stamp
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
	$(PY) -m imagejobs_local.asl_check --out $(VENV)/asl
	for asl in $(VENV)/asl/*.asl.json; do node_modules/.bin/asl-validator --json-path $$asl || exit 1; done

pytest: $(VENV)/.stamp
	$(PY) -m pytest

bench: $(VENV)/.stamp
	$(PY) -m bench.run

## Poll strategies side by side on latency traces (virtual clock): fixed 5/10/60 s vs ours
bench-poll: $(VENV)/.stamp
	$(PY) -m bench.poll

## N jobs at once through the offline stack with faults and a provider cap (prints numbers)
loadtest: $(VENV)/.stamp
	$(PY) -m bench.loadtest

## The fault matrix through the offline stack, as the README's reliability table
faults: $(VENV)/.stamp
	$(PY) -m imagejobs_local.fault_matrix

clean:
	rm -rf $(VENV) node_modules out .pytest_cache .mypy_cache .ruff_cache
