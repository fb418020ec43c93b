# One set of commands, locally and in CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test services lint typecheck pytest pytest-postgres pytest-timescaledb fuzz-ingest bench-storage bench bench-ingest bench-mqtt-clients bench-water bench-water-replay bench-transit bench-transit-live bench-transit-learn bench-gtfs bench-headways bench-api bench-bus-history bench-exports bench-route-days bench-notify bench-fleet soak eval eval-water eval-water-real eval-water-sim eval-transit eval-transit-real clean

$(STAMP): pyproject.toml firmware-sim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,demo]' -e ./firmware-sim
	touch $(STAMP)

# The `bench` extra (pyproject.toml), for the benchmarks that compare against other libraries.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/citysense demo

# The system parts the tests need (Mosquitto, Chromium, PostgreSQL, TimescaleDB in a second
# cluster on 5433), installed and started where missing: .ci/services says how when it may not.
services:
	.ci/services

test: $(STAMP) services lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	cd firmware-sim && ../$(BIN)/mypy

# The whole suite on each storage engine: plain PostgreSQL (5432, or CITYSENSE_TEST_DATABASE_URL)
# and TimescaleDB (CITYSENSE_TEST_TIMESCALE_URL). The simulator's tests never touch a database,
# so they run once. A skip fails the run: every service is here (tests/conftest.py).
#
# Most tests wait on real processes, brokers, browsers and the database rather than on the CPU, so
# pytest-xdist spreads each run's test files over PYTEST_WORKERS processes (0: one process). The
# two runs can also go at once with PYTEST_JOBS=2 (separate servers; every test makes its own
# databases, topic prefix, client ids, ports and temp dirs), which on 2 cores makes a few
# timing-bound tests (the serial gateway's spool drain) fail now and then: one after the other is
# the default. GNU make's -O prints each run's output whole when it ends, and either run failing
# fails `make pytest`.
TIMESCALE_URL ?= $(or $(CITYSENSE_TEST_TIMESCALE_URL),postgresql://postgres@127.0.0.1:5433/postgres)
POSTGRES_URL  ?= $(or $(CITYSENSE_TEST_DATABASE_URL),postgresql://postgres@127.0.0.1:5432/postgres)
PYTEST_WORKERS ?= 2
PYTEST_JOBS ?= 1
PYTEST := CITYSENSE_TEST_NO_SKIPS=1 $(BIN)/pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist loadfile

pytest: $(STAMP)
	@$(MAKE) --no-print-directory -j$(PYTEST_JOBS) -Otarget pytest-postgres pytest-timescaledb

pytest-postgres: $(STAMP)
	$(PYTEST) tests firmware-sim/tests

pytest-timescaledb: $(STAMP)
	CITYSENSE_TEST_ENGINE=timescaledb CITYSENSE_TEST_DATABASE_URL=$(TIMESCALE_URL) \
		CITYSENSE_TEST_POSTGRES_URL=$(POSTGRES_URL) $(PYTEST) tests

# 100,000 hostile messages through a real ingester, Mosquitto and PostgreSQL (docs/fuzzing.md).
fuzz-ingest: $(STAMP)
	CITYSENSE_FUZZ_INGEST_CASES=$${CITYSENSE_FUZZ_INGEST_CASES:-100000} \
		$(BIN)/pytest -q -s -p no:cacheprovider tests/test_ingest_fuzz.py

# Every benchmark, each printing its figures next to its baselines (docs/benchmarks.md).
bench: bench-storage bench-ingest bench-mqtt-clients bench-water bench-water-replay bench-transit bench-transit-live bench-transit-learn bench-gtfs bench-headways bench-api bench-bus-history bench-exports bench-route-days bench-notify bench-fleet

# What the notification outbox costs an alert change, and how fast it drains (docs/benchmarks.md).
bench-notify: $(STAMP)
	$(BIN)/python -m bench.bench_notify

bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest

# The raw drain rate of 100,000 queued QoS 1 messages by the ingester's MQTT client, gmqtt, paho-mqtt
# (manual acknowledgement), aiomqtt and mosquitto_sub, when each sends its PUBACK, and PUBLISH
# decoding by ingest/mqttwire.py beside the mqtt5 package (docs/ingest.md, The MQTT client).
# `make bench-mqtt-clients BENCH_MESSAGES=N` changes the count.
BENCH_MESSAGES ?= 100000
bench-mqtt-clients: $(BENCH_STAMP)
	$(BIN)/python -m bench.mqtt_clients --messages $(BENCH_MESSAGES)

# Plain PostgreSQL and TimescaleDB side by side: drain rate, bytes per reading before and after
# compression, 100 stations' 30-day hourly query, one station's raw year (docs/benchmarks.md).
bench-storage: $(STAMP)
	CITYSENSE_TEST_TIMESCALE_URL=$(TIMESCALE_URL) $(BIN)/python -m bench.bench_storage

# Ten minutes at 5,000 messages/s with a 60-second database outage: memory flat, nothing lost.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

eval: eval-water eval-water-sim eval-transit eval-transit-real

# Water event detection: ours vs the CANARY-style baseline on labelled data (docs/water-detection.md).
eval-water: $(STAMP)
	$(BIN)/python -m bench.eval_water

# The same on real labelled 1-minute utility data: the GECCO 2018 Industrial Challenge set
# (Thüringer Fernwasserversorgung), which is not in the repository: download
# 1_gecco2018_water_quality.csv from https://doi.org/10.5281/zenodo.3884398 and run
# `make eval-water-real CSV=path/to/1_gecco2018_water_quality.csv` (docs/water-detection.md).
CSV ?=
GECCO_ARGS := --time-col Time --label-col EVENT --timezone Europe/Berlin \
	--map pH=ph --map Trueb=turbidity_ntu --map Cl_2=free_chlorine_mgl --map Leit=conductivity_uscm \
	--map Redox=orp_mv --map Tp=temperature_c --map Fm=flow_m3h \
	--precision ph=0.01 --precision turbidity_ntu=0.001 --precision free_chlorine_mgl=0.001 \
	--precision conductivity_uscm=1 --precision orp_mv=1 --precision temperature_c=0.1 --precision flow_m3h=1
eval-water-real: $(STAMP)
	@if [ -z "$(CSV)" ] || [ ! -f "$(CSV)" ]; then \
		echo "eval-water-real: no data file '$(CSV)'. Download 1_gecco2018_water_quality.csv (GECCO 2018"; \
		echo "Industrial Challenge, Zenodo record 3884398: https://doi.org/10.5281/zenodo.3884398) and run"; \
		echo "  make eval-water-real CSV=path/to/1_gecco2018_water_quality.csv"; \
		echo "Never add the file to the repository."; exit 2; fi
	$(BIN)/python -m bench.eval_water --csv "$(CSV)" $(GECCO_ARGS)

# Transit: trip assignment, delay and ETA errors against ground truth, next to TheTransitClock.
eval-transit: $(STAMP)
	$(BIN)/python -m bench.eval_transit

# Transit on real GPS: nine labelled traces of NYC route B63 (2010), today's matcher beside the previous
# one (from git) and a timetable-only baseline, in one run (docs/transit.md).
eval-transit-real: $(STAMP)
	$(BIN)/python -m bench.eval_transit_real

bench-transit: $(STAMP)
	$(BIN)/python -m bench.bench_transit

# GET /api/v1/buses/live with 2,000 buses through a real server, 1 and 4 clients.
bench-transit-live: $(STAMP)
	$(BIN)/python -m bench.bench_transit_live --clients 1 --requests 6000
	$(BIN)/python -m bench.bench_transit_live --clients 4

# Learning the live TripUpdates' travel times from 14 days of stored fixes (docs/benchmarks.md).
bench-transit-learn: $(STAMP)
	$(BIN)/python -m bench.bench_transit_learn
	$(BIN)/python -m bench.bench_transit_learn --fleets 10

# A borough-sized GTFS feed: import time and memory, worker start with stored grids, matching (docs/benchmarks.md).
bench-gtfs: $(STAMP)
	$(BIN)/python -m bench.bench_gtfs_borough

# The hourly headway profile of the route performance page beside the route summary (docs/benchmarks.md).
bench-headways: $(STAMP)
	$(BIN)/python -m bench.bench_headway_profile

# A week of one bus at 1 Hz through GET /api/v1/buses/{id}/history, beside reading every fix.
bench-bus-history: $(STAMP)
	$(BIN)/python -m bench.bench_bus_history

bench-water: $(STAMP)
	$(BIN)/python -m bench.bench_water

# `citysense replay water` of a year of 1-minute readings of one station, end to end, with the
# previous live path on a slice as the baseline (docs/benchmarks.md).
bench-water-replay: $(STAMP)
	$(BIN)/python -m bench.bench_water_replay

# Several analyze processes: water throughput of one and of two (--fleet), and the takeover after kill -9.
bench-fleet: $(STAMP)
	$(BIN)/python -m bench.bench_fleet

# 30 days of 1-minute readings of one station, bucketed hourly, through the API; the stations list of

# 30 days of 1-minute readings of one station, bucketed hourly, through the API; a station page's
# requests (charts bucketed to their width, QC marks with and without their index); the stations list of
# 50 stations with their states, beside its previous fetch and judgement (docs/benchmarks.md).
bench-api: $(STAMP)
	$(BIN)/python -m bench.bench_api

# A year of one station's one-minute readings exported as CSV through the API and the command line:
# time and the API's peak memory, beside the bare COPY and the JSON endpoint (docs/benchmarks.md).
bench-exports: $(STAMP)
	$(BIN)/python -m bench.bench_exports

# Route performance over 30 service days of the demo fleet from stored fixes: one route, and every
# route ranked, beside the one-day computation times 30 (docs/benchmarks.md).
bench-route-days: $(STAMP)
	$(BIN)/python -m bench.bench_route_days

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Water, live path on firmware-sim ground truth: detection delay per event, fault classification;
# then the demo's fleet, cadence and settings beside its previous ones (docs/water-detection.md).
eval-water-sim: $(STAMP)
	$(BIN)/python -m bench.eval_water_sim
	$(BIN)/python -m bench.eval_water_sim --demo
