# emvkit — `make demo` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEBS := pcscd libpcsclite-dev swig vsmartcard-vpcd pcsc-tools postgresql tshark chromium netbase
# What building and booting token images needs (about 2.3 GB): installed by token-debs only.
TOKEN_DEBS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
# A MicroPython source tree for the token images (docs/token.md); empty: the token tests are not run.
MPY_DIR ?=
STAMP := $(VENV)/.installed

.PHONY: all setup debs token-debs venv demo test lint typecheck typecheck-firmware wheel-check pytest test-fast token-test bench fuzz clean

all: test

setup: debs $(STAMP)

# Debian packages the suite needs; installed only when one is missing.
define install_debs
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

debs:
	$(call install_debs,$(DEBS))

token-debs:
	$(call install_debs,$(TOKEN_DEBS))

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	@touch $@

# The main job on the built-in emulated cards: a contactless tap on each,
# then a high-value tap on the wearable after its on-device verification.
demo: setup
	@for card in visa mastercard unionpay wearable; do \
	  echo "=================== emu:$$card, 12.34 EUR ==================="; \
	  $(VENV)/bin/emvkit tap --reader emu:$$card --amount 12.34 || exit 1; echo; \
	done
	@echo "=================== emu:wearable after CDCVM, 95.00 EUR ==================="
	@$(VENV)/bin/emvkit tap --reader 'emu:wearable?cdcvm=1' --amount 95.00

lint: setup
	$(VENV)/bin/ruff check terminal firmware tests hil_tests bench

# mypy cannot follow the editable install's import hook: it reads the package through
# links that lay the folders out as the wheel does (emvkit/terminal, emvkit/firmware, emvkit/hil).
TYPECHECK := build/typecheck/emvkit
typecheck: setup
	@mkdir -p $(TYPECHECK) && ln -sfn ../../../terminal $(TYPECHECK)/terminal && \
	  ln -sfn ../../../firmware $(TYPECHECK)/firmware && ln -sfn ../../../hil_tests $(TYPECHECK)/hil
	$(VENV)/bin/mypy

# The firmware against MicroPython's stubs of two ports, each in its own folder (their
# machine modules differ): a call a port does not have is a type error.
STUBS := build/stubs
STUB_PORTS := rp2=micropython-rp2-rpi-pico2-stubs==1.29.0.post1 esp32=micropython-esp32-esp32-generic-s3-stubs==1.29.0.post1
typecheck-firmware: setup
	@for entry in $(STUB_PORTS); do port=$${entry%%=*}; pkg=$${entry#*=}; dir=$(STUBS)/$$port; \
	  test -f $$dir/.installed || { $(PY) -m pip install -q --disable-pip-version-check --no-deps --target $$dir \
	    $$pkg micropython-stdlib-stubs==1.29.0.post2 && touch $$dir/.installed; } || exit 1; \
	  echo "mypy firmware against the $$port stubs"; \
	  MYPYPATH=$$dir $(VENV)/bin/mypy --config-file firmware/mypy-micropython.ini --custom-typeshed-dir $$dir \
	    --cache-dir build/mypy-$$port firmware || exit 1; \
	done

# The wheel as a user gets it: installed in a fresh environment outside the repository, it
# imports as emvkit.* only and runs the scenario catalogue through its pytest plugin.
WHEEL_CHECK := build/wheel-check
wheel-check: setup
	@rm -rf $(WHEEL_CHECK) && mkdir -p $(WHEEL_CHECK)
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps -w $(WHEEL_CHECK) .
	python3 -m venv $(WHEEL_CHECK)/venv
	$(WHEEL_CHECK)/venv/bin/pip install -q --disable-pip-version-check "$$(ls $(WHEEL_CHECK)/emvkit-*.whl)[micropython]" pytest
	cd $(WHEEL_CHECK) && venv/bin/python -c "import emvkit.terminal.kernel, emvkit.firmware.tlv" && \
	  venv/bin/python -c "import emvkit.terminal, pathlib; assert (pathlib.Path(emvkit.terminal.__file__).parent / 'py.typed').exists()" && \
	  venv/bin/python -c "from emvkit.terminal.token.build import native_modules; assert native_modules() is not None" && \
	  venv/bin/python -c "import importlib.metadata as m; d = m.distribution('emvkit'); assert d.metadata['License-Expression'] == 'Apache-2.0'; assert any(f.name == 'LICENSE' for f in d.files)" && \
	  ! venv/bin/python -c "import terminal" 2>/dev/null && ! venv/bin/python -c "import firmware" 2>/dev/null && \
	  venv/bin/pytest -q -p no:cacheprovider --pyargs emvkit.hil --dut emu: --junitxml hil.xml

pytest: setup
	$(VENV)/bin/pytest -q --ignore=tests/token

# The tests without services, ptys or subprocess servers (the pre-commit hook runs these).
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow" --ignore=tests/token

# The token on the QEMU boards: both images built from MPY_DIR, booted, provisioned, tapped, and the
# HIL scenarios run against the booted board (tests/token/). Without a source tree: one line, nothing run.
token-test: setup
	@if [ -z "$(MPY_DIR)" ]; then \
	  echo "token tests not run: no MicroPython source tree (make test MPY_DIR=DIR; see docs/token.md)"; \
	else \
	  $(MAKE) --no-print-directory token-debs && \
	  MPY_DIR="$(abspath $(MPY_DIR))" $(VENV)/bin/pytest -q tests/token; \
	fi

test: lint typecheck typecheck-firmware pytest wheel-check token-test

# Rival parsers for the TLV benchmark live in their own environment: their
# dependency pins clash with emvkit's.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check pyemv emv
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

bench: setup $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/tlv_decode.py
	$(PY) bench/card_transaction.py
	$(PY) bench/kernel_transaction.py
	$(PY) bench/vpcd_roundtrip.py
	$(PY) bench/pcsc_roundtrip.py
	$(PY) bench/nfc_roundtrip.py
	$(PY) bench/serial_roundtrip.py
	$(PY) bench/crypto_timing.py
	$(PY) bench/host_load.py
	MPY_DIR="$(if $(MPY_DIR),$(abspath $(MPY_DIR)))" $(PY) bench/token_cycles.py

# Coverage-guided fuzzing (atheris, from the dev extra) of the targets in tests/fuzz/targets.py, which
# `make test` runs as bounded property tests (tests/test_fuzz.py): FUZZ_SECONDS each, seeded with the
# corpus of real inputs in tests/fuzz/corpus/<target>/; new inputs and crashes go to build/fuzz/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := tlv dol apdu card kernel link iso8583
fuzz: setup
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/$$t; echo "=== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(PY) -m tests.fuzz.$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/$$t/ build/fuzz/$$t tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "crashes in:$$failed (inputs in build/fuzz/<target>/crash-*)"; exit 1; fi

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache build *.egg-info
