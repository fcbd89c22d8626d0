# k8s-workers: the everyday commands. `make test` is what CI runs.
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: venv test lint render bench lab-build demo demo-down

$(PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(PY)

venv: $(PY)

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

render: $(PY)
	$(PY) -m components render --stack $(or $(STACK),dev) --out $(or $(OUT),render)

bench: $(PY)
	$(PY) benchmarks/bench_program.py

lab-build: $(PY)
	$(PY) -m lab build

# As root: the lab (control plane + 3 hosts), `pulumi up` of its stack, the nodes and a pod's logs
# from each, then what to try next (docs/lab.md). Re-running it is fast: nothing changes.
demo: $(PY)
	$(PY) -m lab demo

demo-down: $(PY)
	$(PY) -m lab demo-down

# As root: Kubernetes' conformance suite (e2e.test, [Conformance]) on the 3 lab nodes `pulumi up`
# installed, minus the documented skips (lab/conformance.py); SMOKE=1 runs the CI subset.
.PHONY: conformance
conformance: $(PY)
	$(PY) -m lab conformance $(if $(SMOKE),--smoke)
