# Set-up and the two main commands. Works on a fresh machine with make and a Python >= 3.12
# (found by itself: python3.12, python3.13 or python3 on PATH, else pyenv's 3.12.x/3.13.x).
#   make rats   set up, then compare Rats across every backend and against the seed page's
#               table (4 chains x (1000 warmup + 3000 draws)); reports in out/
#   make test   set up, then lint and run the test suite (what .ci/run runs)
# PYTHON=/path/to/python3.12 make test   uses that interpreter instead.
FIND_PYTHON := for c in python3.12 python3.13 python3 \
	  $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9].*/bin/python3; do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; assert sys.version_info >= (3, 12); print(sys.executable)' 2>/dev/null \
	    && break; \
	done
PYTHON ?= $(shell $(FIND_PYTHON))
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.crossppl-installed
BACKENDS ?= numpyro pymc stan jags

.PHONY: setup test rats zoo fits lint browser jags clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "crossppl needs Python 3.12 or newer and found none" \
	  "(python3.12, python3.13, python3 on PATH, or under pyenv). Install one (e.g." \
	  "'pyenv install 3.12', or Debian's python3.12 and python3.12-venv), or run" \
	  "'make PYTHON=/path/to/python3.12 ...'." >&2; exit 1; }
	@# a venv left by an older Python (crossppl ran on 3.11 before) is made anew
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; assert sys.version_info >= (3, 12)' \
	  2>/dev/null; then echo "removing $(VENV): its Python is older than 3.12"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -m 'not zoo'

rats: setup
	mkdir -p out
	$(BIN)/crossppl compare rats --reference data/rats.reference.json \
	  --chains 4 --warmup 1000 --draws 3000 --json out/rats.json --html out/rats.html --force

# Full compares of every bundled model on every backend (about 10 minutes on 2 cores).
zoo: setup
	$(BIN)/python -m pytest -m zoo

fits: setup
	mkdir -p out
	@for b in $(BACKENDS); do \
	  echo "== crossppl fit rats --backend $$b"; \
	  $(BIN)/crossppl fit rats --backend $$b --chains 4 --warmup 1000 --draws 3000 \
	    --output out/rats-$$b.nc --force || exit $$?; \
	done

# Debian's chromium, for the test that renders the HTML report (needs root, as on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's JAGS (library and headers). Not a step of `setup`: PyJAGS's wheels (CPython 3.12 and
# 3.13, Linux and macOS) bundle JAGS 4.3, so `pip install crossppl[jags]` needs no system JAGS.
# Only where pip must build PyJAGS from source (no wheel for the platform): `make jags setup`
# (needs root, as on CI).
jags:
	@command -v jags >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jags >/dev/null; }

clean:
	rm -rf $(VENV) out build *.egg-info
