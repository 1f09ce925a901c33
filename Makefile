# Everyday commands. `make help` lists them.
#
#   make run     set up what is missing, start the broker and the whole pipeline on live Kraken (Ctrl-C stops it)
#   make test    set up what is missing, start the broker, run every test (unit + integration); CI runs it

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MUTMUT_VERSION := 3.8.1
PAIRS ?= XBT/USDT
TOPIC ?= crypto.trades
N ?= 5
SYMBOL ?= XBT/USDT
SILVER ?= data/silver/crypto_trades
# The local broker's script needs only the standard library, so it runs on the system's python3 before .venv exists;
# that python3 does not have this project installed, so it finds the package (src/lakehouse) through PYTHONPATH.
BROKER := PYTHONPATH=src $(PYTHON) infra/kafka/broker.py

.DEFAULT_GOAL := help
.PHONY: help setup connector broker-up broker-down broker-status cluster-up cluster-down cluster-status run demo audit \
	audit-completeness consume chart gold-recompute optimize clean-data test test-unit test-quick test-integration \
	bench bench-quick mutants test-failover test-longrun pyzip page status

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

setup: $(VENV)/.installed connector  ## create .venv, install requirements, fetch the Kafka broker, Kafka connector and Delta jars, compile spark/source and spark/logstore
	@$(BROKER) fetch

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

# Spark's Kafka connector and Delta Lake's jars for the installed pyspark/delta-spark, resolved with Maven (Spark's own
# resolver, Ivy, cannot reach Maven Central from some machines); the jobs hand these jars to Spark, else they fall back
# to spark.jars.packages.
connector: $(VENV)/.installed
	@$(PY) spark/fetch_jars.py

pyzip: $(VENV)/.installed  ## zip the lakehouse package into dist/lakehouse.zip, for spark-submit --py-files on a cluster
	@mkdir -p dist
	@$(PY) -c 'from pathlib import Path; from lakehouse.spark.session import zip_package; print(zip_package(Path("dist")))'

broker-up:  ## start the local Kafka broker on localhost:19092 (no-op when it is up)
	@$(BROKER) up

broker-down:  ## stop the local Kafka broker
	@$(BROKER) down

broker-status:  ## is the local broker running?
	@$(BROKER) status

# A 3-broker Kafka cluster (+3 KRaft controllers) and a Spark standalone master with 2 workers; data/cluster/.
cluster-up: $(VENV)/.installed  ## start the 3-broker Kafka cluster (localhost:19092,19094,19096) and Spark standalone (spark://127.0.0.1:7077)
	@$(PY) infra/cluster.py up

cluster-down: $(VENV)/.installed  ## stop the cluster cleanly (its data stays under data/cluster/)
	@$(PY) infra/cluster.py down

cluster-status: $(VENV)/.installed  ## per cluster process: pid, port, alive; brokers in the metadata, ALIVE Spark workers
	@$(PY) infra/cluster.py status

run: setup  ## the whole pipeline on live Kraken (PAIRS="XBT/USDT ETH/USD" to choose; CLUSTER=1 on make cluster-up's cluster); Ctrl-C stops it
	$(PY) infra/run_pipeline.py --topic $(TOPIC) $(foreach p,$(PAIRS),--pair $(p)) $(if $(CLUSTER),--cluster)

demo: setup  ## the whole pipeline offline: a fake Kraken replays a recording shipped in the repo (CLUSTER=1: on the cluster)
	$(PY) infra/run_pipeline.py --demo --topic $(TOPIC) $(if $(CLUSTER),--cluster)

page: $(VENV)/.installed  ## the live page alone on existing data: http://127.0.0.1:8500/ (PORT=, DATA=, TOPIC=)
	$(PY) infra/page.py --topic $(TOPIC) $(if $(PORT),--port $(PORT)) $(if $(DATA),--data-dir $(DATA))

# No set-up first: a read-only look that must answer at once. make's own exit code is 0 or 2 (make turns any failure
# into 2); `python infra/status.py` exits 0 healthy or starting, 1 stale or failed, 2 nothing running.
status:  ## the pipeline's health on one screen (DATA= its folder, JSON=1); exit 0 healthy or starting
	@$(PY) infra/status.py $(if $(DATA),--data-dir $(DATA)) $(if $(JSON),--json)

