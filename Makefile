# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each first builds .venv with the pinned dependencies (requirements.lock).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.winnow-installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast venv lock clean browser

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build; an unpinned resolve would pull CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The sample crawl curated, deduplicated and tokenized; the tiny model trained on it from scratch
# (well under three minutes on two CPU cores); then text generated from a prompt.
demo: $(STAMP)
	$(BIN)/winnow run jobs/sample.toml --overwrite
	rm -rf out/train-tiny
	$(BIN)/winnow train jobs/train-tiny.toml
	$(BIN)/winnow generate --checkpoint out/train-tiny/model --prompt "Debian is" --max-new-tokens 48 --seed 1

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The dedup report test opens report.html in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^winnow' | sed 's/+cpu$$//' > requirements.lock

clean:
	rm -rf $(VENV) out
