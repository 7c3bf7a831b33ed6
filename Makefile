# rpmfleet — see README.md. `make help` lists the targets.
SHELL        := /usr/bin/env bash
.SHELLFLAGS  := -eu -o pipefail -c
MODULE       := github.com/rpmfleet/rpmfleet
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS      := -s -w -X $(MODULE)/pkg/version.Version=$(VERSION)
GOFLAGS_BUILD:= -trimpath -ldflags "$(LDFLAGS)"
BIN          := bin
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Binaries: name and main package.
CMDS         := rpmfleet-agent:./agent/cmd/rpmfleet-agent
CMDS         += $(foreach c,rpmfleet-server rpmfleet,$(if $(wildcard server/cmd/$(c)/main.go),$(c):./server/cmd/$(c)))
export CGO_ENABLED := 0

.DEFAULT_GOAL := help

# Cross builds, packages and emulated runs live with their files in cross/.
-include cross/cross.mk

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-16s %s\n",$$1,$$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the binaries into bin/.
	@mkdir -p $(BIN)
	@for c in $(CMDS); do n=$${c%%:*}; p=$${c#*:}; go build $(GOFLAGS_BUILD) -o $(BIN)/$$n $$p; echo "built $(BIN)/$$n"; done

.PHONY: deps
deps: ## Install the system tools the tests use (rpm, createrepo_c, dnf, ...) when missing.
	@./.ci/deps.sh

.PHONY: test
test: deps ## Install what the tests need, then run every test.
	go test -count=1 -timeout 20m ./...

.PHONY: test-faults
test-faults: deps ## Run the fault tests (server/integration TestFault*: replica killed in a rollout, broker restarts, partition, full disk on SQLite and PostgreSQL, clock skew); the full-disk ones mount a tmpfs, so run as root.
	go test -count=1 -timeout 15m -v -run '^TestFault' ./server/integration/

.PHONY: check
check: ## vet, staticcheck, and cross-compile for linux/arm64, linux/arm (GOARM=7), linux/amd64.
	go vet ./...
	go run $(STATICCHECK) ./...
	GOOS=linux GOARCH=arm64 go build ./...
	GOOS=linux GOARCH=arm GOARM=7 go build ./...
	GOOS=linux GOARCH=amd64 go build ./...

.PHONY: demo
demo: deps build ## Check a sample device, apply a fix through a fleet server, then let the agent daemon apply one by itself.
	@./agent/demo/demo.sh

.PHONY: bench
bench: ## Run the Go benchmarks (figures go to docs/benchmarks.md by hand).
	go test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-check
bench-check: deps ## rpmfleet-agent check beside dnf on the same devices and advisories (prints a table).
	@./agent/demo/bench.sh

FUZZTIME     ?= 30s
FUZZPKGS     ?= ./...
.PHONY: fuzz
fuzz: ## Run every Fuzz target in the module for FUZZTIME each (default 30s); fails on a crasher, which go test saves under testdata/fuzz/.
	@set -u; fail=0; n=0; \
	for pkg in $$(go list $(FUZZPKGS)); do \
		dir=$$(go list -f '{{.Dir}}' $$pkg); \
		ls $$dir/*_test.go >/dev/null 2>&1 || continue; \
		for name in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			n=$$((n+1)); echo "== $$pkg $$name ($(FUZZTIME))"; \
			if ! go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg; then \
				echo "FAIL: $$pkg $$name"; fail=1; \
			fi; \
		done; \
	done; \
	echo "fuzz: $$n targets run"; [ $$n -gt 0 ] && [ $$fail -eq 0 ]

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN) dist .demo
