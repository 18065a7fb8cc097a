# deepnotes — two commands: `make tour` and `make test`.
# GPU users pick their torch build: `make TORCH=torch tour` (default: the tested CPU build).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= quick

.PHONY: tour test lint format report readme clean bench

$(VENV): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)

tour: $(VENV)
	$(BIN)/deepnotes tour --preset $(PRESET)

test: $(VENV)
	$(BIN)/python -m pytest -q

lint: $(VENV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

report: $(VENV)
	$(BIN)/deepnotes report

clean:
	rm -rf runs .pytest_cache

readme: $(VENV)
	$(BIN)/deepnotes report --readme README.md

# Side-by-side speed measurements (benchmarks/); installs the peers of the `.[bench]` extra and
# torchattacks without its declared torchvision dependency (unused by FGSM/PGD; it would pull a
# CUDA torch), so never as a runtime dependency.
bench: $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1
	$(BIN)/python -m pip install --quiet scipy tqdm requests
	$(BIN)/python benchmarks/conv.py
	$(BIN)/python benchmarks/attention.py
	$(BIN)/python benchmarks/attacks_vs_torchattacks.py --threads 1
