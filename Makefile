# lxc-operator — the two commands are `make demo` and `make test`; the rest are their parts.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
BACKENDS ?= embedded

.PHONY: test bootstrap fmt-check clippy crds crd-check unit-and-integration demo proof bench bench-page bench-scale

## Run everything CI runs: install the test world, then format, lint, CRD drift and all tests.
test: bootstrap fmt-check clippy crd-check unit-and-integration

## Install whatever the test world is missing (kube-apiserver, kubectl, helm, postgres, redis, sshd, chromium).
bootstrap:
	@bash infra/test-world/bootstrap.sh

fmt-check:
	@echo "== cargo fmt --check"; $(CARGO) fmt --all -- --check

clippy:
	@echo "== cargo clippy"; $(CARGO) clippy --workspace --all-targets --locked -- -D warnings

CHART_CRDS := charts/lxc-operator/files/crds

## Regenerate crds/ from the Rust types, and the Helm chart's copies of them.
crds:
	$(CARGO) run --quiet --locked --bin lxc-operator -- crd --out crds
	rm -f $(CHART_CRDS)/*.yaml; mkdir -p $(CHART_CRDS); cp crds/*.yaml $(CHART_CRDS)/

crd-check:
	@echo "== CRD drift"; $(CARGO) test --locked --quiet --test crd_drift

# The closing line sums every test binary's results, so the count is read in one place.
unit-and-integration:
	@echo "== cargo test"
	@log=$$(mktemp); status=0; \
	$(CARGO) test --workspace --locked --no-fail-fast 2>&1 | tee "$$log" || status=$$?; \
	awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$i ~ /^passed;?$$/) p += $$(i-1); if ($$i ~ /^failed;?$$/) f += $$(i-1) } } \
	     END { printf "tests: %d passed, %d failed\n", p, f }' "$$log"; \
	rm -f "$$log"; exit $$status

## The crash, fault and bad-input suites at full size (`make test` runs them at CI size): 100
## seeded SIGKILLs of the operator over 50 containers (CRASH_SUITE_SEED=<n> repeats a run); 50
## containers through 180 s of Proxmox faults and Postgres, Redis, node and API-server outages
## (FAULT_SUITE_SEED=<n>; figures kept in bench-results/fault-suite.txt); and the bad-input
## suite's longer hot-loop window.
proof: bootstrap
	CRASH_SUITE_FULL=1 $(CARGO) test --locked --test crash_suite -- --nocapture
	FAULT_SUITE_FULL=1 $(CARGO) test --locked --test fault_suite -- --nocapture
	BAD_INPUT_FULL=1 $(CARGO) test --locked --test bad_input -- --nocapture

## The demo: a control plane, pve-sim (3 nodes), the SSH stand-in and the operator running with the
## chart's ServiceAccount, examples/ applied; progress until all is Ready. BACKENDS=real uses
## PostgreSQL and Redis; DEMO_EXIT_WHEN_READY=1 stops once Ready.
demo: bootstrap
	@$(CARGO) build --locked --quiet --bin lxc-operator
	@$(CARGO) build --locked --quiet -p lxc-demo
	@BACKENDS=$(BACKENDS) "$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/lxc-demo"

## Benchmarks (not part of `make test`): every one below, writing bench-results/.
bench: bench-page bench-scale

## The status page with 10,000 containers and 1,000,000 audit rows in the test world's
## PostgreSQL: p50/p95 of the overview, a container page and audit pages, and its memory per
## container; prints a table and writes bench-results/page.txt.
bench-page: bootstrap
	$(CARGO) bench --locked --bench page

## The scale benchmark (not part of `make test`): per N, a world of its own, pve-sim with three
## realistic nodes and the operator's release build as a process; N containers applied at once,
## measured. Prints a table and writes bench-results/scale-<N>.md. BENCH_N="100 1000" by default;
## the nodes' maxConcurrentTasks is 8 (the default 4 makes N=1000 take about 14 minutes of tasks).
BENCH_N ?= 100 1000
BENCH_ARGS ?= --max-concurrent-tasks 8
bench-scale: bootstrap
	@$(CARGO) build --locked --release -p lxc-operator --bin lxc-operator -p pve-sim --bin pve-sim -p lxc-bench --bin lxc-scale-bench
	@"$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/lxc-scale-bench" $(BENCH_N) $(BENCH_ARGS)
