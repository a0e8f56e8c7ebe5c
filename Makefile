# CNN Studio: `make run` starts the dashboard, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test test-fast lint install install-dev worker clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.address localhost \
		--server.fileWatcherType none

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The unit and AppTest lanes only (no browser, torchrun, Ray, kills or soaks), two processes
test-fast: install-dev
	$(PY) -m ruff check .
	# One torch thread per xdist worker: two workers on two cores, not four threads fighting for them.
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 -m "not slow" tests/unit tests/app

lint: install-dev
	$(PY) -m ruff check .

worker: install
	$(PY) -m core worker

clean:
	rm -rf test-output .pytest_cache .ruff_cache
