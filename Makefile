# Filmless PACS — the two commands: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test processes: the suite waits on subprocesses, sockets and fsync as much as on the CPU,
# so two share two cores well (`make test TEST_WORKERS=0` runs it in one process).
TEST_WORKERS ?= 2

.PHONY: serve test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/pacs serve

test: $(STAMP)
	$(BIN)/ruff check pacs ris storage viewer_api tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

clean:
	rm -rf $(VENV) pacs-data
