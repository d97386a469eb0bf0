package plugin_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// FuzzGuestPointers lets a guest pass arbitrary pointers and lengths to host
// functions: every call either succeeds or is a memory fault, never a host
// panic, and the plugin keeps serving.
func FuzzGuestPointers(f *testing.F) {
	p, err := plugin.Load(context.Background(), trellistest.WasmBytes(f, "testdata/ptrfuzz.wat"),
		plugin.Options{Name: "ptrfuzz", Outbox: &recorder{}, Grants: plugin.Grants{Publish: []string{">"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close(context.Background()) })
	f.Add(uint32(0), uint32(12), uint32(0))
	f.Add(uint32(65530), uint32(10), uint32(1))
	f.Add(uint32(0xffffffff), uint32(0xffffffff), uint32(2))
	f.Add(uint32(100), uint32(0), uint32(3))
	f.Add(uint32(65536), uint32(1), uint32(4))
	f.Add(uint32(65532), uint32(4), uint32(5))
	f.Fuzz(func(t *testing.T, ptr, n, which uint32) {
		data := make([]byte, 12)
		binary.LittleEndian.PutUint32(data[0:], ptr)
		binary.LittleEndian.PutUint32(data[4:], n)
		binary.LittleEndian.PutUint32(data[8:], which)
		_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r", Data: data})
		var f *plugin.Fault
		if err != nil && (!errors.As(err, &f) || f.Kind != plugin.FaultMemory) {
			t.Fatalf("ptr=%d len=%d fn=%d: %v", ptr, n, which%6, err)
		}
		if end := uint64(ptr) + uint64(n); err == nil && n > 0 && end > 65536 && which%6 != 5 {
			t.Fatalf("ptr=%d len=%d fn=%d reached past memory without a fault", ptr, n, which%6)
		}
	})
}

// FuzzLoad feeds arbitrary bytes to Load: an error or a plugin, never a panic.
func FuzzLoad(f *testing.F) {
	echo := trellistest.WasmBytes(f, "../../../abi/echo.wat")
	f.Add(echo)
	f.Add(echo[:len(echo)/2])
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := plugin.Load(context.Background(), b, plugin.Options{Name: "fuzz"})
		if err == nil {
			p.Close(context.Background())
		}
	})
}
