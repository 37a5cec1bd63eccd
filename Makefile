# qamqor: the two commands of README.md, and the benchmarks.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
FAMILIES ?= 20000
DATA ?= data/nation

.PHONY: install run test bench lint clean

$(BIN)/qamqor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/qamqor

## make run: install, generate a synthetic nation, run the daily pipeline, serve the web app
run: install
	$(BIN)/qamqor generate --out $(DATA) --families $(FAMILIES) --seed 1
	$(BIN)/qamqor run $(DATA)
	$(BIN)/qamqor demo-users $(DATA)
	@echo "Look at: $(DATA)/calibration.json, $(DATA)/levels/summary.json, $(DATA)/audit/report.html"
	@echo "One family's card: $(BIN)/qamqor card FAMILY_ID $(DATA)"
	@echo "Web app and API: http://127.0.0.1:8000 (API docs at /docs; log in with a demo user above; Ctrl-C stops)"
	$(BIN)/qamqor serve $(DATA) --port 8000

## make test: install and pass the whole suite (unit and integration). It installs the Debian
## packages the tests need when missing (PostgreSQL server binaries, Chromium); the Spark engine
## tests need Java 17+, and without it make test stops with the reason (it does not skip them)
test: install
	bash scripts/system-deps.sh
	$(BIN)/ruff check qamqor tests
	@$(BIN)/python -c "import sys; from qamqor.engine.spark import java_problem as p; sys.exit(p() and 'make test: ' + p())"
	$(BIN)/pytest

## make bench: batch steps (bench/run.py → bench/results.json), the national measures' rules beside
## the same rules in OpenFisca on the 6.3 M nation (bench/openfisca.py → bench/openfisca-results.json),
## then publishing into PostgreSQL and
## API reads under load on the 1 M nation it leaves (bench/ops.py → bench/ops-results.json), and
## publishing the 6.3 M nation (→ bench/publish-results.json), then
## every web page's time on it (bench/web.py → bench/web-results.json; pages over 300 ms listed)
BENCH_OPS ?= bench/work/1000000
BENCH_PUBLISH ?= bench/work/6300000
bench: install
	bash scripts/system-deps.sh bench
	$(BIN)/python bench/run.py
	$(BIN)/python bench/openfisca.py bench/work/6300000 --out bench/openfisca-results.json
	$(BIN)/python bench/ops.py $(BENCH_OPS) --out bench/ops-results.json
	$(BIN)/python bench/ops.py $(BENCH_PUBLISH) --no-api --out bench/publish-results.json
	$(BIN)/python bench/web.py $(BENCH_OPS) --out bench/web-results.json

lint: install
	$(BIN)/ruff check qamqor tests
	$(BIN)/ruff format --check qamqor tests

clean:
	rm -rf $(VENV) data bench/work
