# dk8s: make build | test | demo | bench
SHELL := /bin/bash
# A recipe's pipe fails with its first command: a bench that fails behind
# '| tee' fails 'make bench'.
.SHELLFLAGS := -o pipefail -c
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/dk8s/dk8s/cmd/dk8s/app.Version=$(VERSION)
HARNESS := test/harness/up.sh

.PHONY: build test unit integration harness demo bench lint clean agent-image conformance test-vm

build: ## bin/dk8s
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/dk8s ./cmd/dk8s

AGENT_IMAGE ?= dk8s/dk8s:$(VERSION)
agent-image: build ## the node agent's image: bin/dk8s alone, made in the local Docker (dk8s agent image)
	bin/dk8s agent image $(AGENT_IMAGE)

lint:
	@test -z "$$(gofmt -l . )" || { gofmt -l . ; echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	go vet -tags vm ./test/integration/

unit: ## tests of pure code and narrow fakes; no daemon
	go test -count=1 ./pkg/... ./internal/... ./cmd/... ./test/harness/... .

harness: ## Docker engine, registries and the image set built from source (cached)
	$(HARNESS) >/dev/null

integration: ## a real Docker daemon and real registries (fails, never skips, without them)
	@lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock go test -count=1 -p 1 -timeout 60m -v ./test/integration/

conformance: ## Kubernetes' conformance suite, built from source, on one dk8s node and on three machines; reports in conformance-results/
	@lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock DK8S_CONFORMANCE=full go test -count=1 -p 1 -timeout 5h -v -run '^TestConformance$$' ./test/integration/

test-vm: ## the node test on a real Debian 12 VM under QEMU (cgroup v2, systemd, AppArmor, kernel modules); not in 'make test', see README
	@lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock go test -tags vm -count=1 -p 1 -timeout 90m -v -run '^TestNodeOnVM$$' ./test/integration/

test: lint unit integration ## everything

demo: build ## fill a local mirror from the harness, pull from it, start a control plane
	@lock=$$($(HARNESS)) && \
	echo "== dk8s pull --mirror 127.0.0.1:5001/google_containers (an Aliyun-like mirror on this machine)" && \
	bin/dk8s pull --lock $$lock --mirror 127.0.0.1:5001/google_containers && \
	echo "== dk8s start (control plane, then this host as its node)" && \
	bin/dk8s start --lock $$lock --kubelet-binary $$(dirname $$lock)/kubelet --mirror 127.0.0.1:5002/... && \
	echo "== dk8s ps" && bin/dk8s ps && \
	echo "== kubectl get nodes" && $$(dirname $$lock)/kubectl --kubeconfig /var/lib/dk8s/admin.conf get nodes -o wide && \
	echo "(remove it all with: bin/dk8s reset --purge)"

bench: build ## dk8s pull vs the parallel-pull floors and the shell loop; start, rerun, restart, ps and memory, each beside its target; join to Ready; HA failover (5 rounds); the default and small profiles in 1 GiB, the small one held 10 min; all in bench-results.txt
	test/bench/pull.sh
	lock=$$($(HARNESS)) && go run ./test/bench/cluster bin/dk8s $$lock $$(dirname $$lock)/kubelet $${RUNS:-3} | tee -a bench-results.txt
	lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock go test -count=1 -run '^$$' -bench '^BenchmarkJoin$$' -benchtime $${RUNS:-3}x -timeout 30m ./test/integration/ | tee -a bench-results.txt
	lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock go test -count=1 -run '^$$' -bench '^BenchmarkHAFailover$$' -benchtime 5x -timeout 30m ./test/integration/ | tee -a bench-results.txt
	lock=$$($(HARNESS)) && DK8S_TEST_LOCK=$$lock go test -count=1 -run '^$$' -bench Profiles -benchtime 1x -timeout 40m ./test/integration/ | tee -a bench-results.txt

clean:
	rm -rf bin bench-results.txt
