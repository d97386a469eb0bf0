// Package abi holds the constants of the Trellis plugin ABI: the version, the
// names of the functions a plugin imports and exports, the message fields it
// can read, the log levels and the status codes host functions return.
//
// ABI.md beside this file is the specification; this package is its Go
// spelling, shared by the host and the Go SDK. It is a module of its own
// (github.com/trellis-mesh/trellis/abi) that imports nothing outside the
// standard library, so a guest that depends on it pulls in nothing else.
package abi

// Version is the ABI version this package describes. A plugin declares the
// version it was built against by exporting a function named
// ExportVersionPrefix followed by the number ("trellis_abi_v1").
const Version = 1

// SectionLanguage names the optional custom section in which a toolchain
// records the language a module was written in, as its whole payload
// after the name: "go", "rust", "c", "assemblyscript", "wat" or another
// lower-case name of at most MaxLanguage bytes. `trellis build` adds it;
// hosts only show it (trellis ls, the admin API, metrics).
const SectionLanguage = "trellis.language"

// MaxLanguage bounds the language a SectionLanguage section names.
const MaxLanguage = 32

// ImportModule is the Wasm import module name of every host function.
const ImportModule = "trellis"

// Names of the functions a plugin exports.
const (
	// ExportVersionPrefix starts the name of the version marker export,
	// a function of type () -> () that the host never calls.
	ExportVersionPrefix = "trellis_abi_v"
	// ExportVersion is the marker export of this ABI version.
	ExportVersion = "trellis_abi_v1"
	// ExportHandle is called once per message:
	// (subject_len, reply_len, headers_len, data_len i32) -> status i32.
	ExportHandle = "trellis_handle"
	// ExportPolicy makes a module a traffic policy. It is called once per
	// message before the handler:
	// (subject_len, reply_len, headers_len, data_len i32) -> decision i32,
	// 0 to let the message go on, or a status to reject it with.
	ExportPolicy = "trellis_policy"
	// ExportPolicyResponse is optional for a policy and sees the response on
	// its way back: (status, headers_len, data_len i32) -> decision i32.
	ExportPolicyResponse = "trellis_policy_response"
	// ExportInit is optional and called once per instance after
	// ExportInitialize: () -> status i32. Non-zero refuses the instance.
	ExportInit = "trellis_init"
	// ExportInitialize is the WASI reactor initialiser, called first if present.
	ExportInitialize = "_initialize"
	// ExportStart marks a WASI command module, which the host refuses.
	ExportStart = "_start"
	// ExportMemory is the linear memory every plugin must export.
	ExportMemory = "memory"
)

// Names of the host functions, all in module ImportModule. Every parameter
// and result is an i32; pointers and lengths address the plugin's memory.
const (
	// FuncRead (field, offset, buf, buf_len) -> total_len | -status
	FuncRead = "read"
	// FuncHeader (name, name_len, buf, buf_len) -> value_len | -status
	FuncHeader = "header"
	// FuncReply (headers, headers_len, data, data_len) -> 0 | -status
	FuncReply = "reply"
	// FuncPublish (subject, subject_len, headers, headers_len, data, data_len) -> 0 | -status
	FuncPublish = "publish"
	// FuncRequest (subject, subject_len, headers, headers_len, data, data_len, timeout_ms) -> data_len | -status
	FuncRequest = "request"
	// FuncLog (level, msg, msg_len) -> 0 | -status
	FuncLog = "log"
	// FuncConfig (key, key_len, buf, buf_len) -> value_len | -status
	FuncConfig = "config"
	// FuncSubscribe (subject, subject_len, queue, queue_len) -> 0 | -status
	FuncSubscribe = "subscribe"
	// FuncError (msg, msg_len) -> 0 | -status
	FuncError = "error"
	// FuncSetHeader (name, name_len, value, value_len) -> 0 | -status; policies only
	FuncSetHeader = "set_header"
	// FuncSetData (data, data_len) -> 0 | -status; policies only
	FuncSetData = "set_data"
	// FuncSetSubject (subject, subject_len) -> 0 | -status; policies only
	FuncSetSubject = "set_subject"
	// FuncResponseHeader (name, name_len, value, value_len) -> 0 | -status
	FuncResponseHeader = "response_header"
	// FuncKVGet (key, key_len, buf, buf_len) -> value_len | -status
	FuncKVGet = "kv_get"
	// FuncKVSet (key, key_len, value, value_len, ttl_ms) -> 0 | -status
	FuncKVSet = "kv_set"
	// FuncKVIncr (key, key_len, delta i64, ttl_ms, out) -> 0 | -status; writes the new value (i64, little-endian) at out
	FuncKVIncr = "kv_incr"
	// FuncKVDelete (key, key_len) -> 0 | -status
	FuncKVDelete = "kv_delete"
	// FuncKVCAS (key, key_len, expected, expected_len, value, value_len, ttl_ms) -> 0 | -status
	FuncKVCAS = "kv_cas"
)

