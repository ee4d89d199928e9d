# Two entry points: `make book` (set up, then build the book) and `make test` (set up, build the book,
# then run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup book test browser slurm clean notebooks notebooks-capped

# pip byte-compiles at install (about a minute of the set-up): with PYTHONDONTWRITEBYTECODE set (as on our
# development machines), a venv installed with --no-compile recompiles torch in every process that imports it.
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

# The book: every notebook is executed on a fresh kernel (see _config.yml); any warning fails the build.
# scripts/book_config.py writes _build/_config.yml: _config.yml plus the Colab and Binder launch buttons
# when the book's GitHub repository is known (VML_REPOSITORY_URL, GitHub Actions, or an origin on
# github.com); it prints one line saying which.
book: setup
	$(BIN)/python scripts/book_config.py --out _build/_config.yml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter-book build . --config _build/_config.yml -W -n --keep-going

# Headless Chromium for the browser test of the built book: installed where we are root with apt
# (CI, fresh machines); elsewhere that test skips and says why.
browser:
	@if { ! command -v chromium || ! command -v chromedriver; } >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi

# Slurm's daemons and clients for the real-Slurm tests (tests/test_slurm_real.py stands up a single-node
# cluster with scripts/slurm-local.sh): installed where we are root with apt; elsewhere those tests skip
# and say why.
slurm:
	@if ! command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client munge >/dev/null; fi

# A second numerical path for nbval: ATen's scalar kernels and oneDNN capped at SSE4.1, which neither
# an AVX2 nor an AVX-512 machine takes by default. A checked output that depends on the machine then
# fails on every machine, not only on one that differs from the machine that stored it.
CAPPED_ISA := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41

# Each notebook runs once per numerical path, and both runs are checked: the book build executes it
# on this machine's default path (a cell that raises or warns fails the build) while nbval runs it on
# the capped path beside it; then `pytest tests` compares the build's executions with the committed
# outputs (tests/test_book_outputs.py), tests the built book in a browser and runs the unit tests,
# in two workers. Each process gets one thread (ONE_THREAD), so two of them fill the 2 cores without
# oversubscribed OpenMP threads spinning on each other's time slices: side by side with 2 threads
# each, the build and nbval took longer than one after the other.
ONE_THREAD := VML_THREADS=1 OMP_NUM_THREADS=1

test: setup browser slurm
	$(ONE_THREAD) $(MAKE) -j2 --output-sync=target book notebooks-capped
	PATH="$(CURDIR)/$(BIN):$$PATH" $(ONE_THREAD) $(BIN)/python -m pytest tests -n 2

# nbval on the capped path alone (part of `make test`)
notebooks-capped: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(CAPPED_ISA) $(BIN)/python -m pytest notebooks

# Re-execute every notebook in place, so that its stored outputs (which nbval compares) match the
# package and the results store as they are now. Run it after committing new results or changing the
# code a chapter runs, and commit the notebooks together with the records they were executed on.
notebooks: setup
	$(BIN)/python notebooks/execute.py notebooks/*.ipynb

clean:
	rm -rf _build
