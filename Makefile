# versaseg: every target that needs Python depends on `install`, so each one
# does the whole set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PHANTOM := data/phantom
PROFILE ?= quick
DATA ?= $(PHANTOM)/manifest.csv
# Variants trained side by side (default 1; the cleansing study 2, one core each).
JOBS ?=
# Where they train: local processes, or Ray tasks (LAUNCHER=ray; RAY_ADDRESS= a cluster).
LAUNCHER ?= local
# The phantom is generated only when the default data is used; its dataset.yaml,
# written last, marks a complete cohort (a folder from before it is rewritten).
DATA_DEPS := $(if $(filter $(PHANTOM)/manifest.csv,$(DATA)),$(PHANTOM)/dataset.yaml)

.DEFAULT_GOAL := help
.PHONY: help install browser test lint bench demo ablation-losses ablation-skips ablation-cleansing ablation-pseudo ui clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# The stamp makes `install` idempotent; compat mode puts the checkout itself on
# sys.path, so a new package folder needs no reinstall.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt \
		--config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install versaseg with pinned versions (once)

# The MLflow UI test drives Debian's Chromium through its chromedriver. As root
# (CI), the packages are installed when absent; otherwise the target says how.
browser: ## Debian's chromium and chromium-driver, for the MLflow UI test
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make test needs Debian's chromium and chromium-driver (the MLflow UI test):"; \
		echo "  sudo apt-get install chromium chromium-driver"; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends \
			chromium chromium-driver >/dev/null; } \
		|| { echo "could not install chromium and chromium-driver with apt-get"; exit 1; }

# One pytest worker per core (pytest-xdist), each with one torch thread (tests/conftest.py).
test: install browser ## ruff, then the test suite (the MLflow UI test in headless Chromium)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n auto

lint: install ## ruff only
	$(BIN)/ruff check .

# The benchmarks measure the phantom whatever DATA says: their figures compare like with like.
bench: install $(PHANTOM)/dataset.yaml ## against a hand-written loop and MONAI: one table in reports/bench/ (about 10 min)
	$(BIN)/python -m benchmarks.run_all

$(PHANTOM)/dataset.yaml: | install
	$(BIN)/versaseg phantom --subjects 12 --out $(PHANTOM) --seed 0

ablation-losses: install $(DATA_DEPS) ## the loss study: 5 tasks x 12 losses, then ranked tables (DATA=, PROFILE=, JOBS=, LAUNCHER=)
	$(BIN)/versaseg ablate experiments/ablations/losses.yaml --profile $(PROFILE) \
		--data $(DATA) --jobs $(or $(JOBS),2) --launcher $(LAUNCHER)

ablation-skips: install $(DATA_DEPS) ## skip connections under weak labels: 4 networks x 6 label conditions (DATA=, PROFILE=, JOBS=, LAUNCHER=)
	$(BIN)/versaseg ablate experiments/ablations/skips.yaml --profile $(PROFILE) \
		--data $(DATA) --jobs $(or $(JOBS),1) --launcher $(LAUNCHER)

ablation-cleansing: install $(DATA_DEPS) ## label cleansing: 6 label conditions x 8 ways to training labels, two stages each (DATA=, PROFILE=, JOBS=, LAUNCHER=)
	$(BIN)/versaseg ablate experiments/ablations/cleansing.yaml --profile $(PROFILE) \
		--data $(DATA) --jobs $(or $(JOBS),2) --launcher $(LAUNCHER)

ablation-pseudo: install $(DATA_DEPS) ## pseudo images: pix2pix once, then 4 input sets x (multiclass + each thin structure) (DATA=, PROFILE=, JOBS=, LAUNCHER=)
	$(BIN)/versaseg ablate experiments/ablations/pseudo.yaml --profile $(PROFILE) \
		--data $(DATA) --jobs $(or $(JOBS),1) --launcher $(LAUNCHER)

demo: install $(DATA_DEPS) ## train + test the baseline U-Net once (PROFILE=quick), print a Dice table
	$(BIN)/versaseg fit --config experiments/configs/baseline.yaml --profile $(PROFILE) \
		--data.manifest $(DATA) --test_after_fit true

UI_PORT ?= 5000
UI_HOST ?= 127.0.0.1
ui: install ## serve the MLflow UI on http://127.0.0.1:5000 and print where to look (UI_PORT=, UI_HOST=)
	$(BIN)/versaseg ui --port $(UI_PORT) --host $(UI_HOST)

clean: ## remove the venv, caches, phantom data and local MLflow runs
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache data predictions reports
	find mlruns -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
