# Starling — every target works on a fresh machine that has only Go.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
NATS_CLI_VERSION := v0.5.0
NATS_SERVER_VERSION := v2.15.2
STATICCHECK_VERSION := v0.8.2
STAN_BENCH_VERSION := v0.10.4
NATS_STREAMING_SERVER_VERSION := v0.25.6
FUZZTIME ?= 20s
# Fuzz targets that write files run on tmpfs when there is one: a disk's allocation and
# discard cost made seglog's FuzzOpen manage ~6 inputs/s instead of ~900.
FUZZ_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})
UNIT_PKGS = $$($(GO) list ./... | grep -v '/tests$$')

.PHONY: upgrade-check allocs compare-quick all build run cluster test vet unit e2e cluster-ref bench fuzz lint tools compare compare-ab clean proto soak chromium dashboard-png docs

all: build

build:
	$(GO) build -o $(BIN)/starling ./cmd/starling

# The combined server: clients on 4222, monitoring on 8222, streaming on the file store
# under ./data.
run: build
	$(BIN)/starling -m 8222 --store file --dir ./data

# A local three-node streaming cluster (README, "A streaming cluster"): clients on 4222-4224,
# routes on 6222-6224, monitoring on 8222-8224, each node's file store and raft log under
# ./data/cluster/nN. Ctrl-C stops all three.
cluster: build
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; for i in 1 2 3; do \
	  $(BIN)/starling -n n$$i -p $$((4221+i)) -m $$((8221+i)) --cluster nats://127.0.0.1:$$((6221+i)) \
	    --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224 \
	    --store file --dir ./data/cluster/n$$i --clustered --cluster_node_id n$$i --cluster_peers n1,n2,n3 & \
	done; wait

# The whole suite: vet, unit tests with the race detector, the allocation gate, end-to-end tests.
test: vet unit allocs e2e

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)

e2e: tools build chromium
	STARLING_BIN=$(BIN)/starling NATS_CLI=$(BIN)/nats NATS_SERVER=$(BIN)/nats-server $(GO) test -count=1 -timeout 10m ./tests/...

# The cluster tests (tests/cluster_test.go) against nats-server with the same flags, to check
# the tests themselves.
cluster-ref: $(BIN)/nats-server
	CLUSTER_REF_SERVER=$(BIN)/nats-server $(GO) test -count=1 -timeout 5m -run '^TestCluster' ./tests/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The allocation gate: the hot paths' benchmarks (core delivery and routing, the streaming
# engine's publish/deliver and replay and a catch-up fetch's intake, the standalone log, the
# raft segment log's write, the memory and file stores' append and load) at a fixed count,
# without the race detector (its sync.Pool drops items); any of them at 1 allocs/op or more
# fails. Deterministic, unlike a
# rate: a regression check CI can run. Each entry: package:benchmarks:count.
ALLOC_GATE = \
  './core/:Deliver|RouteForward|PubSubSocket|PubOnlySocket|ConnPublish|InProcessHandler|ClientMatch:20000' \
  './streaming/:PublishDeliver|ReplaySend|FetchTake:20000' \
  './raftlog/:LocalPropose:20000' \
  './raftlog/seglog/:StoreLogs:20000' \
  './stores/memstore/:Store/Append/batch=64:20000' \
  './stores/memstore/:Store/Load:20000' \
  './stores/filestore/:Store/Append/batch=64/size=16$$:2000' \
  './stores/filestore/:Store/Load:20000'
