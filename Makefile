# The two commands of the README:
#   make book   build the HTML site from the notebooks' stored outputs -> _build/html/index.html
#   make test   unit tests of ddpm_lib + `pytest --nbval` over every chapter
# Both create .venv from requirements.txt (exact pins) when it is missing or stale.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export JAX_PLATFORMS ?= cpu
export PYTHONHASHSEED ?= 0

# Python >= 3.12: the version named in .python-version under pyenv, else python3.13 / python3.12
# / python3 from PATH, whichever is new enough.
FIND_PYTHON := \
  want=$$(cat .python-version 2>/dev/null); \
  root=$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv"); \
  for c in "$$root/versions/$$want/bin/python" python3.14 python3.13 python3.12 python3; do \
    if command -v "$$c" >/dev/null 2>&1 && \
       "$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
      command -v "$$c"; exit 0; fi; \
  done; exit 1

.PHONY: book test unit nbval outputs portability bench quality venv clean help
.DEFAULT_GOAL := help

help:
	@echo "make book     build the site into _build/html (from stored outputs)"
	@echo "make test     run the unit tests and pytest --nbval over chapters/"
	@echo "make outputs  re-execute every chapter in place (regenerates stored outputs)"
	@echo "make portability  re-run every chapter under floating-point perturbations (ISA, threads,"
	@echo "              BLAS kernel, oldest allowed JAX/Flax) and list every stored output that changes"
	@echo "make bench    speed ratios -> benchmarks/results.md"
	@echo "make quality  sample quality over three seeds -> benchmarks/quality.md"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml .python-version
	@py=$$($(FIND_PYTHON)) || { echo "error: Python >= 3.12 is required (JAX needs it). Install it, e.g. 'pyenv install $$(cat .python-version)', or put python3.12 on PATH." >&2; exit 1; }; \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then \
	    echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The site is at _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest --nbval tests chapters

unit: $(STAMP)
	$(PY) -m pytest tests

nbval: $(STAMP)
	$(PY) -m pytest --nbval chapters

outputs: $(STAMP)
	$(PY) tests/execute_notebooks.py chapters/*.ipynb

portability: $(STAMP)
	$(PY) tests/portability.py $(if $(CHAPTERS),$(CHAPTERS),) $(if $(ONLY),--only $(ONLY),)

bench: $(STAMP)
	$(PY) benchmarks/run.py

quality: $(STAMP)
	$(PY) benchmarks/quality.py

clean:
	rm -rf _build
