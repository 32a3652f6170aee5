# Set-up and the two main commands. Works on a fresh machine with python3 (3.11) and make.
#   make rats   set up, then compare Rats across every backend and against the seed page's
#               table (4 chains x (1000 warmup + 3000 draws)); reports in out/
#   make test   set up, then lint and run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.crossppl-installed
BACKENDS ?= numpyro pymc stan

.PHONY: setup test rats zoo fits lint browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

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

clean:
	rm -rf $(VENV) out build *.egg-info
