# dataflow: build, test, demo and benchmark.
# `make demo` and `make test` work on a fresh machine: they install what they need.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip2
WASM_PROFILE := wasm
WASM_OUT     := target/$(WASM_TARGET)/$(WASM_PROFILE)
PROCESSOR    := target/release/dataflow-processor
BUILTINS     := timestamp flatten filter mask router select remove snake-case camel-case \
                cast insert-field extract-field hoist-field struct-flatten replace-field \
                timezone debezium-unwrap headers-to-payload
SHARED       ?= ../shared
CORPUS_SIZE  ?= 100000

comma := ,
empty :=
space := $(empty) $(empty)
BUILTIN_PACKAGES := $(foreach b,$(BUILTINS),-p dataflow-transform-$(b))
BUILTIN_FEATURES := $(subst $(space),$(comma),$(foreach b,$(BUILTINS),dataflow-transform-$(b)/component))

.PHONY: all setup wasm runtimes build test demo bench lint fmt clean services services-stop image crds fuzz chaos

all: build

## Toolchain pieces the build needs (idempotent).
setup:
	@command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)"; exit 1; }
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## Every WebAssembly component: the fused built-ins (embedded in the processor),
## each built-in on its own, the example custom transform and the test components.
wasm: setup
	$(CARGO) build --profile $(WASM_PROFILE) --target $(WASM_TARGET) -p dataflow-builtins
	$(CARGO) build --profile $(WASM_PROFILE) --target $(WASM_TARGET) $(BUILTIN_PACKAGES) --features $(BUILTIN_FEATURES)
	$(CARGO) build --profile $(WASM_PROFILE) --target $(WASM_TARGET) -p pii-redact -p dataflow-test-components -p dataflow-plain-component -p dataflow-async-component

## The script runtimes: the components that run `type: python` and
## `type: javascript` steps, built with componentize-py and componentize-js
## (fetched once from PyPI and npm into ~/.cache/dataflow-build).
PYTHON_RUNTIME     := target/runtimes/python.wasm
JAVASCRIPT_RUNTIME := target/runtimes/javascript.wasm
runtimes: $(PYTHON_RUNTIME) $(JAVASCRIPT_RUNTIME)
$(PYTHON_RUNTIME): wit/transform.wit $(wildcard transforms-wasm/python-runtime/*.py) scripts/build-runtimes.sh
	scripts/build-runtimes.sh python $@
$(JAVASCRIPT_RUNTIME): wit/transform.wit transforms-wasm/javascript-runtime/runtime.js scripts/build-runtimes.sh
	scripts/build-runtimes.sh javascript $@

## The binaries (the processor with the built-ins embedded), and the runtimes
## beside them in target/release/runtimes, where the processor looks.
build: wasm runtimes
	$(CARGO) build --release --workspace --bins
	mkdir -p target/release/runtimes
	cp $(PYTHON_RUNTIME) $(JAVASCRIPT_RUNTIME) target/release/runtimes/
	$(MAKE) --no-print-directory $(PRECOMPILED)/.done

## The built-ins and the runtimes compiled for this machine, where the processor
## takes them instead of compiling at start (the image ships this set).
PRECOMPILED := target/release/precompiled
$(PRECOMPILED)/.done: $(PROCESSOR) $(PYTHON_RUNTIME) $(JAVASCRIPT_RUNTIME)
	rm -rf $(PRECOMPILED)
	$(PROCESSOR) precompile --out $(PRECOMPILED) >/dev/null
	touch $@

## The real servers the connector tests use (PostgreSQL, ClickHouse, Apache Kafka):
## installed when missing, started when not running; prints shell exports.
services: build
	@scripts/services.sh start

## Stops exactly what `make services` started.
services-stop:
	@scripts/services.sh stop

## Every test: unit, golden (native and Wasm), chains, hostile components, CLI end to
## end, connectors against the real servers; formatting and clippy first.
test: build lint
	services_env="$$(scripts/services.sh start)" && eval "$$services_env" && $(CARGO) test --release --workspace --no-fail-fast

## A local DataFlow: generator -> built-in chain -> stdout, with an error sink;
## then a flow that runs until Ctrl-C with its page (the address is printed,
## DEMO_UI sets where it listens).
DEMO_UI ?= 127.0.0.1:8080
demo: build
	$(PROCESSOR) run --spec examples/local-demo.yaml
	@echo "--- now a flow that runs until Ctrl-C; open the address below to watch it"
	$(PROCESSOR) run --spec examples/live-demo.yaml --ui $(DEMO_UI)

## Throughput of every built-in (Wasm and native), the chain, file -> chain -> file,
## and Kafka -> PostgreSQL and ClickHouse against the real servers.
bench: build
	@test -f $(SHARED)/bench/corpus.py || { echo "needs $(SHARED)/bench/corpus.py (set SHARED=...)"; exit 1; }
	mkdir -p bench-out
	python3 $(SHARED)/bench/corpus.py $(CORPUS_SIZE) > bench-out/corpus.jsonl
	$(CARGO) bench -p dataflow-processor --bench throughput -- $(CURDIR)/bench-out/corpus.jsonl
	services_env="$$(scripts/services.sh start)" && eval "$$services_env" && $(CARGO) bench -p dataflow-tests --bench kafka_sinks -- $(CURDIR)/bench-out/corpus.jsonl

## The chaos test at full size: a million Kafka messages into PostgreSQL through
## ten SIGKILLs, a PostgreSQL outage and a broker restart (`make test` runs it small).
CHAOS_MESSAGES ?= 1000000
CHAOS_KILLS ?= 10
CHAOS_RATE ?= 10000
chaos: build
	services_env="$$(scripts/services.sh start)" && eval "$$services_env" && DATAFLOW_CHAOS_MESSAGES=$(CHAOS_MESSAGES) DATAFLOW_CHAOS_KILLS=$(CHAOS_KILLS) DATAFLOW_CHAOS_RATE=$(CHAOS_RATE) \
		$(CARGO) test --release -p dataflow-tests --test chaos -- --nocapture

## Coverage-guided fuzzing of the parsers (spec, JSON, paths and conditions, the
## packed batch codec) with libFuzzer: nightly Rust and cargo-fuzz are installed
## when missing. Each target runs FUZZ_SECONDS; `make test` runs a short stable pass.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := spec json paths_and_conditions packed
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

## Formatting and clippy, natively and for the component target.
lint: wasm
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --profile $(WASM_PROFILE) --target $(WASM_TARGET) -p dataflow-builtins -p pii-redact -p dataflow-test-components -p dataflow-plain-component -p dataflow-async-component -- -D warnings

fmt:
	$(CARGO) fmt --all

## The chart's CRD, regenerated from api/ (a test fails when it is stale).
crds: build
	./target/release/dataflow-operator crd --kind DataFlow > charts/dataflow-operator/crds/dataflows.dataflow.dataflow.io.yaml
	./target/release/dataflow-operator crd --kind DataFlowCron > charts/dataflow-operator/crds/dataflowcrons.dataflow.dataflow.io.yaml

## The container image (operator + processor); needs a Docker engine.
IMAGE ?= dataflow:dev
image:
	docker build -t $(IMAGE) .

clean:
	$(CARGO) clean
	rm -rf bench-out
