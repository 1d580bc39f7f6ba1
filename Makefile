# synthmed: `make demo` and `make test` work on a fresh machine (they create .venv themselves).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.synthmed-installed
DEMO_OUT ?= runs/demo

.PHONY: setup demo test check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned for CI (the library itself does not pin them): pip takes them from
	# this machine's local wheel cache. Then the package with every extra (ml + study), tests and linters.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[all,test,lint]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/synthmed demo --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q

# The project's own checks (CI runs them before the tests): lint + import order, format, types.
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache
