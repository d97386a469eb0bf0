package plugin_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func TestRolesReadTheExportSection(t *testing.T) {
	cases := []struct {
		name            string
		wasm            func(t *testing.T) []byte
		policy, handler bool
	}{
		{"policy", func(t *testing.T) []byte { return trellistest.WasmBytes(t, "../../testdata/allow.wat") }, true, false},
		{"handler", func(t *testing.T) []byte { return trellistest.WasmBytes(t, echoWAT) }, false, true},
		{"Go SDK: both", func(t *testing.T) []byte { return trellistest.WasmBytes(t, "../../testdata/testpolicy") }, true, true},
		{"not wasm", func(*testing.T) []byte { return []byte("trellis_policy") }, false, false},
		{"truncated export section", func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00\x07\x05\x01\x0etrel") }, false, false},
		{"empty", func(*testing.T) []byte { return nil }, false, false},
	}
	for _, c := range cases {
		if policy, handler := plugin.Roles(c.wasm(t)); policy != c.policy || handler != c.handler {
			t.Errorf("%s: Roles = %v, %v; want %v, %v", c.name, policy, handler, c.policy, c.handler)
		}
	}
}
