package main

import "runtime/debug"

// defaultGCPercent is the garbage collector's target (GOGC) the trellis
// command runs with when the environment sets none. Large payloads make the
// host garbage-collector-bound: nats-server and nats.go allocate a few times
// each payload per request. Against Go's default of 100, 400 took a third
// less CPU per 64 KiB request and 15 % less per 1 MiB one, for a peak
// resident memory 1.5 to 2 times higher (BENCHMARKS.md, "Large payloads").
const defaultGCPercent = 400

// applyGCPolicy sets the garbage collector's target to defaultGCPercent,
// unless getenv("GOGC") is set: then the Go runtime has applied the
// operator's value already (GOGC=100 restores Go's default, GOGC=off turns
// the collector off). GOMEMLIMIT, which the runtime also reads, caps the
// heap either way. It reports whether it changed anything.
func applyGCPolicy(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}
