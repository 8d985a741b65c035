# raftsql — the targets a newcomer guesses.
GO        ?= go
BIN       := bin
SEEDS     ?= 20000
DURATION  ?= 10m
SEED      ?= 0
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test test-short test-race lint fmt run cluster bench sim fuzz jepsen clean

all: build

build:
	$(GO) build -o $(BIN)/raftsqld ./cmd/raftsqld
	$(GO) build -o $(BIN)/raftsql ./cmd/raftsql

# The README's test command: vet, every package's tests (with the short
# deterministic simulation and the short fault suite), and the race
# detector on the Raft core, driver, store and transport.
test:
	$(GO) vet ./...
	$(GO) test -timeout 30m ./...
	$(GO) test -race -timeout 20m ./consensus/... ./store/...

test-race:
	$(GO) test -race -timeout 40m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# A single node with its data in ./raftsql-data (the README's first command).
run: build
	$(BIN)/raftsqld

# Three nodes on this machine: PostgreSQL on 5433-5435, HTTP on 8080-8082.
cluster: build
	./scripts/cluster.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./consensus/node/ ./store/

# Many thousands of seeded schedules of the deterministic Raft simulation.
sim:
	$(GO) test -timeout 60m ./consensus/ -run TestSimulation -sim.seeds=$(SEEDS)

FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The full fault suite: every workload under mixed faults.
jepsen:
	$(GO) test -timeout 90m ./test/ -run TestJepsen -v -args -duration=$(DURATION) -seed=$(SEED)

clean:
	rm -rf $(BIN)
