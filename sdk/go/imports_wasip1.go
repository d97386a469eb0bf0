//go:build wasip1

package trellis

import (
	"unsafe"

	"github.com/trellis-mesh/trellis/abi"
)

// The host functions of ABI v1 (abi/ABI.md section 5). Pointers are 32-bit
// offsets into this module's memory.

//go:wasmimport trellis read
func hostRead(field int32, offset uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport trellis header
func hostHeader(name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport trellis reply
func hostReply(hdr unsafe.Pointer, hdrLen uint32, data unsafe.Pointer, dataLen uint32) int32

//go:wasmimport trellis publish
func hostPublish(subj unsafe.Pointer, subjLen uint32, hdr unsafe.Pointer, hdrLen uint32, data unsafe.Pointer, dataLen uint32) int32

//go:wasmimport trellis request
func hostRequest(subj unsafe.Pointer, subjLen uint32, hdr unsafe.Pointer, hdrLen uint32, data unsafe.Pointer, dataLen uint32, timeoutMS uint32) int32

//go:wasmimport trellis log
func hostLog(level int32, msg unsafe.Pointer, msgLen uint32) int32

//go:wasmimport trellis config
func hostConfig(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport trellis subscribe
func hostSubscribe(subj unsafe.Pointer, subjLen uint32, queue unsafe.Pointer, queueLen uint32) int32

//go:wasmimport trellis error
func hostError(msg unsafe.Pointer, msgLen uint32) int32

//go:wasmimport trellis set_header
func hostSetHeader(name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32) int32

//go:wasmimport trellis set_data
func hostSetData(data unsafe.Pointer, dataLen uint32) int32

//go:wasmimport trellis set_subject
func hostSetSubject(subj unsafe.Pointer, subjLen uint32) int32

//go:wasmimport trellis response_header
func hostResponseHeader(name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32) int32

//go:wasmimport trellis kv_get
func hostKVGet(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport trellis kv_set
func hostKVSet(key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, ttlMS uint32) int32

//go:wasmimport trellis kv_incr
func hostKVIncr(key unsafe.Pointer, keyLen uint32, delta int64, ttlMS uint32, out unsafe.Pointer) int32

//go:wasmimport trellis kv_cas
func hostKVCAS(key unsafe.Pointer, keyLen uint32, expected unsafe.Pointer, expectedLen uint32, value unsafe.Pointer, valueLen uint32, ttlMS uint32) int32

//go:wasmimport trellis kv_delete
func hostKVDelete(key unsafe.Pointer, keyLen uint32) int32

//go:wasmexport trellis_abi_v1
func abiV1() {}

//go:wasmexport trellis_init
func exportInit() int32 { return runInit() }

// exportHandle handles one message. Its body is here, not in a function
// it calls, because in a Go guest each call costs tens of nanoseconds, as
// much as a host function: the per-message path makes as few as it can,
// and keeps what is rare (errors) in functions of their own, since every
// call site adds a resume point to the compiled function.
//
//go:wasmexport trellis_handle
func exportHandle(subjectLen, replyLen, headersLen, dataLen uint32) int32 {
	m := &curMsg
	// fillMsg(m, subjectLen, replyLen, headersLen, dataLen), written out:
	// the call alone was a tenth of the Go echo's time per message.
	*m = Msg{replyLen: replyLen}
	inBuf = grow(inBuf, max(subjectLen, dataLen))
	hostRead(int32(abi.FieldSubject), 0, ptr(inBuf), subjectLen)
	m.Subject = intern(inBuf[:subjectLen])
	if dataLen > 0 {
		m.Data = inBuf[:dataLen:dataLen]
		hostRead(int32(abi.FieldData), 0, ptr(m.Data), dataLen)
	}
	if headersLen > 0 {
		if st := readHeaders(m, headersLen); st != 0 {
			return st
		}
	}
	var fn HandlerFunc
	if len(routes) == 1 {
		fn = routes[0].fn // as lookup would, without the call
	} else if fn = lookup(m.Subject); fn == nil {
		return noHandler(m.Subject)
	}
	out, err := fn(m)
	if err != nil {
		return handlerFailed(err)
	}
	if m.IsRequest() && !m.replied {
		// m.Respond(out), without its two calls.
		if st := hostReply(nil, 0, ptr(out), uint32(len(out))); st < 0 {
			return replyFailed(st)
		}
	}
	return 0
}

//go:wasmexport trellis_policy
func exportPolicy(subjectLen, replyLen, headersLen, dataLen uint32) int32 {
	return runPolicy(subjectLen, replyLen, headersLen, dataLen)
}

//go:wasmexport trellis_policy_response
func exportPolicyResponse(status int32, headersLen, dataLen uint32) int32 {
	return runPolicyResponse(status, headersLen, dataLen)
}
