# unipruning — build, test, demo and benchmark targets.
#
# OpenBLAS (Debian libopenblas-dev) is used for matrix products when it is
# installed (build tag "openblas", cgo); otherwise the pure-Go gonum kernel.
# `make setup` installs it on Debian/Ubuntu.

SHELL := /bin/bash
GO ?= go
BIN := bin/unipruning
DATA ?= ../shared/data
OPENBLAS_LIBS ?= /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so
# How setup installs OpenBLAS (overridable, e.g. by the test of this file).
INSTALL_OPENBLAS ?= if command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libopenblas-dev; \
	else echo "OpenBLAS not found and no apt-get: building with the pure-Go kernel"; fi
DEMO ?= ./scripts/demo.sh
# The build tag is decided when a recipe runs, not when make reads this
# file (recursive "=", a fresh look each time): `make demo` builds with
# OpenBLAS once its setup step has installed it.
TAGS ?= $(if $(shell ls $(OPENBLAS_LIBS) 2>/dev/null | head -1),openblas,)
GOFLAGS_TAGS = $(if $(TAGS),-tags $(TAGS),)

.PHONY: all setup build test test-short vet fmt demo bench bench-search fuzz results clean static chaos bench-stream

all: build

## setup: install system packages (OpenBLAS) and fetch Go modules
setup:
	@if ! ls $(OPENBLAS_LIBS) >/dev/null 2>&1; then $(INSTALL_OPENBLAS); fi
	$(GO) mod download

## build: the unipruning binary in bin/ (OpenBLAS when available)
build:
	$(GO) build $(GOFLAGS_TAGS) -o $(BIN) ./cmd/unipruning

## static: a static pure-Go binary (for FROM scratch containers)
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/unipruning-static ./cmd/unipruning

## vet: gofmt and go vet
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOFLAGS_TAGS) ./...

## test: vet, then every test (pure-Go kernel and, when present, OpenBLAS)
test: vet
	$(GO) test $(GOFLAGS_TAGS) -count=1 -timeout 25m ./...
	@if [ -n "$(TAGS)" ]; then $(GO) test -count=1 ./nn/ ; fi

## demo: set up and run the main job on the bundled defaults
demo: setup build
	$(DEMO) $(BIN) $(DATA)

## bench: micro and model benchmarks (figures in docs/benchmarks.md)
bench: build
	$(GO) test $(GOFLAGS_TAGS) -run XXX -bench 'Sgemm|Forward|Train' -benchtime 2x ./nn/
	$(GO) test $(GOFLAGS_TAGS) -run XXX -bench . -benchtime 2x ./prune/ ./model/...
	$(GO) test $(GOFLAGS_TAGS) -run XXX -bench Layer7B -benchtime 1x -timeout 60m ./prune/layerwise/
	$(GO) test $(GOFLAGS_TAGS) -run XXX -bench . -benchtime 5x ./shard/
	$(GO) test -run XXX -bench StreamThroughput -benchtime 20x ./transport/

## bench-search: search step against PyTorch, peak RSS against the memory plan (issue 17;
## synthetic 110M, seqlen 256 and 1024, OPENBLAS_CORETYPE as set and unset; see the script)
bench-search: build
	./tools/bench/bench_search.sh $(BIN)

## chaos: fault-injection suites (processes on loopback; containers when docker works)
chaos:
	$(GO) test -tags chaos -count=1 -timeout 40m -v ./chaos/

## fuzz: short runs of every fuzz target
fuzz:
	$(GO) test -run XXX -fuzz FuzzOpen -fuzztime 30s ./model/safetensors/
	$(GO) test -run XXX -fuzz FuzzLoad -fuzztime 30s ./model/tokenizer/
	$(GO) test -run XXX -fuzz FuzzLlama2CEncode -fuzztime 30s ./model/tokenizer/
	$(GO) test -run XXX -fuzz FuzzTokenizerJSON -fuzztime 30s -fuzzminimizetime 5s ./model/tokenizer/
	$(GO) test -run XXX -fuzz FuzzTiktoken -fuzztime 30s -fuzzminimizetime 5s ./model/tokenizer/
	$(GO) test -run XXX -fuzz FuzzByteBPEEncode -fuzztime 30s -fuzzminimizetime 5s ./model/tokenizer/
	$(GO) test -run XXX -fuzz FuzzSplitScanners -fuzztime 30s ./model/tokenizer/

clean:
	rm -rf bin

## results: regenerate the perplexity tables and charts (docs/results.md, docs/img)
results: build
	./scripts/results.sh

## bench-stream: peak RSS of whole-model vs layer-streamed eval and of the layer-wise prune on
## synthetic 110M/374M/1.1B models, then the 1.1B model's eval and prune in memory-limited
## containers (docs/benchmarks.md, "Memory: …"; ≈30 min on a loaded 2-core machine)
bench-stream: build
	./scripts/scale-stream.sh
	./scripts/scale-stream-docker.sh
