#!/usr/bin/env bash
# Reruns the benchmarks BENCHMARKS.md quotes and prints each one's figures
# as a Markdown table, with the CPU they ran on, so that anyone can check
# the file on their own machine. One benchmark runs at a time.
#
#   host/internal/benchrun/run.sh          # the iteration counts the file uses
#   host/internal/benchrun/run.sh quick    # fewer iterations: minutes, rougher figures
#
# Needs the toolchains the tests use (wat2wasm, clang, rustc, npm; see
# README "Tests"); a benchmark whose toolchain is missing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../../.."

quick=${1:-}
n() { if [ "$quick" = quick ]; then echo "$2"; else echo "$1"; fi; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || uname -m), $(nproc) threads"
echo "Go: $(go version | cut -d' ' -f3-)"
echo

# table TITLE -- COMMAND...: runs COMMAND and prints its benchmark lines as
# rows: the benchmark's name, then each metric it reported.
table() {
	local title=$1
	shift 2
	echo "### $title"
	echo
	echo '```'
	echo "$*"
	echo '```'
	echo
	echo "| benchmark | metrics |"
	echo "|---|---|"
	"$@" 2>&1 | awk '/^Benchmark/ {
		row = "| " $1 " |"
		for (i = 3; i < NF; i += 2) row = row " " $i " " $(i+1) ";"
		print row " |"
	}
	/^(--- FAIL|FAIL|panic)/ { print "| " $0 " | |" }'
	echo
}

table "Dispatch, no NATS" -- \
	go test -run '^$' -bench 'WazeroFloor|Dispatch' -benchtime "$(n 500000x 20000x)" ./host/internal/plugin/
table "Dispatch per language, interleaved" -- \
	go test -run '^$' -bench 'DispatchInterleaved' -benchtime "$(n 20000x 2000x)" ./host/internal/conformance/
table "Per language: load and dispatch" -- \
	go test -run '^$' -bench '^Benchmark(Load|Dispatch)$' -benchtime "$(n 2000x 200x)" ./host/internal/conformance/
table "Interrupt checks on a tight loop" -- \
	go test -run '^$' -bench 'TightLoop|Instrument' -benchtime "$(n 1s 100ms)" ./host/internal/plugin/internal/interrupt/
table "The host's path alone (no NATS round trip)" -- \
	go test -run '^$' -bench 'ServePath$' -benchmem -benchtime "$(n 1000000x 100000x)" ./host/
table "Tracing: the host's path, and request/reply" -- \
	go test -run '^$' -bench 'ServePathTracing|TracingOverhead' -benchmem -benchtime "$(n 20000x 2000x)" ./host/
table "Request/reply, 16 requesters, interleaved" -- \
	go test -run '^$' -bench RequestReplyInterleaved -benchtime "$(n 200000x 16000x)" ./host/
for gogc in 100 400; do
	table "Large payloads, GOGC=$gogc" -- \
		env GOGC=$gogc go test -run '^$' -bench LargePayload -benchtime "$(n 400x 50x)" ./host/
done
table "Policies" -- \
	go test -run '^$' -bench PolicyChain -benchtime "$(n 5000x 500x)" ./host/
table "HTTP ingress" -- \
	go test -run '^$' -bench HTTPIngress -benchtime "$(n 5000x 500x)" ./host/
table "Hot reload" -- \
	go test -run '^$' -bench ReloadLatency -benchtime "$(n 10x 3x)" ./host/internal/reload/
table "Extism side by side" -- \
	bash -c "cd host/internal/extismbench && go test -run '^$' -bench . -benchmem -benchtime $(n 2000x 200x)"
