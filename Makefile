# Edgewarden — build, test and demo. `make demo` and `make test` are the two
# commands the README promises work on a fresh machine with Go and apt.

GO       ?= go
BIN      ?= bin
PKGS      = ./...
# Packages with goroutines and shared state run under the race detector.
RACE_PKGS = ./agent/... ./controller/... ./protocol/...
FUZZTIME ?= 3s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   = -s -w -X main.version=$(VERSION) -X github.com/edgewarden/edgewarden/agent.Version=$(VERSION)
# The agent is built without net/http's HTTP/2: it talks HTTP/1.1 to the
# controller, and HTTP/2 costs 0.5 MB of binary and of resident memory on
# every device (docs/BENCHMARKS.md, agent footprint). It is linked statically
# (CGO_ENABLED=0) as the packages are: with cgo, glibc's malloc arenas add
# ~1.5 MB of idle RSS.
AGENT_TAGS = nethttpomithttp2

.PHONY: all build demo openapi test vet fmt-check cross unit race fuzz e2e bench packages package-test clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/edgewarden ./cmd/edgewarden-controller
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(AGENT_TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/edgewarden-agent

demo: build
	$(GO) run ./test/demo -bin $(BIN)

# The OpenAPI document is generated from the route table and the wire
# types (controller/api/openapigen); TestOpenAPIGenerated fails while the
# committed openapi.yaml differs from it.
openapi:
	$(GO) generate ./controller/api

test: fmt-check vet cross race fuzz e2e

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# Edge devices are often ARM: the agent must build for arm64 and arm/v7
# (32-bit: e.g. syscall field widths differ). `make packages` builds all.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags '$(AGENT_TAGS)' -o /dev/null ./cmd/edgewarden-agent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -tags '$(AGENT_TAGS)' -o /dev/null ./cmd/edgewarden-agent

# Unit tests of every package, under the race detector (end-to-end tests are
# in test/, run by the e2e target).
race:
	$(GO) test -race -count=1 $(RACE_PKGS)

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

# Every fuzz target runs briefly; `make fuzz FUZZTIME=5m` for a real session.
fuzz:
	@set -e; for pkg in $$($(GO) list ./protocol/... ./controller/... ./agent/...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg > /dev/null; \
	  done; \
	done

# End-to-end: builds the real binaries and runs controller and agents as processes.
e2e:
	$(GO) test -count=1 -timeout 15m ./test/...

# .deb and .rpm for amd64, arm64 and arm/v7 into dist/ (installs nfpm if missing).
PKG_VERSION ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//' || true)
packages:
	bash packaging/build-packages.sh $(or $(PKG_VERSION),0.0.0-dev)

# Installs the amd64 .debs into a clean Debian root (debootstrap) and checks
# files, user, units, upgrade and purge. Needs root.
package-test:
	bash packaging/build-packages.sh $(or $(PKG_VERSION),0.0.0-dev) amd64
	bash packaging/test-deb-install.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocol/... ./controller/... ./agent/...

clean:
	rm -rf $(BIN) dist .demo
