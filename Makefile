# Two commands set everything up on a fresh clone: `make repro`, then `make test`.
VENV := .venv
PY := $(VENV)/bin/python
# stage commands (`python stages/...`) and dvc resolve to the project's environment
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: venv repro test lint format bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

repro: venv
	dvc repro

test: venv
	$(PY) -m pytest -q

lint: venv
	ruff check . && ruff format --check .

format: venv
	ruff check --fix . && ruff format .

bench: venv
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV)
