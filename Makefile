# The two commands of the README: `make run` and `make test` (and `make lint` for quick checks).
# Each builds .venv (Python 3.10, pinned dependencies) first when it is missing or stale.
.PHONY: run test lint
VENV_READY := .venv/.biograd-ready
RUN_ARGS ?=
PYTEST_ARGS ?=

$(VENV_READY): pyproject.toml scripts/bootstrap.sh
	@scripts/bootstrap.sh

run: $(VENV_READY)
	.venv/bin/biograd replay $(RUN_ARGS)

# ruff (lint + format), the layer contract and mypy, then the suite
lint: $(VENV_READY)
	@scripts/lint.sh

test: lint
	@scripts/ensure-browser.sh
	.venv/bin/python -m pytest $(PYTEST_ARGS)
