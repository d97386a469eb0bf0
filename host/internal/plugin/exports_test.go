package plugin_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func TestExportsPolicyReadsTheExportSection(t *testing.T) {
	cases := []struct {
		name string
		wasm func(t *testing.T) []byte
		want bool
	}{
		{"policy", func(t *testing.T) []byte { return trellistest.WasmBytes(t, "../../testdata/allow.wat") }, true},
		{"handler", func(t *testing.T) []byte { return trellistest.WasmBytes(t, echoWAT) }, false},
		{"not wasm", func(*testing.T) []byte { return []byte("trellis_policy") }, false},
		{"truncated export section", func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00\x07\x05\x01\x0etrel") }, false},
		{"empty", func(*testing.T) []byte { return nil }, false},
	}
	for _, c := range cases {
		if got := plugin.ExportsPolicy(c.wasm(t)); got != c.want {
			t.Errorf("%s: ExportsPolicy = %v, want %v", c.name, got, c.want)
		}
	}
}
