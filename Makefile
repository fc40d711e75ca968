# Two entry points (see README): `make reproduce` and `make test`. Both set up the
# locked environment in .venv first (idempotent; redone when the lock file changes).
VENV   ?= .venv
PY     := $(VENV)/bin/python
TEST_WORKERS ?= 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup reproduce pull sync experiments test bench lock clean-env

setup: $(VENV)/.installed

# --compile-bytecode writes every .pyc at install time: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE is set (as on this project's development machine) every process
# would compile its imports again (`import torch` 5.5 s instead of 2.5, Snakemake 5 s
# instead of 1.7; each workflow job and test subprocess pays it).
$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

reproduce: setup          ## run the whole workflow (data → ... → tables and figures)
	snakemake --cores all

pull: setup               ## a collaborator: `dvc pull` what dvc.lock records, then `make sync`
	spectnet workflow pull

sync: setup               ## after `dvc pull`: verify the data with DVC, then mark them done for Snakemake
	spectnet workflow sync

experiments: setup        ## compare experiments: the active scale's params, the headline metrics
	spectnet workflow experiments

# Two workers, each taking whole files (module fixtures are built once), the files with
# the most slow tests first (tests/conftest.py): the workflow file runs beside the rest.
test: setup               ## run the test suite
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: setup              ## run the benchmarks in bench/
	for b in bench/*.py; do $(PY) $$b || exit 1; done

lock:                     ## re-resolve requirements.lock after editing pyproject.toml
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean-env:
	rm -rf $(VENV)
