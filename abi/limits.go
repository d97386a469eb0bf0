package abi

// Limits on the names and amounts that cross the ABI or enter the host from
// outside. Each is checked where the input enters (a host function, the HTTP
// ingress, the config) and refused there with an error that names it, so
// nothing oversized ever reaches the bus. ABI.md section 1 lists them.
//
// The subject and queue limits keep every protocol line the host sends well
// inside nats-server's control line (4 KiB by default): a PUB or HPUB line
// holds a subject, a reply subject and two numbers; a SUB line a subject, a
// queue name and an id. A longer line makes the server close the connection.
const (
	// MaxSubjectLen is the longest subject, in bytes, a plugin may publish,
	// request, subscribe to or set, and the longest an HTTP route may expand to.
	MaxSubjectLen = 1024
	// MaxSubjectTokens is the most dot-separated tokens a subject may have.
	MaxSubjectTokens = 64
	// MaxQueueLen is the longest queue group name, in bytes.
	MaxQueueLen = 256
	// MaxHeaderNameLen is the longest header name, in bytes.
	MaxHeaderNameLen = 256
	// MaxHeaderValueLen is the longest single header value, in bytes.
	MaxHeaderValueLen = 16 << 10
	// MaxHeaderBytesPerCall caps the bytes (names plus values) a plugin may
	// add with set_header and response_header during one call.
	MaxHeaderBytesPerCall = 64 << 10
	// MaxKVKeyLen is the longest key-value key, in bytes.
	MaxKVKeyLen = 256
	// MaxConfigKeyLen is the longest config key, in bytes.
	MaxConfigKeyLen = 256
	// MaxConfigValueLen is the longest config value, in bytes.
	MaxConfigValueLen = 64 << 10
	// MaxLogBytes is where one log or error text is cut.
	MaxLogBytes = 64 << 10
	// MaxLogBytesPerCall caps the log text one call may write; past it, log
	// returns StatusTooLarge and writes nothing.
	MaxLogBytesPerCall = 256 << 10
	// MaxPublishesPerCall caps publish calls (and set_subject reroutes) per
	// call of an export; past it, publish returns StatusTooLarge.
	MaxPublishesPerCall = 1024
	// MaxRequestsPerCall caps request calls per call of an export.
	MaxRequestsPerCall = 64
	// MaxOutboundBytesPerCall caps the bytes (headers and data) a plugin may
	// publish and request during one call.
	MaxOutboundBytesPerCall = 64 << 20
	// MaxSubscriptions caps the subscribe calls of one plugin.
	MaxSubscriptions = 64
	// MaxRefusalLen is the longest refusal reason (HeaderRefusal), in bytes.
	MaxRefusalLen = 64
	// MaxRefusalReasons caps the distinct refusal reasons the host counts
	// per policy; more are counted together as "_other", so that a policy
	// cannot grow the metric's series without bound.
	MaxRefusalReasons = 64
	// MaxTraceparentLen and MaxTracestateLen bound the trace context
	// headers (HeaderTraceparent, HeaderTracestate) the host reads from a
	// message or an HTTP request when it traces: a longer traceparent is
	// ignored (the message starts a trace of its own), a longer tracestate
	// is dropped. 512 bytes is what W3C trace context asks every platform
	// to pass on.
	MaxTraceparentLen = 256
	MaxTracestateLen  = 512
)
