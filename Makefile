# fer_multires — `make help` lists the targets.
# `make demo` and `make test` set everything up on a fresh machine: they create .venv and install
# the project into it when missing.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch/torchvision pins that install from this machine's local copies; override for other setups,
# e.g. `make install TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.fer_multires-installed
DOCS_STAMP := $(VENV)/.fer_multires-docs-installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo demo-multires demo-compare demo-tasks stats report test test-unit test-integration
.PHONY: test-full lint format docs clean
.PHONY: slurm-up slurm-down test-slurm

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev,onnx,slurm]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools
	@$(PY) -c "import fer_multires, torch; print('fer_multires ready; torch', torch.__version__)"

demo: $(STAMP) ## Train the CPU demo on the synthetic set (generated on first use) and print val_full
	$(PY) -m fer_multires.train +experiment=demo

demo-multires: $(STAMP) ## The demo with multi-resolution training
	$(PY) -m fer_multires.train +experiment=demo_multires

DEMO_DIR ?= logs/demo_compare
demo-compare: $(STAMP) ## Train the demo with and without multi-resolution (each evaluated at the end); compare
	$(PY) -m fer_multires.train +experiment=demo_multires run_dir=$(DEMO_DIR)/multires trainer.enable_progress_bar=false eval_after_fit=true
	$(PY) -m fer_multires.train +experiment=demo run_dir=$(DEMO_DIR)/baseline trainer.enable_progress_bar=false eval_after_fit=true
	$(PY) -m fer_multires.compare $(DEMO_DIR)/multires/eval $(DEMO_DIR)/baseline/eval --out $(DEMO_DIR)

TASKS_DIR ?= logs/demo_tasks
demo-tasks: $(STAMP) ## Train the demo for valence-arousal, action units and the multi-task track (each evaluated at every resolution)
	for task in va au mtl; do \
		$(PY) -m fer_multires.train +experiment=demo task=$$task run_dir=$(TASKS_DIR)/$$task trainer.enable_progress_bar=false eval_after_fit=true || exit 1; \
	done

DIR ?= logs
report: $(STAMP) ## Summarise the training runs under DIR (default logs/): table, heatmap, curves
	$(PY) -m fer_multires.report $(DIR)

stats: $(STAMP) ## Statistics of the synthetic set (Table 1, Table 2, skips)
	$(PY) -m fer_multires.stats data=synthetic

test: $(STAMP) ## The test suite: unit and integration tiers (CPU, generated data; not slow, not slurm)
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

test-unit: $(STAMP) ## The quick tier while editing: tests/unit (no training, no subprocess; < 1 min)
	$(PY) -m pytest -m "not slow and not slurm" tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## The CLIs end to end on generated data: tests/integration
	$(PY) -m pytest -m "not slow and not slurm" tests/integration $(PYTEST_ARGS)

# The one-node Slurm cluster of the Slurm tests (scripts/slurm; docs/training.md, "The local Slurm
# cluster").
FER_SLURM_STATE ?= /var/tmp/fer_multires-slurm
export FER_SLURM_STATE

slurm-up: ## Install (apt, when missing) and start a one-node Slurm cluster; idempotent
	scripts/slurm/up.sh

slurm-down: ## Stop the cluster slurm-up started (its jobs, then its daemons, by PID)
	scripts/slurm/down.sh

test-slurm: $(STAMP) slurm-up ## Tests on the real local Slurm: sbatch DDP, sweep via hydra/launcher=slurm, requeue, preemption
	SLURM_CONF=$(FER_SLURM_STATE)/slurm.conf FER_REQUIRE_SLURM=1 $(PY) -m pytest -m slurm tests/integration/test_slurm.py $(PYTEST_ARGS)

test-full: $(STAMP) ## Every test, slow ones included
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint and format check (what pre-commit runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The docs tools (the `docs` extra: mkdocs, mkdocs-material, mkdocstrings) go into the same .venv.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP) ## Build the documentation site into site/ (mkdocs build --strict; pages in docs/)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean: ## Remove caches, build outputs and logs (keeps .venv and data/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info logs multirun outputs site
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -exec rm -rf {} +
