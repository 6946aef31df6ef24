# Set-up is part of every target, so the README's two commands work on a fresh machine.
PYTHON ?= python3
STAMP := .install.stamp

.PHONY: pipeline test lint install

pipeline: $(STAMP)
	$(PYTHON) -m pipeline

test: $(STAMP)
	$(PYTHON) -m pytest -q

lint: $(STAMP)
	ruff check . && ruff format --check .

install: $(STAMP)

# The CPU wheel of torch first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)
