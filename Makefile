# Top-level driver: CMake does the building; these targets are the README's.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PY         ?= /usr/bin/python3
JOBS       ?= $(shell nproc)
PYTEST_ARGS ?=
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_RUNS  ?= 2000
FUZZ_TARGETS ?=

.PHONY: all build deps test unit integration dev asan asan-unit tsan tsan-unit lint lint-quick format bench bench-router bench-bus bench-ingest fuzz fuzz-build fuzz-smoke clean

all: build

deps:
	bash scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

integration: build
	CITRUS_BIN=$(abspath $(BUILD))/citrus $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) integration

dev: deps
	$(MAKE) build
	./$(BUILD)/citrus dev

$(ASAN_BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCITRUS_SANITIZE=ON >/dev/null

asan-unit: $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

asan: asan-unit
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  CITRUS_LIVENESS_SCALE=2 CITRUS_BIN=$(abspath $(ASAN_BUILD))/citrus $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# ThreadSanitizer: the unit tests (CI runs these), then the integration suite
# against the TSan binary (the logs are scanned for reports after each test).
TSAN_SUPP = suppressions=$(abspath tests/tsan.supp)
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 $(TSAN_SUPP)"
$(TSAN_BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCITRUS_TSAN=ON >/dev/null

tsan-unit: $(TSAN_BUILD)/Makefile
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	$(TSAN_ENV) ctest --test-dir $(TSAN_BUILD) --output-on-failure -j $(JOBS)

tsan: tsan-unit
	TSAN_OPTIONS="second_deadlock_stack=1 history_size=4 $(TSAN_SUPP)" \
	  CITRUS_LIVENESS_SCALE=3 CITRUS_BIN=$(abspath $(TSAN_BUILD))/citrus $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# The layering (scripts/layers.py), no export without a user elsewhere
# (scripts/exports.py, over the build's objects), formatting and cppcheck:
# seconds after a build; CI runs these.
lint-quick: build
	$(PY) scripts/layers.py
	$(PY) scripts/exports.py $(BUILD)
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -I include -I src $$(git ls-files 'src/*.c')

# Plus clang-tidy over every source (minutes on this machine).
lint: build lint-quick
	clang-tidy -p $(BUILD) --quiet --warnings-as-errors='*' $$(git ls-files 'src/*.c')

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

bench: build
	BUILD=$(abspath $(BUILD)) bash bench/run-kv.sh
	BUILD=$(abspath $(BUILD)) bash bench/run-auth.sh

# The router against direct libpq and PgBouncer on one PostgreSQL (issue 5).
bench-router: build
	BUILD=$(abspath $(BUILD)) bash bench/run-router.sh

# Durable publish: the embedded bus against Redis Streams with appendfsync
# always (issue 15); installs redis-server and libhiredis-dev when missing.
bench-bus: build
	BUILD=$(abspath $(BUILD)) bash bench/run-bus.sh

# Enrollment events per second through the enrollment ingest worker, end to
# end in one process (issue 15); see bench/run-ingest.sh for the knobs.
bench-ingest: build
	BUILD=$(abspath $(BUILD)) bash bench/run-ingest.sh

# libFuzzer targets (tests/fuzz) in their own clang build; see scripts/fuzz.sh.
# FUZZ_TARGETS="key config" limits a run to some targets.
$(FUZZ_BUILD)/Makefile: CMakeLists.txt
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCITRUS_FUZZ=ON >/dev/null

fuzz-build: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) --target fuzzers -j $(JOBS)

fuzz: fuzz-build
	bash scripts/fuzz.sh $(FUZZ_BUILD) run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	bash scripts/fuzz.sh $(FUZZ_BUILD) smoke $(FUZZ_RUNS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
