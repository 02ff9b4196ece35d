# The two commands a fresh clone needs: `make toy` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: toy demo toy-sweeps toy-defences gpt grid lora-rank signals domains forks smol report smol-weights test test-slow test-gpu bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

toy: $(STAMP)
	$(PY) -m toy_mnist $(ARGS)

demo: $(STAMP)
	$(PY) -m experiments.demo $(ARGS)

toy-sweeps: $(STAMP)
	$(PY) -m toy_mnist.sweep $(ARGS)

toy-defences: $(STAMP)
	$(PY) -m toy_mnist.defences $(ARGS)

gpt: $(STAMP)
	$(PY) -m experiments.gpt $(ARGS)

grid: $(STAMP)
	$(PY) -m experiments.gpt.grid $(ARGS)

lora-rank: $(STAMP)
	$(PY) -m experiments.gpt.lora_rank $(ARGS)

signals: $(STAMP)
	$(PY) -m experiments.signals $(ARGS)

domains: $(STAMP)
	$(PY) -m experiments.domains $(ARGS)

forks: $(STAMP)
	$(PY) -m experiments.forks $(ARGS)

smol: $(STAMP)
	$(PY) -m experiments.smol $(ARGS)

report: $(STAMP)
	$(PY) -m experiments.report $(ARGS)

smol-weights: $(STAMP)
	$(PY) -m minisub.weights $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal

bench: $(STAMP)
	$(PY) -m minisub.bench $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal -m slow

# On a machine with CUDA: every experiment's --quick on the GPU against the CPU (experiments/gpu_check.py).
test-gpu: $(STAMP)
	$(PY) -m experiments.gpu_check $(ARGS)

clean:
	rm -rf runs .pytest_cache .hypothesis build *.egg-info
