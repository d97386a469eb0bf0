//go:build !wasip1

package trellis

import "unsafe"

// Outside Wasm there is no host: these stand-ins let the package build (for
// go vet, documentation and unit tests of pure code) and fail loudly if a
// plugin is run as a native program by mistake.

const notWasm = "trellis: plugins run inside the Trellis host; build with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared"

func hostRead(int32, uint32, unsafe.Pointer, uint32) int32            { panic(notWasm) }
func hostHeader(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(notWasm) }
func hostReply(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32  { panic(notWasm) }
func hostPublish(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	panic(notWasm)
}
func hostRequest(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32) int32 {
	panic(notWasm)
}
func hostLog(int32, unsafe.Pointer, uint32) int32                             { panic(notWasm) }
func hostConfig(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32         { panic(notWasm) }
func hostSubscribe(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32      { panic(notWasm) }
func hostError(unsafe.Pointer, uint32) int32                                  { panic(notWasm) }
func hostSetHeader(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32      { panic(notWasm) }
func hostSetData(unsafe.Pointer, uint32) int32                                { panic(notWasm) }
func hostSetSubject(unsafe.Pointer, uint32) int32                             { panic(notWasm) }
func hostResponseHeader(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(notWasm) }
func hostKVGet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32          { panic(notWasm) }
func hostKVSet(unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32) int32  { panic(notWasm) }
func hostKVIncr(unsafe.Pointer, uint32, int64, uint32, unsafe.Pointer) int32  { panic(notWasm) }
func hostKVDelete(unsafe.Pointer, uint32) int32                               { panic(notWasm) }
func hostKVCAS(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32) int32 {
	panic(notWasm)
}
