# The two set-up commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# /opt/wheels holds the CPU build of torch on this project's machines; elsewhere pip uses PyPI.
PIP_FLAGS := -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

# System packages for the Android core's JVM tests (tests/android/test_java_core.py). `make test`
# installs them when they are missing and it runs as root on a Debian-like system (apt-get);
# otherwise it prints the sudo line and goes on, and those tests are skipped with that reason
# (CI sets EDGEPACK_REQUIRE_JVM=1, which turns the skip into a failure).
JVM_PKGS := default-jdk-headless junit4 libandroid-json-java
JVM_FILES ?= /usr/share/java/junit4.jar /usr/share/java/hamcrest-core.jar /usr/share/java/com.android.json.jar
USER_ID ?= $(shell id -u)
APT_GET ?= apt-get

.PHONY: install system-deps setup-arm64 demo test test-slow test-all test-extras bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

system-deps:
	@missing=""; \
	for t in javac java; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	for f in $(JVM_FILES); do [ -f $$f ] || missing="$$missing $$f"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v $(APT_GET) >/dev/null 2>&1; then \
		echo "edgepack: missing$$missing; no apt-get here, so the Android core's JVM tests will be skipped (install a JDK 17+, JUnit 4 and Android's org.json to run them)"; \
	elif [ "$(USER_ID)" = 0 ]; then \
		echo "edgepack: installing the JVM test packages ($(JVM_PKGS)); missing:$$missing"; \
		{ $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $(JVM_PKGS); } \
			|| echo "edgepack: apt-get failed; the Android core's JVM tests will be skipped"; \
	else \
		echo "edgepack: the Android core's JVM tests need system packages (missing:$$missing); they are skipped until you run:"; \
		echo "  sudo apt-get install -y --no-install-recommends $(JVM_PKGS)"; \
	fi

# The emulated arm64 runtime (edgepack/arm64, README "arm64 emulation"): qemu-user via apt when root, an
# arm64 Python and the host's LiteRT/ONNX Runtime wheels in ~/.cache/edgepack/arm64. Idempotent. When it
# cannot be set up here the arm64 tests are skipped with that reason (EDGEPACK_REQUIRE_ARM64=1 fails instead).
setup-arm64: install
	@$(BIN)/edgepack setup arm64 || { [ "$(EDGEPACK_REQUIRE_ARM64)" != 1 ] && echo "edgepack: arm64 set-up failed; the arm64 emulation tests will be skipped"; }

demo: install
	$(BIN)/edgepack build examples/digits/digits_cnn.pt2 \
		--calibration calibration_data/digits \
		--target android-arm64 --target linux-arm64 --target iphone \
		--out build/digits

# -rfEs lists failures, errors and every skipped test with its reason (e.g. the JVM tests without a JDK).
# Tests run on TEST_WORKERS processes (pytest-xdist; each test builds in its own temp folders);
# TEST_WORKERS=0 runs them in this process. The Core ML emulator's folder runs first in one process:
# its last file (test_zz_coverage.py) checks which kernels the folder's other tests exercised.
TEST_WORKERS ?= $(shell python3 -c "import os; print(min(4, os.cpu_count() or 1))")
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

test: install system-deps setup-arm64
	$(BIN)/python -m pytest -rfEs tests/coreml_emulator
	$(BIN)/python -m pytest -rfEs $(XDIST) --ignore=tests/coreml_emulator

test-slow: install
	$(BIN)/python -m pytest -rfEs -m slow $(XDIST)

test-all: install system-deps
	$(BIN)/python -m pytest -rfEs -m "slow or not slow" $(XDIST)

# every extra alone in a fresh venv (tests/test_extras.py; `make test-slow` runs only [onnx])
test-extras: install
	EDGEPACK_ALL_EXTRAS=1 $(BIN)/python -m pytest -rfEs -s -m slow tests/test_extras.py

bench: install
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/inspect_speed.py

clean:
	rm -rf build .pytest_cache
