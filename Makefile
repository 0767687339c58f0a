# WardWatch: the two commands a user needs are `make demo` and `make test`.
# Everything they need (virtual environment, Kafka, InfluxDB, Chromium) is installed on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
WW     := $(VENV)/bin/wardwatch
STAMP  := $(VENV)/.installed

.PHONY: demo test test-faults bench install services lint clean help

help:
	@echo "make demo    run WardWatch in one process on replayed real patients (nurse page on :8765)"
	@echo "make test    install everything the tests need and run the whole suite"
	@echo "make bench   the full-pipeline benchmark against its peers"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[train,test,bench]'
	touch $(STAMP)

install: $(STAMP)

services: $(STAMP)
	$(PY) -m devservices install

demo: $(STAMP)
	$(WW) demo

test: services
	bash scripts/ensure-test-packages.sh
	$(PY) -m pytest

test-faults: services
	$(PY) -m pytest -m faults

# The chart is also written under docs/, where docs/benchmarks.md embeds it (bench-results/ is not committed).
bench: services
	$(WW) bench pipeline --chart-copy docs/benchmarks.png

clean:
	rm -rf $(VENV) .pytest_cache bench-results test-artifacts
