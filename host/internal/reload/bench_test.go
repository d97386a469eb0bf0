package reload_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// withCustomSection returns wasm with a custom section appended, so that the
// same code has different content (and so a different version, and no
// compilation cache entry).
func withCustomSection(wasm []byte, payload string) []byte {
	name := "trellis.bench"
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, payload...)
	out := append([]byte(nil), wasm...)
	out = append(out, 0)
	n := len(body)
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		out = append(out, b)
		break
	}
	return append(out, body...)
}

// BenchmarkReloadLatency measures the time from the last write of a plugin
// file to the first message served by the new version, through the whole
// dev-mode path: fsnotify, a 20 ms debounce, read, compile (or cache hit),
// ABI check, first instance, swap. Small is the WAT echo (a few hundred
// bytes); large is a Go plugin (several MB). "cache=hit" alternates two
// versions the compilation cache has seen; "cache=miss" makes every version
// new content, so each one is compiled.
func BenchmarkReloadLatency(b *testing.B) {
	type pair struct {
		a, b         []byte
		wantA, wantB string
	}
	small := func(b *testing.B) pair {
		return pair{trellistest.WasmBytes(b, "testdata/v1.wat"), trellistest.WasmBytes(b, "testdata/v2.wat"), "v1:x", "v2:x"}
	}
	large := func(b *testing.B) pair {
		return pair{trellistest.WasmBytes(b, "../../../examples/echo"), trellistest.WasmBytes(b, "../../../examples/greet"), "x", "Hello, x!"}
	}
	for _, size := range []struct {
		name string
		get  func(*testing.B) pair
	}{{"small", small}, {"large", large}} {
		for _, cache := range []string{"hit", "miss"} {
			b.Run(size.name+"/cache="+cache, func(b *testing.B) {
				p := size.get(b)
				h := trellistest.NewHost(b, func(o *host.Options) { o.CacheDir = b.TempDir() })
				dir := b.TempDir()
				path := filepath.Join(dir, "versioned.wasm")
				if err := os.WriteFile(path, p.a, 0o644); err != nil {
					b.Fatal(err)
				}
				serveDirB(b, h, dir, "versioned")
				nc := h.Client()
				await := func(want string) {
					for {
						m, err := nc.Request("versioned", []byte("x"), time.Second)
						if err == nil && string(m.Data) == want {
							return
						}
						time.Sleep(200 * time.Microsecond)
					}
				}
				await(p.wantA)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					content, want := p.b, p.wantB
					if i%2 == 1 {
						content, want = p.a, p.wantA
					}
					if cache == "miss" {
						content = withCustomSection(content, fmt.Sprint(i))
					}
					tmp := path + ".tmp"
					os.WriteFile(tmp, content, 0o644)
					os.Rename(tmp, path)
					await(want)
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/reload")
				if strings.Contains(h.Logs(), "plugin refused") {
					b.Fatalf("a version was refused:\n%s", h.Logs())
				}
			})
		}
	}
}
