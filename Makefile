# ktcn — the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
BIN       := bin/ktcn
PKGS      := ./...
# Property-test iterations: CI keeps them short, soak runs them long.
RAPID_CHECKS ?= 100
FUZZTIME  ?= 10s
BENCHTIME ?= 2s

.PHONY: run build test lint fuzz bench soak clean

build:
	$(GO) build -o $(BIN) ./cmd/ktcn

# Serve on 127.0.0.1:8080 with badger under ./data, fixtures loaded on first start.
run: build
	./$(BIN) serve

# Packages with property tests read RAPID_CHECKS in their TestMain.
test:
	RAPID_CHECKS=$(RAPID_CHECKS) $(GO) test -race -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Every fuzz target, briefly (go test allows one -fuzz pattern per package).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; $(GO) test $$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

# Benchmarks run on a data dir on disk (BENCH_DIR), not tmpfs, and print
# each path as a ratio against its floor measured in the same run.
BENCH_DIR ?= $(CURDIR)/.bench
bench:
	mkdir -p $(BENCH_DIR)
	KTCN_BENCH_DIR=$(BENCH_DIR) $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem ./store/ ./api/ | tee $(BENCH_DIR)/bench.txt
	@awk '{for(i=1;i<NF;i++) if($$(i+1) ~ /\/s$$/) r[$$1]=$$i} END { \
	  for (k in r) { n=k; sub(/-[0-9]+$$/, "", n); v[n]=r[k] } \
	  printf "\nin process: %.0f decisions/s vs %.0f bare synced badger writes/s = %.2f\n", v["BenchmarkDecideInProcess"], v["BenchmarkBareSyncedWrite"], v["BenchmarkDecideInProcess"]/v["BenchmarkBareSyncedWrite"]; \
	  printf "over HTTP:  %.0f decisions/s vs %.0f bare echo requests/s = %.2f\n", v["BenchmarkDecideHTTP"], v["BenchmarkBareEchoHTTP"], v["BenchmarkDecideHTTP"]/v["BenchmarkBareEchoHTTP"] }' $(BENCH_DIR)/bench.txt
	rm -rf $(BENCH_DIR)

# Long runs CI does not do.
soak:
	RAPID_CHECKS=20000 $(GO) test -race -count=1 -timeout 60m $(PKGS)

clean:
	rm -rf bin .bench
