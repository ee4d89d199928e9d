# Two entry points: `make book` (set up, then build the book) and `make test` (set up, then run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup book test browser clean notebooks

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

# The book: every notebook is executed on a fresh kernel (see _config.yml); any warning fails the build.
book: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter-book build . -W -n --keep-going

# Headless Chromium for the browser test of the built book: installed where we are root with apt
# (CI, fresh machines); elsewhere that test skips and says why.
browser:
	@if { ! command -v chromium || ! command -v chromedriver; } >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi

# Builds the book first, so that the browser test checks a fresh build; then unit tests, the
# notebooks (nbval, see [tool.pytest.ini_options]) and the browser test.
test: setup browser book
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Re-execute every notebook in place, so that its stored outputs (which nbval compares) match the
# package and the results store as they are now. Run it after committing new results or changing the
# code a chapter runs, and commit the notebooks together with the records they were executed on.
notebooks: setup
	$(BIN)/python notebooks/execute.py notebooks/*.ipynb

clean:
	rm -rf _build
