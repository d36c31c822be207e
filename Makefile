# svidgate — developer entry points. `make test` is the test command.

GO          ?= go
BIN         := bin
SPIRE_BIN   := $(BIN)/spire
SPIRE_TOOLS := spire/tools
DEMO_DIR    := .demo

STATICCHECK       := $(BIN)/staticcheck
STATICCHECK_TOOLS := tools/staticcheck

.PHONY: all help build deps-build deps-test test test-unit lint spire demo demo-down clean demo-compose demo-compose-down demo-compose-images static test-compose

## all: the default target, the same as build
all: build

## help: this list of targets, from their `## target: text` comments (first sentence)
help:
	@awk 'function flush() { if (name != "") printf "  %-22s %s\n", name, substr(text, 1, index(text ". ", ". ")); name = "" } \
		/^## [a-z][a-z0-9, -]*: / { flush(); sub(/^## /, ""); n = index($$0, ": "); \
			name = substr($$0, 1, n - 1); text = substr($$0, n + 2); next } \
		/^## / && name != "" { sub(/^## /, ""); text = text " " $$0; next } \
		{ flush() } \
		END { flush() }' $(MAKEFILE_LIST)

## build: the gateway binary, bin/svidgate
build:
	$(GO) build -o $(BIN)/svidgate ./cmd/svidgate

## spire: SPIRE server and agent (version pinned in spire/tools/go.mod), statically linked, into
## bin/spire; reused when present. The same binaries serve the tests, `make demo` and the
## compose images, so SPIRE is built once.
spire: deps-build $(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent

# spire-server needs cgo for sqlite: linked statically against glibc, with the
# Go user and DNS code (osusergo, netgo) so that it never loads NSS modules.
$(SPIRE_BIN)/spire-server: $(SPIRE_TOOLS)/go.mod
	@mkdir -p $(SPIRE_BIN)
	@echo "building a static SPIRE server from $(SPIRE_TOOLS) (minutes on a cold cache; reused afterwards)"
	cd $(SPIRE_TOOLS) && CGO_ENABLED=1 $(GO) build -trimpath \
		-tags 'osusergo,netgo,sqlite_omit_load_extension' \
		-ldflags '-s -w -linkmode external -extldflags "-static"' \
		-o $(CURDIR)/$@.tmp github.com/spiffe/spire/cmd/spire-server
	@! ldd $@.tmp >/dev/null 2>&1 || { echo "$@ is not static"; rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

$(SPIRE_BIN)/spire-agent: $(SPIRE_TOOLS)/go.mod
	@mkdir -p $(SPIRE_BIN)
	cd $(SPIRE_TOOLS) && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' \
		-o $(CURDIR)/$@.tmp github.com/spiffe/spire/cmd/spire-agent
	mv $@.tmp $@

## test: unit and integration tests (real SPIRE, real svidgate binaries), with -race
test: deps-test spire build
	$(GO) test -race -count=1 ./...

## test-unit: the unit tests alone, with -race: every package but ./integration (no SPIRE)
test-unit: deps-test
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/integration$$')

## deps-build, deps-test: install the Debian packages the builds and tests need, if missing
deps-build:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test

## lint: go vet, gofmt, staticcheck (pinned in tools/staticcheck/go.mod) and go mod tidy -diff
lint: $(STATICCHECK)
	$(GO) vet ./...
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l reports unformatted files:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }

# staticcheck, built once from the version pinned in its tools module and
# reused until that go.mod changes.
$(STATICCHECK): $(STATICCHECK_TOOLS)/go.mod $(STATICCHECK_TOOLS)/go.sum
	@mkdir -p $(BIN)
	cd $(STATICCHECK_TOOLS) && $(GO) build -trimpath -o $(CURDIR)/$@.tmp honnef.co/go/tools/cmd/staticcheck
	mv $@.tmp $@

## demo: SPIRE, sample services and svidgate sidecars as local processes in .demo/ (Ctrl-C stops)
demo: spire build
	examples/local/demo.sh up

## demo-down: stop everything `make demo` started
demo-down:
	examples/local/demo.sh down

## clean: remove bin/svidgate and .demo/ (bin/spire and bin/staticcheck are kept)
clean:
	rm -rf $(BIN)/svidgate $(DEMO_DIR)

# ---- docker compose demo (examples/compose): images FROM scratch, nothing pulled

STATIC     := $(BIN)/static
STATIC_GO  := svidgate httpecho grpcecho democlient probe
GO_STATIC  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w'

## static: statically linked binaries for the compose images in bin/static
static: spire
	@mkdir -p $(STATIC)
	cp $(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent $(STATIC)/
	$(GO_STATIC) -o $(STATIC)/svidgate ./cmd/svidgate
	$(GO_STATIC) -o $(STATIC)/httpecho ./examples/services/httpecho
	$(GO_STATIC) -o $(STATIC)/grpcecho ./examples/services/grpcecho
	$(GO_STATIC) -o $(STATIC)/democlient ./examples/local/democlient
	$(GO_STATIC) -o $(STATIC)/probe ./examples/compose/probe

## demo-compose-images: the three FROM-scratch images (svidgate-demo/{spire,app,redis}:dev)
demo-compose-images: deps-test static
	examples/compose/build-images.sh

## demo-compose: SPIRE, sidecars, an edge gateway and Redis under docker compose, then the tour
demo-compose: demo-compose-images
	examples/compose/demo.sh up

## demo-compose-down: remove every container, network and volume of the compose demo
demo-compose-down:
	examples/compose/demo.sh down

## test-compose: bring the compose demo up, check the tour and the audit trail, tear it down (skips without Docker)
test-compose:
	examples/compose/test.sh

## bench: svidgate vs nginx and HAProxy over loopback (~45 min; BENCH_QUICK=1 for a ~3 min smoke); table in bench/out/table.md
.PHONY: bench bench-micro
bench:
	bench/run.sh

## bench-micro: Go benchmarks of the per-request hot path (ns/op, allocs/op) as a table
bench-micro:
	bench/micro.sh
