# The two set-up commands of the README:
#   make bakeoff   create .venv, install, run the default bake-off on every available backend
#   make test      create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bakeoff test bench bench-roofline install clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	# llama.cpp is compiled here, once, for this CPU's vector units without AMX (see the script).
	$(BIN)/python -c "import importlib.metadata as m; assert m.version('llama-cpp-python') == '0.3.36'" 2>/dev/null \
		|| CMAKE_ARGS="$$($(PYTHON) scripts/llama-cpp-cmake-args)" $(BIN)/python -m pip install --quiet \
		--no-cache-dir --disable-pip-version-check --constraint constraints/cpu.txt llama-cpp-python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints/cpu.txt --editable '.[dev]'
	touch $(STAMP)

install: $(STAMP)

bakeoff: $(STAMP)
	$(BIN)/bakeoff run
	$(BIN)/bakeoff rank latest

test: $(STAMP)
	$(BIN)/python -m pytest

# The harness's own performance (under 10 minutes on 2 cores); prints every figure.
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -m "not roofline"

# LLM decode against the memory roofline (the first ONNX exports take minutes).
bench-roofline: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only -m roofline

clean:
	rm -rf $(VENV) build *.egg-info
