# Ferry: `make demo` runs the main job on the embedded DuckDB warehouse;
# `make test` runs every test against real processes and services.

GO        ?= go
TAGS      := duckdb_arrow
BIN       := $(CURDIR)/bin
export GOTOOLCHAIN := local
# --exclude-libs: the C++ symbols of the static libraries linked in (DuckDB)
# are not exported from the binaries; the dynamic loader then no longer
# pages in their symbol tables at start (about 8 MB less RSS per process).
export GOFLAGS     := -mod=readonly -tags=$(TAGS) -ldflags=-extldflags=-Wl,--exclude-libs,ALL

.PHONY: all deps services build demo test test-short conformance bench loadtest fuzz lint proto clean help f1 f1-predict

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install the system packages the build needs (libxgboost-dev)
	@bash scripts/deps.sh

build: deps ## build bin/ferry, bin/ferry-agent, bin/ferry-engine, bin/ferry-controlplane
	$(GO) build -o $(BIN)/ ./cmd/...

demo: build ## generate the demo warehouse (scale 1), start the three processes, run a churn prediction
	$(BIN)/ferry demo --dir $(CURDIR)/.ferry-demo --scale 1

f1: deps ## load the Formula 1 data (../shared/data/f1) into .ferry-f1/f1.db with keys and time columns (docs/examples/f1)
	$(GO) run ./docs/examples/f1 --data ../shared/data/f1 --out .ferry-f1/f1.db

F1_OPTIONS = {"validation_start":"2005-01-01T00:00:00Z","test_start":"2010-01-01T00:00:00Z","anchor_step_days":$(1),"max_eval_anchors":40,"search_sets":12}
f1-predict: build f1 ## run the rel-f1 tasks of docs/examples/f1.md through agent, engine and writeback on .ferry-f1/f1.db
	$(BIN)/ferry demo --dir $(CURDIR)/.ferry-f1/run --warehouse duckdb://$(CURDIR)/.ferry-f1/f1.db --output driver_dnf \
		--query "PREDICT COUNT(results.* WHERE results.statusId != 1, 0, 30, days) > 0 FOR EACH drivers.driverId ASSUMING EXISTS(results.*, 0, 30, days)" \
		--options '$(call F1_OPTIONS,30)'
	$(BIN)/ferry demo --dir $(CURDIR)/.ferry-f1/run --warehouse duckdb://$(CURDIR)/.ferry-f1/f1.db --output driver_top3 \
		--query "PREDICT MIN(qualifying.position, 0, 30, days) <= 3 FOR EACH drivers.driverId" --options '$(call F1_OPTIONS,30)'
	$(BIN)/ferry demo --dir $(CURDIR)/.ferry-f1/run --warehouse duckdb://$(CURDIR)/.ferry-f1/f1.db --output driver_position \
		--query "PREDICT AVG(results.positionOrder, 0, 60, days) FOR EACH drivers.driverId" --options '$(call F1_OPTIONS,60)'

services: ## install and start PostgreSQL and build the S3 server (versitygw) and Vault into ~/.cache/ferry
	@bash scripts/services.sh

test: deps services ## vet and run all tests (real DuckDB, PostgreSQL, S3 server, real processes over mTLS); the control plane's again with its metadata on PostgreSQL
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	FERRY_TEST_METADB=postgres $(GO) test -count=1 -timeout 10m ./controlplane/...

test-short: deps ## the quick subset
	$(GO) test -short -count=1 ./...

conformance: deps services ## run the connector conformance suite against real services and print the support matrix (docs/conformance.md)
	@rm -f $(CURDIR)/.conformance.jsonl
	FERRY_CONFORMANCE_OUT=$(CURDIR)/.conformance.jsonl $(GO) test -count=1 -run 'TestConformance' ./connectors/...
	@$(GO) run ./conformance/matrix $(CURDIR)/.conformance.jsonl | tee docs/conformance.md

bench: build ## print throughput tables: connectors, agent->engine Flight vs raw TLS, engine features/training/jobs at scale 1 and 10, XGBoost vs its C API
	$(GO) run ./internal/bench
	$(GO) test -run '^$$' -bench TrainVsCAPI -benchtime 3x ./engine/xgboost

loadtest: ## 1,000 simulated agents (own certificate each, mTLS 1.3) heartbeating against ferry-controlplane while 100 jobs are dispatched: its CPU, memory and dispatch p50/p99 (internal/loadtest)
	$(GO) run ./internal/loadtest/cmd/loadtest -agents 1000 -jobs 100

fuzz: ## run each fuzz target for 60 s (the corpus is kept in testdata/fuzz)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s ./engine/pql
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime 60s ./internal/flightcodec

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

proto: ## regenerate the agent RPC code (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
	protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative controlplane/agentapi/agent.proto

clean: ## remove build output and the demo directory
	rm -rf $(BIN) .ferry-demo .ferry-f1
