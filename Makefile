# The two commands of the README: `make run` and `make test`.
# Both build .venv (Python 3.10, pinned dependencies) first when it is missing or stale.
.PHONY: run test
VENV_READY := .venv/.biograd-ready
RUN_ARGS ?=
PYTEST_ARGS ?=

$(VENV_READY): pyproject.toml scripts/bootstrap.sh
	@scripts/bootstrap.sh

run: $(VENV_READY)
	.venv/bin/biograd replay $(RUN_ARGS)

test: $(VENV_READY)
	@scripts/ensure-browser.sh
	.venv/bin/python -m pytest $(PYTEST_ARGS)
