# make run: train RecMamba on kuairand; make test: run the test suite. Both create/reuse .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test venv clean-venv

run: $(STAMP)
	$(VENV)/bin/python run.py --model=RecMamba --dataset=kuairand

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests

venv: $(STAMP)

# Reinstalled whenever the lock file or the package metadata changes. --no-deps: see README (Install notes).
$(STAMP): requirements/lock.txt requirements/build.txt setup.cfg setup.py pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --no-deps -r requirements/lock.txt -r requirements/build.txt
	$(VENV)/bin/python -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
