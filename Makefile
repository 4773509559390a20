# The two commands of the README.
#   make test  installs what is missing, builds with sanitizers, runs every test
#   make demo  installs what is missing, builds, loads the sample data, decides
#
# Packages come from Debian (see DESIGN.md); apt-get runs only when one is
# missing, with sudo when not root.

BUILD      ?= build
JOBS       ?= 2
PACKAGES   := build-essential cmake pkg-config clang libclang-rt-14-dev \
              liblua5.4-dev lua5.4 libuv1-dev libjansson-dev libsqlite3-dev \
              libhttp-parser-dev libssl-dev libmicrohttpd-dev lua-busted sqlite3 python3
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test demo bench clean

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD)/release -j$(JOBS)

# Tests run on a sanitizer build (AddressSanitizer + UBSan), warnings as errors.
test: deps
	cmake -S . -B $(BUILD)/test -DCMAKE_BUILD_TYPE=Debug -DTAILOR_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)/test -j$(JOBS)
	cd $(BUILD)/test && ctest --output-on-failure -j$(JOBS)

DEMO_DB := $(BUILD)/demo.db
demo: build
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BUILD)/release/tailor ingest --db $(DEMO_DB) examples/data/sample.ndjson
	$(BUILD)/release/tailor stats --db $(DEMO_DB)
	@echo '--- recommendations for visitor v1 on the home page:'
	echo '{"kind":"recommend","anon":"v1","page":{"type":"home"},"k":5}' | \
	  $(BUILD)/release/tailor decide --db $(DEMO_DB) --strategies strategies

# Benchmarks print figures (see bench/); not tests.  DATA is the folder of the
# Diginetica sessions.
DATA ?= ../shared/data/diginetica
bench: build
	$(BUILD)/release/bench/index_bench $(DATA)

clean:
	rm -rf $(BUILD)
