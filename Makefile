# Top-level driver: CMake does the building; these targets are the README's.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PY         ?= /usr/bin/python3
JOBS       ?= $(shell nproc)
PYTEST_ARGS ?=

.PHONY: all build deps test unit integration dev asan asan-unit lint format bench clean

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
	  CITRUS_BIN=$(abspath $(ASAN_BUILD))/citrus $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

lint: build
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -I include -I src $$(git ls-files 'src/*.c')
	clang-tidy -p $(BUILD) --quiet $$(git ls-files 'src/*.c')

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

bench: build
	bash bench/run-kv.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
