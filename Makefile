# The two set-up commands of the README:
#   make bakeoff   create .venv, install, run the default bake-off on every available backend
#   make test      create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bakeoff test bench install clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints/cpu.txt --editable '.[dev]'
	touch $(STAMP)

install: $(STAMP)

bakeoff: $(STAMP)
	$(BIN)/bakeoff run

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build *.egg-info
