# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each first builds .venv with the pinned dependencies (requirements.lock).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.winnow-installed

.PHONY: demo test test-fast venv lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build; an unpinned resolve would pull CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/winnow run jobs/sample.toml --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^winnow' | sed 's/+cpu$$//' > requirements.lock

clean:
	rm -rf $(VENV) out
