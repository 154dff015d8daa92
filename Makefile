# Two commands do all the set-up on a fresh machine:
#   make demo   the whole stack on this machine with simulated traffic and the dashboard
#   make test   the whole test suite
# Both create .venv when it is missing and install lastmile into it first.

VENV   ?= .venv
PY     := $(VENV)/bin/python
# Two workers: most tests wait on a broker or ClickHouse, so two share the two cores well.
# One file to one worker: module fixtures (the README's webhook on port 9000, the browser
# test's demo stack) then run once.
PYTEST_ARGS ?= -n 2 --dist loadfile

# The first Python 3.11+ on PATH.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: demo test lint install clean bench chromium prometheus kserve-venv

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "lastmile needs Python 3.11 or newer on PATH" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench,flavors]'
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/lastmile up --demo

# The dashboard's end-to-end test drives headless Chromium (Debian's package).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the dashboard's browser test" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing (apt-get install chromium): the browser test will be skipped" >&2; fi

# The metrics test scrapes the roles with a real Prometheus (Debian's package).
prometheus:
	@if command -v prometheus >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing prometheus for the metrics test" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	else echo "prometheus is missing (apt-get install prometheus): the metrics test will be skipped" >&2; fi

# The gateway's kserve client test runs kserve's own REST client from a virtualenv of its
# own, .lastmile/kserve-client-venv (kserve pins pandas < 3): made once from the package
# index (about a minute), reused after; the test fails, not skips, without it.
kserve-venv: $(VENV)/.installed
	@$(PY) bench/venvs.py kserve-client || \
		echo "cannot make the kserve client's virtualenv: its test will fail" >&2

test: $(VENV)/.installed chromium prometheus kserve-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .lastmile .pytest_cache .ruff_cache
