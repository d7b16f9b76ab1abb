# earlywarn — every target bootstraps the local venv itself (Python >= 3.11 needed).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: venv run test test-fast lint format bench kafka-up kafka-down kafka-status schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## make run: the whole pipeline in one process (memory://) with a simulated storm
run: venv
	$(BIN)/earlywarn run

## make test: the whole suite (Kafka tests run when KAFKA_BOOTSTRAP_SERVERS is set)
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not kafka and not slow and not e2e" $(PYTEST_ARGS)

## make lint: ruff + mypy strict; changes nothing
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make bench: benchmarks side by side (starts the local broker if none is given)
bench: venv
	$(BIN)/python -m loadtests.bench_bus

schemas: venv
	$(BIN)/python -m schemas.export

kafka-up:
	bash deploy/kafka/kafka.sh start
kafka-down:
	bash deploy/kafka/kafka.sh stop
kafka-status:
	bash deploy/kafka/kafka.sh status

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .earlywarn
