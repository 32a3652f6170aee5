# Set-up and the two main commands. Works on a fresh machine with python3 (3.11) and make.
#   make rats   set up, then fit Rats on every backend (4 chains x (1000 warmup + 3000 draws))
#   make test   set up, then lint and run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.crossppl-installed
BACKENDS ?= numpyro pymc stan

.PHONY: setup test rats lint clean

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
	@for b in $(BACKENDS); do \
	  echo "== crossppl fit rats --backend $$b"; \
	  $(BIN)/crossppl fit rats --backend $$b --chains 4 --warmup 1000 --draws 3000 \
	    --output out/rats-$$b.nc || exit $$?; \
	done

clean:
	rm -rf $(VENV) out build *.egg-info