// HostFuncs returns the names of every host function, in ABI.md's order. The
// slice is new on each call.
func HostFuncs() []string {
	return []string{FuncRead, FuncHeader, FuncReply, FuncPublish, FuncRequest, FuncLog, FuncConfig,
		FuncSubscribe, FuncError, FuncSetHeader, FuncSetData, FuncSetSubject, FuncResponseHeader,
		FuncKVGet, FuncKVSet, FuncKVIncr, FuncKVCAS, FuncKVDelete}
}

// GuestExports returns the names of the functions a plugin may export for the
// host to call (the version marker and the Export* functions), not counting
// the WASI ones. The slice is new on each call.
func GuestExports() []string {
	return []string{ExportVersion, ExportInit, ExportHandle, ExportPolicy, ExportPolicyResponse}
}

// Field names a part of the message being handled, or of the response to the
// plugin's last request, for FuncRead.
type Field int32

// The readable fields.
const (
	FieldSubject       Field = 0 // subject the message arrived on
	FieldReply         Field = 1 // reply subject, empty when none
	FieldHeaders       Field = 2 // headers, encoded as described in ABI.md
	FieldData          Field = 3 // payload
	FieldResultHeaders Field = 4 // headers of the last request's response
	FieldResultData    Field = 5 // payload of the last request's response, or the response a policy sees
	FieldMethod        Field = 6 // HTTP method, empty for NATS messages
	FieldPath          Field = 7 // HTTP path, empty for NATS messages
	FieldQuery         Field = 8 // HTTP query string without "?", empty for NATS messages
	FieldRemoteAddr    Field = 9 // HTTP client address host:port, empty for NATS messages
	fieldCount               = 10
)

// Valid reports whether f names a field.
func (f Field) Valid() bool { return f >= 0 && f < fieldCount }

var fieldNames = [fieldCount]string{"SUBJECT", "REPLY", "HEADERS", "DATA", "RESULT_HEADERS",
	"RESULT_DATA", "METHOD", "PATH", "QUERY", "REMOTE_ADDR"}

// Name returns the field's name as ABI.md spells it ("RESULT_DATA"), which
// the SDKs use too (C: TRELLIS_FIELD_RESULT_DATA); "" for an invalid field.
func (f Field) Name() string {
	if !f.Valid() {
		return ""
	}
	return fieldNames[f]
}

// Level is a log level for FuncLog. The values match go-hclog's.
type Level int32

// The log levels.
const (
	LevelTrace Level = 1
	LevelDebug Level = 2
	LevelInfo  Level = 3
	LevelWarn  Level = 4
	LevelError Level = 5
)

var levelNames = [...]string{LevelTrace: "TRACE", LevelDebug: "DEBUG", LevelInfo: "INFO", LevelWarn: "WARN", LevelError: "ERROR"}

// Valid reports whether l is a log level.
func (l Level) Valid() bool { return l >= LevelTrace && l <= LevelError }

// Name returns the level's name in capitals ("WARN"), as the SDKs spell it;
// "" for an invalid level.
func (l Level) Name() string {
	if !l.Valid() {
		return ""
	}
	return levelNames[l]
}

// Headers a failed request's error reply carries. They are the NATS
// micro-service convention, so `nats` tooling and nats.go's micro package
// read them as they are.
const (
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// Headers that say who sent a message. Only a policy sets them: the host
// removes any a client sent before the first policy runs (HTTP requests at
// the ingress, NATS messages as they enter a handler), so a handler that
// finds one knows a policy put it there. See "Identity headers" in ABI.md.
const (
	// HeaderPrincipal names the authenticated client, set by an
	// authentication policy ("token:alice", "jwt:https://issuer.example#ada").
	HeaderPrincipal = "Trellis-Principal"
	// HeaderClaimPrefix starts the name of each header that carries a
	// verified claim ("X-Claim-sub"). Matched in any case.
	HeaderClaimPrefix = "X-Claim-"
	// HeaderIdentitySeal is the host's seal over a message whose identity
	// headers a policy set, so that they survive the host's own hop over
	// the bus; a handler never sees it.
	HeaderIdentitySeal = "Trellis-Identity-Seal"
)

// A policy names why it refused a message in one header of its rejection,
// added with response_header: a short word the host logs and counts
// (trellis_policy_refusals_total{policy,reason}) and then removes, so that
// the caller never sees it; the caller's answer says only the rejection's
// own text ("invalid credentials"). See "Refusal reasons" in ABI.md.
const (
	// HeaderRefusal carries the reason of a policy's rejection, such as
	// "expired" or "unknown_key": 1 to MaxRefusalLen bytes that
	// ValidRefusal accepts.
	HeaderRefusal = "Trellis-Refusal"
	// RefusalUnknownKey is the reason of a token signed with a key that
	// none of the policy's key sets holds (a kid it does not know): the
	// host then refetches the policy's key sets (Spec.KeySources), at most
	// once per each set's minimum refresh interval, so that a key the
	// provider has just rotated in is taken without waiting for the next
	// scheduled refresh.
	RefusalUnknownKey = "unknown_key"
)

// ValidRefusal reports whether s may be a refusal reason: 1 to
// MaxRefusalLen bytes of printable ASCII other than space, '"' and '\'.
// The host counts any other value as "_invalid".
func ValidRefusal(s string) bool {
	if s == "" || len(s) > MaxRefusalLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
