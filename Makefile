# The two commands of the README.
#   make test  installs what is missing, builds with sanitizers, runs every test
#   make demo  installs what is missing, builds, loads the sample data and
#              serves the demo shop on http://127.0.0.1:7300/ until Ctrl-C
#
# Packages come from Debian (see DESIGN.md); apt-get runs only when one is
# missing, with sudo when not root.

BUILD      ?= build
JOBS       ?= 2
# npm comes with some builds of nodejs (NodeSource's, which conflicts with
# Debian's npm package): ask for the package only when the command is missing.
NPM        := $(if $(shell command -v npm),,npm)
PACKAGES   := build-essential cmake pkg-config clang libclang-rt-14-dev \
              liblua5.4-dev lua5.4 libuv1-dev libjansson-dev libyajl-dev libsqlite3-dev \
              libhttp-parser-dev libssl-dev libmicrohttpd-dev lua-busted sqlite3 python3 \
              libpq-dev postgresql-15 libjemalloc2 \
              libcurl4-openssl-dev python3-aiosmtpd openssl zlib1g-dev libxgboost-dev \
              nodejs chromium prometheus $(NPM)
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

# The demo shop: the storefront's pages and the generated sample data in
# $(DEMO), loaded into a fresh store, served by `tailor serve` on loopback
# until Ctrl-C.  The server runs in $(DEMO), where the demo's config
# (examples/storefront/tailor.json) finds demo.db and site/; its address,
# and the confirmation links of its email capture, follow DEMO_PORT.
DEMO      := $(BUILD)/demo
DEMO_PORT ?= 7300
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)/site
	cp examples/storefront/*.html examples/storefront/*.css examples/storefront/*.js $(DEMO)/site/
	sed 's/127\.0\.0\.1:7300/127.0.0.1:$(DEMO_PORT)/g' examples/storefront/tailor.json > $(DEMO)/tailor.json
	python3 examples/data/generate.py --events $(DEMO)/shop.ndjson --site $(DEMO)/site
	$(BUILD)/release/tailor ingest --db $(DEMO)/demo.db $(DEMO)/shop.ndjson
	@echo
	@echo "  The demo shop:  http://127.0.0.1:$(DEMO_PORT)/"
	@echo "  Open it in a browser; use the bar at the top to act as a new visitor,"
	@echo "  a returning visitor or a VIP.  Ctrl-C stops the server."
	@echo
	cd $(DEMO) && exec $(CURDIR)/$(BUILD)/release/tailor serve --config tailor.json \
	  --strategies $(CURDIR)/strategies --listen 127.0.0.1:$(DEMO_PORT)

# Benchmarks print figures (see bench/); not tests.  DATA is the folder of the
# Diginetica sessions.  `make bench` runs the in-process ones; `make
# bench-serve` measures `tailor serve` beside Redis on loopback (it needs
# redis-server and wrk, installed here when missing).
DATA ?= ../shared/data/diginetica
BENCH_PACKAGES := redis-server wrk
bench: build
	$(BUILD)/release/bench/index_bench $(DATA)
	$(BUILD)/release/bench/ingest_bench $(DATA)
	$(BUILD)/release/bench/decide_bench $(DATA)

.PHONY: bench-serve
bench-serve: build
	@$(MAKE) --no-print-directory deps PACKAGES="$(BENCH_PACKAGES)"
	BUILD=$(CURDIR)/$(BUILD)/release bash bench/serve_bench.sh

# PostgreSQL against SQLite, the log's lag, three nodes (docs/scale-out.md).
.PHONY: bench-pg
bench-pg: build
	BUILD=$(CURDIR)/$(BUILD)/release bash bench/pg_bench.sh

# Offline evaluation (docs/evaluation.md): every session kernel on the
# Diginetica test pairs (SR-GNN protocol), beside the published figures.
.PHONY: eval
eval: build
	$(BUILD)/release/tailor eval --train $(DATA)/train.sessions --test $(DATA)/test.pairs

clean:
	rm -rf $(BUILD)
