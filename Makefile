# svidgate — developer entry points. `make test` is the test command.

GO          ?= go
BIN         := bin
SPIRE_BIN   := $(BIN)/spire
SPIRE_TOOLS := spire/tools
DEMO_DIR    := .demo

.PHONY: all build test lint spire demo demo-down clean

all: build

## build: the gateway binary, bin/svidgate
build:
	$(GO) build -o $(BIN)/svidgate ./cmd/svidgate

## spire: SPIRE server and agent (version pinned in spire/tools/go.mod) into bin/spire; reused when present
spire: $(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent

$(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent &: $(SPIRE_TOOLS)/go.mod
	@mkdir -p $(SPIRE_BIN)
	@echo "building SPIRE from $(SPIRE_TOOLS) (minutes on a cold cache; reused afterwards)"
	cd $(SPIRE_TOOLS) && GOBIN=$(CURDIR)/$(SPIRE_BIN) $(GO) install \
		github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent
	@touch $(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent

## test: unit and integration tests (real SPIRE, real svidgate binaries), with -race
test: spire build
	$(GO) test -race -count=1 ./...

## lint: go vet and gofmt
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l reports unformatted files:"; echo "$$out"; exit 1; fi

## demo: SPIRE, sample services and svidgate sidecars as local processes in .demo/ (Ctrl-C stops)
demo: spire build
	examples/local/demo.sh up

## demo-down: stop everything `make demo` started
demo-down:
	examples/local/demo.sh down

clean:
	rm -rf $(BIN)/svidgate $(DEMO_DIR)

## bench: svidgate vs nginx and HAProxy over loopback (~20 min; BENCH_QUICK=1 for a ~3 min smoke); table in bench/out/table.md
.PHONY: bench bench-micro
bench:
	bench/run.sh

## bench-micro: Go benchmarks of the per-request hot path (ns/op, allocs/op) as a table
bench-micro:
	bench/micro.sh