audit: setup  ## Bronze vs the broker, then Silver's trade ids per pair (exit non-zero if either finds a problem)
	@rc=0; $(PY) spark/jobs/bronze_audit.py --topic $(TOPIC) || rc=$$?; \
	$(PY) spark/jobs/silver_completeness_audit.py --silver $(SILVER) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

audit-completeness: $(VENV)/.installed  ## Silver holds every trade_id of each pair once? (SYMBOLS="XBT/USDT ..." to choose)
	$(PY) spark/jobs/silver_completeness_audit.py --silver $(SILVER) $(foreach s,$(SYMBOLS),--symbol $(s))

consume: $(VENV)/.installed  ## print the last N records of the topic (like `rpk topic consume crypto.trades -n 5`)
	@$(PY) ingestion/consume_trades.py --topic $(TOPIC) -n $(N)

chart: $(VENV)/.installed  ## candles + volume of SYMBOL from Gold to data/charts/ (no Spark; FROM=/TO= optional, UTC)
	$(PY) spark/jobs/plot_ohlcv.py --symbol "$(SYMBOL)" $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) \
	  --png data/charts/$(subst /,_,$(SYMBOL)).png --html data/charts/$(subst /,_,$(SYMBOL)).html

gold-recompute: $(VENV)/.installed  ## recompute Gold bars for FROM..TO (UTC, whole minutes) from Silver, in batch
	$(PY) spark/jobs/gold_ohlcv_batch.py --from $(FROM) --to $(TO)

optimize: setup  ## compact (OPTIMIZE) and clean (VACUUM, 3-day retention) Silver, quarantine and Gold now; safe while running
	$(PY) spark/jobs/optimize_tables.py

clean-data:  ## dev reset: delete every layer, checkpoint and log under data/ (keeps the broker's data)
	rm -rf data/bronze data/silver data/gold data/checkpoints data/logs data/charts

# The test tiers (README "Tests" states each one's measured time). The files run on 2 pytest-xdist workers, one file per
# worker at a time, longest first (tests/durations.py orders them from the seconds recorded on every run).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: setup broker-up  ## every test (unit + integration) against the real broker and Spark, on 2 workers: what CI runs
	$(PY) -m pytest $(XDIST) -m "not longrun" tests/unit tests/integration

test-unit: $(VENV)/.installed  ## unit tests only: no broker (one local Spark session, no jars); about a minute
	$(PY) -m pytest tests/unit

test-quick: setup broker-up  ## unit tests + the quick tier (-m quick): producer vs fake Kraken and broker, each layer once, one pipeline run
	$(PY) -m pytest $(XDIST) -m "(quick or not integration) and not longrun" tests/unit tests/integration

test-integration: setup broker-up  ## integration tests only (not the long catch-up: make test-longrun)
	$(PY) -m pytest $(XDIST) -m "not longrun" tests/integration

test-failover: setup  ## the cluster's test with the pipeline's failover phase (about 8 minutes); CI runs it after make test
	CLUSTER_FAILOVER=1 $(PY) -m pytest tests/integration/test_cluster.py

test-longrun: setup broker-up  ## the long catch-up: 1.5M trades through every layer at a 512 MB driver (24 min measured on a busy 2-core machine); CI runs it after test-failover
	$(PY) -m pytest -m longrun tests/integration/test_long_catchup.py

mutants: $(VENV)/.installed  ## mutation testing of the pure core with mutmut (~15 min on 2 quiet cores; not in CI); see README
	$(PY) -m pip install --quiet mutmut==$(MUTMUT_VERSION)
	$(PY) tests/mutation/stage.py data/mutants
	cd data/mutants && $(abspath $(PY)) -m mutmut run --max-children 2 > mutmut-run.log 2>&1 || \
		{ tail -c 3000 mutmut-run.log; exit 1; }
	$(PY) tests/mutation/report.py data/mutants

bench: setup broker-up  ## benchmarks vs the real broker, Spark and fake Kraken (~75 min; bench-quick ~27); see BENCHMARKS.md
	$(PY) bench/run_all.py

bench-quick: setup broker-up  ## each benchmark small (<3 min each), to compare two versions
	$(PY) bench/run_all.py --quick
