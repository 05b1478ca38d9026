# gridhub: `make demo` and `make test` are the whole quick start. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean stack-test stack-demo stack-down

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test,lint]'
	# jsonschema uses rfc3987-syntax only to check the "iri" format, which nothing here needs; building
	# its grammar costs ~1.4 s at import in every hub and notebook process, so it is removed.
	$(BIN)/python -m pip uninstall --quiet -y rfc3987-syntax
	bash scripts/install-system.sh
	touch $(STAMP)

demo: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python deploy/demo/run.py

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/run_all.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# The compose stack (deploy/compose.yml) on a confined Docker engine; see deploy/README.md.
stack-test: install
	bash scripts/stack-test.sh

stack-demo: install
	bash scripts/stack-demo.sh

stack-down:
	bash scripts/stack-down.sh
