# One command to run a local cluster, one to run the tests; both bootstrap what they need.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
ZK_STAMP = $(VENV)/.zookeeper
CHROMIUM_STAMP = $(VENV)/.chromium

.PHONY: all venv zookeeper run run-ha test test-fast lint bench clean

all: test

$(STAMP): pyproject.toml scripts/install-pymesos.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing mesos-py and its test dependencies into $(VENV)"
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
	@$(PY) -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING' || true
	@echo "==> installing pymesos (http-parser without its C extension)"
	@./scripts/install-pymesos.sh $(PY)
	@touch $(STAMP)

# Debian's ZooKeeper (and a Java runtime) for the HA tests and `make run-ha`; needs root
# the first time, then the stamp (and the script's own check) make it a no-op.
$(ZK_STAMP): scripts/install-zookeeper.sh | $(STAMP)
	@./scripts/install-zookeeper.sh
	@touch $(ZK_STAMP)

venv: $(STAMP)

zookeeper: $(ZK_STAMP)

# Debian's chromium for the web UI browser tests (Playwright drives it; its own browsers
# are never downloaded).
$(CHROMIUM_STAMP): scripts/install-chromium.sh | $(STAMP)
	@./scripts/install-chromium.sh
	@touch $(CHROMIUM_STAMP)

## run: a local cluster (master on 127.0.0.1:5050 and two agents); Ctrl-C stops it
run: $(STAMP)
	$(VENV)/bin/mesos-local --num_agents=2 --ip=127.0.0.1 --port=5050 --work_dir=$${MESOS_WORK_DIR:-/tmp/mesos-local}

## run-ha: ZooKeeper on 127.0.0.1:2181, three masters electing a leader there (5050-5052)
## and two agents following it; a master that exits is restarted. Ctrl-C stops it all.
HA_DIR ?= $${MESOS_WORK_DIR:-/tmp/mesos-ha}
run-ha: $(STAMP) $(ZK_STAMP)
	@mkdir -p $(HA_DIR); \
	$(PY) -m mesos.testing.zk --port 2181 --dir $(HA_DIR)/zookeeper & zk=$$!; \
	trap 'kill $$zk 2>/dev/null; wait $$zk 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/mesos-local --zk=zk://127.0.0.1:2181/mesos --num_masters=3 --num_agents=2 \
		--ip=127.0.0.1 --port=5050 --work_dir=$(HA_DIR) --start_timeout=120secs

## lint: ruff and mypy over the package, tests and benchmarks
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

## test: lint, then the whole suite (unit, integration, compat with pymesos)
test: lint $(ZK_STAMP) $(CHROMIUM_STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -x tests/unit

bench: $(STAMP)
	$(PY) benchmarks/launch_throughput.py --local --tasks 500

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
