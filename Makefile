# Two commands do all the set-up: `make demo` and `make test` (each creates .venv if needed).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Ray: one parquet footer reader on small machines; MLflow's file store is in maintenance mode.
export RAY_DATA_PARQUET_FOOTER_NUM_ACTORS ?= 1

.PHONY: demo test test-fast test-long test-cluster lint bench-preprocess bench-train bench-quality bench-quality-quick bench-val clean-data relock gpu-check

# constraints.txt pins every package to the version the suite passed with (see its header).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# A deliberate upgrade: resolve pyproject.toml afresh in a scratch venv and rewrite the pins.
relock:
	rm -rf .venv-relock && $(PYTHON) -m venv .venv-relock
	.venv-relock/bin/python -m pip install --quiet --upgrade pip
	.venv-relock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-relock/bin/python -m pip freeze --exclude-editable --all; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-relock
	@echo "constraints.txt rewritten: run make test, then commit it"

demo: $(STAMP)
	$(VENV)/bin/dmt demo --config jobs/configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest tests -m "not long" --durations=25

test-long: $(STAMP)
	$(PY) -m pytest tests -m long

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

# style, and the layers and cycles import-linter checks (pyproject.toml's contracts)
lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline tests jobs
	$(VENV)/bin/lint-imports

bench-preprocess: $(STAMP)
	$(PY) jobs/benchmarks/preprocess_bench.py

bench-train: $(STAMP)
	$(PY) jobs/benchmarks/train_bench.py --config jobs/configs/demo.yaml

# The quality benchmark (docs/results.md); rerunning with the same OUT resumes.
BENCH_OUT ?= bench-out/quality
bench-quality: $(STAMP)
	$(VENV)/bin/dmt bench quality --out $(BENCH_OUT)

bench-quality-quick: $(STAMP)
	$(VENV)/bin/dmt bench quality --quick --out bench-out/quick

# Table E: the open choices against DMT's defaults, on a validation split (never the test split)
bench-val: $(STAMP)
	$(VENV)/bin/dmt bench quality --config bench_val --out bench-out/val

clean-data:
	rm -rf data ray_results mlflow.db mlartifacts

test-cluster: $(STAMP)
	$(PY) -m pytest tests -m cluster

# On a CUDA machine (not part of `make test`): the paper config's step timed, bf16 vs fp32 maps.
# Needs only torch, torchaudio, torchvision, numpy, pyarrow, pillow: `python jobs/benchmarks/gpu_check.py`.
gpu-check: $(STAMP)
	$(PY) jobs/benchmarks/gpu_check.py
