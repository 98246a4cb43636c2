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

.PHONY: book test unit nbval outputs portability portability-ci bench bench-sampling quality train-digits mutants bench-peers venv clean help
.DEFAULT_GOAL := help

help:
	@echo "make book     build the site into _build/html (from stored outputs)"
	@echo "make test     run the unit tests and pytest --nbval over chapters/"
	@echo "make outputs  re-execute every chapter in place (regenerates stored outputs)"
	@echo "make portability  re-run every chapter under floating-point perturbations (ISA, threads,"
	@echo "              BLAS kernel, oldest allowed JAX/Flax) and list every stored output that changes"
	@echo "make portability-ci  the same in two combined passes (sse42+threads1+openblas, oldest+avx2), as CI runs it"
	@echo "make bench    speed ratios -> benchmarks/results.md"
	@echo "make bench-sampling  50-step DDIM against every-step ancestral sampling, quality and time"
	@echo "              -> benchmarks/fast_sampling.md"
	@echo "make quality  sample quality against the goals (shipped digits model, two moons) -> benchmarks/quality.md"
	@echo "make train-digits  retrain the shipped digits model into checkpoints/digits with the command line"
	@echo "                   (about 22 minutes on this project's 2-core machine, shared with other work)"
	@echo "make mutants  plant classic DDPM bugs one at a time in a temporary copy; report the"
	@echo "              share the unit tests catch (not in CI: about 40 minutes on two cores)"
	@echo "make bench-peers  ddpm_lib against PyTorch + diffusers -> benchmarks/peers.md"
	@echo "                  (in its own environment .venv-peers, about 5 GB)"

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

# CI's pass: every perturbation, merged into two runs (see tests/portability.py)
portability-ci: $(STAMP)
	$(PY) tests/portability.py --only sse42+threads1+openblas,oldest+avx2

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-sampling: $(STAMP)
	$(PY) benchmarks/fast_sampling.py

quality: $(STAMP)
	$(PY) benchmarks/quality.py

# The shipped digits model (checkpoints/digits/README.md): exactly the command that trained it.
# It replaces config.json and state.msgpack there; then `make quality` measures it again.
train-digits: $(STAMP)
	$(PY) -m ddpm_lib train --data digits --model mlp --width 256 --blocks 3 --time-width 64 \
	  --layer-norm --schedule cosine --T 200 --steps 50000 --batch-size 128 --lr 0.003 \
	  --ema-decay 0.999 --seed 0 --save-every 5000 --weights-only --progress --force \
	  --out checkpoints/digits

# Mutation check (tests/mutants.py): each bug in its list is planted in a temporary copy of the
# repository, never here; exit status 1 below a 95% score or when a mutant no longer applies.
mutants: $(STAMP)
	$(PY) tests/mutants.py

# PyTorch and diffusers live in their own environment, never in the book's: .venv-peers, made
# from benchmarks/requirements-peers.txt (the book's pins plus torch, diffusers and their deps).
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp

$(PEERS_STAMP): benchmarks/requirements-peers.txt requirements.txt pyproject.toml .python-version
	@py=$$($(FIND_PYTHON)) || { echo "error: Python >= 3.12 is required." >&2; exit 1; }; \
	  if [ ! -x $(PEERS_VENV)/bin/python ]; then \
	    echo "creating $(PEERS_VENV) with $$py"; "$$py" -m venv $(PEERS_VENV); fi
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-peers.txt
	$(PEERS_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(PEERS_STAMP)

# One core by default: on a machine other processes share, PyTorch's OpenMP threads wait for
# each other and slow down by orders of magnitude. `make bench-peers PEERS_ARGS=` uses every core.
PEERS_ARGS ?= --threads 1

bench-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python benchmarks/peers.py --out benchmarks $(PEERS_ARGS)

clean:
	rm -rf _build