allocs:
	@set -eo pipefail; fail=0; for spec in $(ALLOC_GATE); do \
	  pkg=$${spec%%:*}; rest=$${spec#*:}; re=$${rest%:*}; n=$${rest##*:}; \
	  out=$$($(GO) test -run '^$$' -bench "$$re" -benchmem -benchtime $${n}x $$pkg) || { echo "$$out"; echo "allocs: $$pkg failed"; exit 1; }; \
	  lines=$$(grep -E '^Benchmark.* allocs/op' <<<"$$out" || true); \
	  if [ -z "$$lines" ]; then echo "allocs: no benchmark matched $$re in $$pkg"; echo "$$out"; exit 1; fi; \
	  if grep -E '^Benchmark' <<<"$$out" | grep -qv ' allocs/op'; then echo "allocs: a result line was cut by other output ($$pkg):"; echo "$$out"; exit 1; fi; \
	  bad=$$(awk '{for (i = 2; i <= NF; i++) if ($$i == "allocs/op" && $$(i-1) + 0 > 0) print}' <<<"$$lines"); \
	  if [ -n "$$bad" ]; then echo "allocs: a hot path allocates ($$pkg):"; echo "$$bad"; fail=1; fi; \
	  echo "allocs: $$pkg $$re: $$(wc -l <<<"$$lines") benchmarks at 0 allocs/op$$([ -z "$$bad" ] || echo ', but the above')"; \
	done; exit $$fail

# Each fuzz target for a bounded time (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    TMPDIR=$(FUZZ_TMPDIR) $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint: $(BIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

tools: $(BIN)/nats $(BIN)/nats-server $(BIN)/stan-bench $(BIN)/nats-streaming-server

$(BIN)/nats:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/natscli/nats@$(NATS_CLI_VERSION)

$(BIN)/nats-server:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

# stan-bench and nats-streaming-server: the streaming rows of `make compare`.
$(BIN)/stan-bench:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/stan.go/examples/stan-bench@$(STAN_BENCH_VERSION)

$(BIN)/nats-streaming-server:
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-streaming-server@$(NATS_STREAMING_SERVER_VERSION)

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# nats bench against nats-server and Starling, and stan-bench against nats-streaming-server and
# Starling, alternately, on this machine.
compare: build $(BIN)/nats $(BIN)/nats-server $(BIN)/stan-bench $(BIN)/nats-streaming-server
	$(GO) run ./cmd/compare -starling $(BIN)/starling -nats-server $(BIN)/nats-server -nats $(BIN)/nats \
	  -stan-bench $(BIN)/stan-bench -nats-streaming-server $(BIN)/nats-streaming-server $(COMPARE_FLAGS)

# Every row of `make compare`, short runs, one round: a smoke test that catches a row fallen
# far behind (a 1 KiB cluster row at 0.65x went unseen for two sessions), not a figure.
compare-quick:
	$(MAKE) compare COMPARE_FLAGS="-quick -rounds 1 $(COMPARE_FLAGS)"

# The streaming and durable rows of `make compare` with another build of Starling in
# nats-streaming-server's place, alternated in one run: e.g. `make compare-ab BASE=ca43524`
# (any git ref) says what a change costs. COMPARE_FLAGS adds flags (e.g. -rounds 5).
compare-ab: build $(BIN)/stan-bench
	@test -n "$(BASE)" || { echo "usage: make compare-ab BASE=<git ref>"; exit 2; }
	rm -rf $(BIN)/baseline-src && mkdir -p $(BIN)/baseline-src
	git archive $(BASE) | tar -x -C $(BIN)/baseline-src
	cd $(BIN)/baseline-src && $(GO) build -o $(BIN)/starling-baseline ./cmd/starling
	rm -rf $(BIN)/baseline-src
	$(GO) run ./cmd/compare -starling $(BIN)/starling -baseline $(BIN)/starling-baseline \
	  -stan-bench $(BIN)/stan-bench -skip-core -skip-mem -skip-cluster -skip-stan-cluster $(COMPARE_FLAGS)

clean:
	rm -rf $(BIN) ./data

# Debian's chromium, for the dashboard's browser test (tests/webui_test.go), installed when
# missing — as root, or with sudo that needs no password. This target never fails: without
# apt, root or a reachable mirror it says so, and the browser test skips and says why.
APT_OPTS := -q -o Acquire::http::Timeout=30 -o Acquire::https::Timeout=30 -o Acquire::Retries=1 -o DPkg::Lock::Timeout=60
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "chromium: no apt-get here; the browser test will skip"; \
	  elif ! $$sudo true 2>/dev/null; then echo "chromium: not root and no passwordless sudo; the browser test will skip"; \
	  else echo "installing chromium (apt-get)…"; \
	    $$sudo apt-get $(APT_OPTS) update >/dev/null && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get $(APT_OPTS) install -y chromium >/dev/null || \
	    echo "chromium: apt-get failed; the browser test will skip"; \
	  fi; }

