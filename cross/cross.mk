# Cross builds, RPM packages, emulated test runs and the footprint budget.
# Included by the top-level Makefile, whose MODULE, VERSION, LDFLAGS, CMDS and
# CGO_ENABLED=0 it uses. See cross/README.md.

DIST        ?= dist
# Each target is GOARCH:SUFFIX:GOARM (GOARM empty where it does not apply).
CROSS_TARGETS := arm64:arm64: arm:armv7:7 arm:armv6:6 amd64:amd64:
# RPM architectures packaged, each with the dist/ suffix of its binary.
# The server (and the admin CLI, shipped in the server package) only for
# 64-bit machines.
RPM_AGENT_ARCHES  := aarch64:arm64 armv7hl:armv7 x86_64:amd64
RPM_SERVER_ARCHES := aarch64:arm64 x86_64:amd64
# RPM's Version may not hold '-'. A tag v1.2.3 gives 1.2.3; an untagged tree
# gives 0.0.0.COMMITTIME.gHASH, which still sorts newer with every commit.
RPM_VERSION ?= $(shell cross/rpmversion.sh '$(VERSION)')
RPM_RELEASE ?= 1
# Reproducible package timestamps: the last commit's time.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

.PHONY: cross
cross: ## Cross-build every binary for linux arm64, armv7, armv6 and amd64 into dist/.
	@mkdir -p $(DIST)
	@for c in $(CMDS); do n=$${c%%:*}; p=$${c#*:}; \
	  for t in $(CROSS_TARGETS); do IFS=: read -r arch sfx arm <<<"$$t"; \
	    GOOS=linux GOARCH=$$arch GOARM=$$arm go build $(GOFLAGS_BUILD) -o $(DIST)/$${n}_linux_$$sfx $$p; \
	    echo "built $(DIST)/$${n}_linux_$$sfx"; \
	  done; \
	done

.PHONY: rpm
rpm: cross ## Build signed (with RPMFLEET_SIGNING_KEY) RPMs of the agent (and server) into dist/.
	@go build $(GOFLAGS_BUILD) -o $(DIST)/host/mkrpm ./cross/cmd/mkrpm
	@go build $(GOFLAGS_BUILD) -o $(DIST)/host/rpmfleet-agent ./agent/cmd/rpmfleet-agent
	@for a in $(RPM_AGENT_ARCHES); do IFS=: read -r rarch sfx <<<"$$a"; \
	  $(DIST)/host/mkrpm -name rpmfleet-agent -version '$(RPM_VERSION)' -release '$(RPM_RELEASE)' \
	    -arch $$rarch -bin $(DIST)/rpmfleet-agent_linux_$$sfx -help-from $(DIST)/host/rpmfleet-agent -out $(DIST); \
	done
	@if [ -f $(DIST)/rpmfleet-server_linux_amd64 ]; then \
	  for a in $(RPM_SERVER_ARCHES); do IFS=: read -r rarch sfx <<<"$$a"; \
	    cli=""; [ -f $(DIST)/rpmfleet_linux_$$sfx ] && cli="-bin $(DIST)/rpmfleet_linux_$$sfx"; \
	    $(DIST)/host/mkrpm -name rpmfleet-server -version '$(RPM_VERSION)' -release '$(RPM_RELEASE)' \
	      -arch $$rarch -bin $(DIST)/rpmfleet-server_linux_$$sfx $$cli -out $(DIST); \
	  done; \
	fi

.PHONY: test-emulated
test-emulated: ## Run the pkg/ and agent/ tests as arm64 and armv7 binaries under qemu-user-static, and compare emulated and native agent output.
	@./cross/test-emulated.sh

.PHONY: footprint
footprint: ## Measure the agent's stripped arm64 size per dependency and its peak RSS against dnf (see docs/benchmarks.md).
	@./cross/footprint.sh
