// Package extismbench compares Trellis with Extism's Go SDK on the same
// echo, in a module of its own so that the host's module never depends on
// Extism. It holds benchmarks only:
//
//	cd host/internal/extismbench && go test -run '^$' -bench . -benchmem
//
// Both guests are hand-written WebAssembly text: Trellis's abi/echo.wat, and
// echo.wat here against Extism's kernel imports (Extism's Go PDK is not
// available here). They are built with wat2wasm when the test runs.
package extismbench