# docs/dashboard.png: the dashboard in headless chromium after a minute and a quarter of
# realistic traffic (TestDashboardScreenshot).
dashboard-png: chromium
	STARLING_DASHBOARD_PNG=$(CURDIR)/docs/dashboard.png $(GO) test -count=1 -run '^TestDashboardScreenshot$$' -v ./tests/

# A mixed-version streaming cluster (tests/stancluster_upgrade_test.go): three nodes of the
# starling built from UPGRADE_FROM (a git ref), replaced one by one under load by this tree's
# build, then the reverse (one node of this build downgraded). The old build comes from a
# temporary git worktree, removed after with the binary. Not part of `make test`: it needs
# the git history.
UPGRADE_FROM ?= e04653b
upgrade-check: build
	@set -e; tmp=$$(mktemp -d -t starling-upgrade.XXXXXX); \
	trap 'set +e; git worktree remove --force "$$tmp/src" 2>/dev/null; rm -rf "$$tmp"; git worktree prune' EXIT; \
	git worktree add -q --detach "$$tmp/src" "$(UPGRADE_FROM)"; \
	(cd "$$tmp/src" && $(GO) build -o "$$tmp/starling-old" ./cmd/starling); \
	echo "upgrade-check: $(UPGRADE_FROM) ($$(git rev-parse --short "$(UPGRADE_FROM)")) -> this tree"; \
	STARLING_OLD_BIN="$$tmp/starling-old" STARLING_BIN=$(BIN)/starling $(GO) test -count=1 -timeout 15m \
	  -run '^TestStanCluster(RollingUpgrade|DowngradeOne)$$' -v ./tests/

# Regenerate docs/configuration.md from the option table (cmd/starling/app); a unit test
# fails when the committed file is out of date.
docs:
	$(GO) generate ./cmd/starling/app

# Regenerate proto/*/*.pb.go (committed; a normal build never needs protoc). protoc comes from
# Debian's protobuf-compiler, installed only when missing; the committed files were generated with
# libprotoc 3.21.12 (Debian bookworm, 3.21.12-3+deb12u1) — another protoc changes only their
# "// protoc" header line. protoc-gen-go is pinned to the google.golang.org/protobuf version in go.mod.
PROTOC_VERSION := 3.21.12
PROTO_FILES = $(sort $(wildcard proto/*/*.proto))
PROTOC_GEN_GO_VERSION = $$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)

proto:
	@command -v protoc >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update && $$sudo apt-get install -y protobuf-compiler; }
	@v=$$(protoc --version); [ "$$v" = "libprotoc $(PROTOC_VERSION)" ] || \
	  echo "warning: $$v, not libprotoc $(PROTOC_VERSION): the generated headers will differ"
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	protoc -I . --plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
	  --go_out=. --go_opt=paths=source_relative $(PROTO_FILES)

# The crash harness (tests/crash_test.go) many times per durable store: SIGKILL under async
# publish load, restart, verify every acknowledged message; prints the tally per store.
# SOAK_ITERATIONS (default 100) sets the iterations per store.
# The cluster mode (tests/soak_stancluster_test.go): SOAK_CLUSTER_KILLS (default 100) leader
# SIGKILLs of a three-node streaming cluster under load, then a follower SIGSTOPped 30 s;
# prints the tally (published, acked, lost, duplicates) and the failover p50/p99.
# SOAK_MODE=crash or cluster runs one of them; all (the default) both.
SOAK_MODE ?= all
soak: build
	@case "$(SOAK_MODE)" in \
	  crash) run='^TestSoakCrash$$';; cluster) run='^TestSoakStanCluster';; all) run='^TestSoak(Crash|StanCluster)';; \
	  *) echo "SOAK_MODE=$(SOAK_MODE): want crash, cluster or all"; exit 2;; \
	esac; \
	STARLING_BIN=$(BIN)/starling $(GO) test -tags soak -count=1 -run "$$run" -timeout 150m -v ./tests/
