# kiln — Knative Serving on plain VMs.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kiln-serving/kiln/cmd/kilnd/commands.Version=$(VERSION) -X github.com/kiln-serving/kiln/cmd/kiln/commands.Version=$(VERSION)
TEST_TIMEOUT ?= 45m
# Fuzz targets as Name:package; `make fuzz` runs each for FUZZTIME, `make test` for 10000 inputs
# each (a count, not a duration: a timed run can end mid-input and report "context deadline exceeded").
FUZZ_TARGETS := FuzzDecode:./api/serving/v1 FuzzParse:./api/config FuzzTranslate:./xds
FUZZTIME ?= 2m

.PHONY: help build test unit e2e bench fuzz lint proto demo demo-stop clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/kiln and bin/kilnd
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/kiln ./cmd/kiln
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/kilnd ./cmd/kilnd

test: ## unit, integration and end-to-end tests (e2e needs root: real containerd, runc and CNI)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=10000x

unit: ## unit and integration tests only (no containerd)
	$(GO) test -count=1 -short ./...

e2e: ## end-to-end tests only: real binaries, etcd, containerd
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./test/e2e/...

bench: ## benchmarks: cold start from zero (p50/p99, per hop), warm request, create-to-ready, activator, gateway and queue-proxy overhead against a direct call, mutual TLS cost into a queue-proxy (plain vs mTLS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 200x -timeout $(TEST_TIMEOUT) ./test/e2e/... ./services/gateway/... ./agent/queue/...

fuzz: ## fuzz the manifest decoder, config parser and xDS translation (FUZZTIME each, default 2m; make test runs 5s)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

lint: ## gofmt, go vet, no tracked binaries, and the object model (api/) importing nothing under internal/
	@dep=$$($(GO) list -deps ./api/... | grep '/kiln/internal/' || true); if [ -n "$$dep" ]; then echo "api/ imports internal packages:"; echo "$$dep"; exit 1; fi
	@bin=$$(git ls-files -z | xargs -0 grep -IL . --); if [ -n "$$bin" ]; then echo "binary files tracked:"; echo "$$bin"; exit 1; fi
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...

proto: ## regenerate gRPC code from proto/ (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
	cd proto && PATH="$$PATH:$$(go env GOPATH)/bin" protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative $$(find . -name '*.proto')

demo: build ## start a single-node kiln in the background and deploy the hello sample through the gateway
	@bash deploy/demo/demo.sh start

demo-stop: ## stop the demo and clean up its containers and state
	@bash deploy/demo/demo.sh stop

clean: ## remove build output
	rm -rf $(BIN)
