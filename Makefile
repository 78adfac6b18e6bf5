# Two commands for a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test unit install stop clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need Python 3.11 ($(PY))"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Broker + worker + real flights + feature lookups over HTTP.
demo: $(STAMP)
	$(BIN)/featurestream demo

## The layer contract, unit tests, then integration tests against a real Kafka broker the suite starts.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -ra

unit: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not integration"

stop:
	$(BIN)/featurestream demo --stop

clean: stop
	rm -rf .featurestream
