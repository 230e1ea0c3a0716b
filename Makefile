# Two commands set everything up on a fresh clone: `make repro`, then `make test`.
VENV := .venv
PY := $(VENV)/bin/python
# stage commands (`python stages/...`) and dvc resolve to the project's environment
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: venv repro test browser screenshot lint format bench compare results grid grid-headline docs-check clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

repro: venv
	dvc repro

# two workers (pytest-xdist), a test file to each at a time (module fixtures built once), the longest files first
# (tests/conftest.py): most tests wait on subprocesses or train tiny networks on one thread, so two at once finish
# in about two thirds of the time
test: venv browser
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# headless Chromium and its driver for the page's tests: Debian's packages, installed where this is root on
# Debian (as CI and the project's machines are); elsewhere the browser tests are skipped, and CI fails without them
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "make browser: no chromium here (Debian: apt-get install chromium chromium-driver)"

# docs/serve.png, the README's picture of the page: the browser test over this checkout's pipeline (make repro)
screenshot: venv browser
	FACEARITH_PAGE_ROOT=. FACEARITH_SCREENSHOT=docs/serve.png $(PY) -m pytest -q tests/test_browser.py -k upload

lint: venv
	ruff check . && ruff format --check .

format: venv
	ruff check --fix . && ruff format .

# the seed's way against the project's (benchmarks/results.json), then time to accuracy on JAFFE: the recipe of
# 2dd16ee, the defaults (stage fuse's inner network, continued for the index's network) and the defaults with the
# index's network trained from scratch instead (final.start=scratch), 3 seeds each, side by side
# (benchmarks/time_to_accuracy.json; about 37 minutes on a 2-core AVX-512 CPU, 56 on the AVX2-only one),
# then `facearith serve`'s latency beside the command's cold start over this checkout's pipeline (serve.json)
bench: venv
	$(PY) benchmarks/run.py
	$(PY) benchmarks/time_to_accuracy.py --archive $(JAFFE) --recipes 'today,defaults,scratch:final.start=scratch' \
	  --out benchmarks/time_to_accuracy.json
	$(PY) benchmarks/serve.py --root . --out benchmarks/serve.json

# experiments side by side: the params that differ between runs and the main metrics (not every column)
compare: venv
	dvc exp show --no-pager --md --only-changed \
	  --drop '^(data|models|stages|src)/|(^|:)(baseline_.*|network\..*|.*\.queries|.*\.top(5|10)|(ngt|search|inner)\..*|anchors_per_second|images_per_second|loss|seconds_this_run|epochs_this_run|device|epochs)$$'

# the generated tables, from results/grid.json: the README's headline and docs/results.md's grid groups
results: venv
	$(PY) -m facearith.experiments.report

# the mean +- sd tables (README, docs/results.md): 3 training seeds each for the synthetic and JAFFE defaults,
# and JAFFE's 5 zero-shot folds of pairs, as DVC experiments (`dvc exp run --queue`, `dvc queue start`), then
# collected from `dvc exp show --json` into results/grid.json and rendered. The -nols, -noswa, -80ep and -64px
# groups are the previous recipes (hard classifier targets, no weight averaging, fewer epochs, a smaller input):
# the evidence for the defaults; the -dim128 groups are heads of 128, measured with hard targets; the -members2
# groups are ensembles of two or three networks (model.members). Every earlier recipe trained with hard targets
# ($(HARD)).
# The jaffe-pairs-split1 groups are another draw of the zero-shot folds (prepare.seed 1), to check on pairs
# never trained on, apart from the folds reported, the fusion's weights and hard targets; the jaffe-pairs-split2
# groups a third draw, run only after the per-axis weights were chosen, to confirm them (with either target);
# jaffe-pairs-split3 a fourth, run only after the inner rule and the continued network were fixed, to confirm them.
# About 14 hours on 2 CPU cores with today's code, where every run trains stage fuse's inner network too (an
# estimate from the runs of 2026-12-07 on Intel Xeon model 167: a JAFFE run 6.3 min, a zero-shot fold 8.6, a
# synthetic run 14, ensembles 2-3x).
JAFFE ?= ../shared/data/jaffe/jaffedbase.zip
JAFFE_SET := -S data.source=jaffe -S 'data.jaffe.archive="$(abspath $(JAFFE))"'
HARD := -S train.label_smoothing=0
PAIRS := -S prepare.split=pairs --vary prepare.fold=0,1,2,3,4
# the README headline's groups alone (tables.HEADLINE; tests/test_grid.py checks), collected and rendered: under 2 hours
grid-headline: venv
	$(PY) -m facearith.experiments.grid run jaffe $(JAFFE_SET)
	$(PY) -m facearith.experiments.grid run synthetic
	$(PY) -m facearith.experiments.grid run jaffe-pairs $(JAFFE_SET) $(PAIRS)
	$(PY) -m facearith.experiments.grid collect
	$(PY) -m facearith.experiments.report
grid: grid-headline
	$(PY) -m facearith.experiments.grid run jaffe-nols $(JAFFE_SET) $(HARD)
	$(PY) -m facearith.experiments.grid run jaffe-dim128 $(JAFFE_SET) $(HARD) -S model.dim=128
	$(PY) -m facearith.experiments.grid run jaffe-members2 $(JAFFE_SET) -S model.members=2
	$(PY) -m facearith.experiments.grid run jaffe-members3 $(JAFFE_SET) -S model.members=3
	$(PY) -m facearith.experiments.grid run jaffe-noswa $(JAFFE_SET) $(HARD) -S train.swa_from=0
	$(PY) -m facearith.experiments.grid run jaffe-80ep $(JAFFE_SET) $(HARD) -S train.epochs=80 -S train.swa_from=0
	$(PY) -m facearith.experiments.grid run jaffe-64px $(JAFFE_SET) $(HARD) -S train.epochs=80 -S train.image_size=64 \
	  -S train.swa_from=0
	$(PY) -m facearith.experiments.grid run synthetic-nols $(HARD)
	$(PY) -m facearith.experiments.grid run synthetic-noswa $(HARD) -S train.swa_from=0
	$(PY) -m facearith.experiments.grid run synthetic-80ep $(HARD) -S train.epochs=80 -S train.swa_from=0
	$(PY) -m facearith.experiments.grid run jaffe-pairs-nols $(JAFFE_SET) $(HARD) $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-dim128 $(JAFFE_SET) $(HARD) -S model.dim=128 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-noswa $(JAFFE_SET) $(HARD) -S train.swa_from=0 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-members2-nols $(JAFFE_SET) $(HARD) -S model.members=2 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-split1 $(JAFFE_SET) -S prepare.seed=1 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-split1-nols $(JAFFE_SET) $(HARD) -S prepare.seed=1 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-split2 $(JAFFE_SET) -S prepare.seed=2 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-split2-nols $(JAFFE_SET) $(HARD) -S prepare.seed=2 $(PAIRS)
	$(PY) -m facearith.experiments.grid run jaffe-pairs-split3 $(JAFFE_SET) -S prepare.seed=3 $(PAIRS)
	$(PY) -m facearith.experiments.grid collect
	$(PY) -m facearith.experiments.report

# every command in the README, in order, in a fresh copy with a fresh .venv, `make repro` then `make test`
# included (the other commands took 19 minutes on a 2-core CPU before `make test` joined them)
docs-check: venv
	$(PY) tools/docs_check.py

clean:
	rm -rf $(VENV)
