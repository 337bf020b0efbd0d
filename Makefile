# Two commands on a fresh machine: `make run` (the server) and `make test` (the suite).
# Both create .venv and install requirements.txt when it changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export DEBUG ?= 1

.PHONY: run test faults cluster bench lint format clean check-deploy

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	@echo ""
	@echo "  Home         http://$(HOST):$(PORT)/"
	@echo "  Admin        http://$(HOST):$(PORT)/admin/"
	@echo "  API docs     http://$(HOST):$(PORT)/api/docs/"
	@echo "  Sockets      ws://$(HOST):$(PORT)/ws/..."
	@echo ""
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

# The coverage table comes last and ends with its TOTAL line.
test: $(STAMP)
	@rm -f .coverage; $(BIN)/python -m pytest --cov-report= --cov; status=$$?; \
	$(BIN)/coverage report --skip-covered; exit $$status

# The fault suite (tests/faults): real processes killed, Redis restarted, the
# database cut off; needs Redis, PostgreSQL and haproxy (about 10 minutes).
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -m faults

# N server processes (default 2; CLUSTER_SERVER=uvicorn for uvicorn) on Redis and
# PostgreSQL behind HAProxy on $(PORT); Ctrl-C stops what it started.
N ?= 2
CLUSTER_SERVER ?= daphne
cluster: $(STAMP)
	$(BIN)/python -m scripts.cluster --servers $(N) --server $(CLUSTER_SERVER) \
		--port $(PORT)

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Style, then layering: the import contracts in pyproject.toml (docs/toolkit.md).
# The docs' code samples are laid out by hand for reading, so only .py is formatted.
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . \
		&& $(BIN)/lint-imports

# The deploy/ files: alert rules through promtool (Debian's prometheus package), the
# Grafana dashboard as JSON.
check-deploy:
	promtool check rules deploy/prometheus/alerts.yml
	$(PYTHON) -c "import json; json.load(open('deploy/grafana/realtime.json'))"

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .coverage htmlcov
