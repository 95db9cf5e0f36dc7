# The two set-up commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# /opt/wheels holds the CPU build of torch on this project's machines; elsewhere pip uses PyPI.
PIP_FLAGS := -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: install demo test test-slow test-all bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/edgepack build examples/digits/digits_cnn.pt2 \
		--calibration calibration_data/digits \
		--target android-arm64 --target linux-arm64 --target iphone \
		--out build/digits

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

test-all: install
	$(BIN)/python -m pytest -m "slow or not slow"

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf build .pytest_cache
