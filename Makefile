# The two commands of the README: `make course` and `make test`. Both set everything up first.
# `make site` builds the course website into site/ (lesson pages show the outputs of the executed solutions).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# Linux without an NVIDIA GPU: `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu` saves GBs of CUDA wheels.
TORCH_INDEX ?=

.PHONY: setup course test build site

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("llmc needs Python >= 3.10, this is " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

course: setup
	$(BIN)/jupyter lab lessons/

test: setup
	$(BIN)/python -m pytest

build: setup
	$(BIN)/llmc build

site: setup
	$(BIN)/python -m llmc_core.site build/site-src
	$(BIN)/mkdocs build
