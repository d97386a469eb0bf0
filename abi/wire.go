package abi

// Header names that cross the wire with a meaning to the host: between a
// plugin and the host, between the host and NATS clients, and between the
// HTTP ingress and handlers. ABI.md's "Headers" table lists them with the
// error headers (HeaderErrorCode, HeaderError) and the identity headers
// (HeaderPrincipal, HeaderClaimPrefix, HeaderIdentitySeal) declared in
// abi.go, and says who sets each and what it means. Each name is declared
// once, in this package; the host, the SDKs and the built-in policies use
// these constants.
const (
	// HeaderReservedPrefix starts the names NATS itself uses (Nats-Msg-Id,
	// Nats-Expected-*, the error headers). The HTTP ingress drops them
	// both ways: a client cannot forge one, and none leaks into a response.
	HeaderReservedPrefix = "Nats-"

	// HeaderHTTPStatus, in a handler's reply to a request from the HTTP
	// ingress, is the HTTP status to answer with (200–599; anything else is
	// ignored). The ingress removes it from the response.
	HeaderHTTPStatus = "Trellis-Http-Status"

	// HeaderParamPrefix followed by a parameter's name carries each
	// non-empty path parameter of an HTTP route ("/orders/{id}" sets
	// "Trellis-Param-id") to the policies and the handler.
	HeaderParamPrefix = "Trellis-Param-"

	// HeaderFallback is "true" in the configured fallback response the host
	// answers with when a handler's retries are spent or its breaker is open.
	HeaderFallback = "Trellis-Fallback"

	// The claims the HTTP ingress sets, as HeaderClaimPrefix headers, for a
	// client that presented a certificate the ingress verified (mutual
	// TLS): the certificate's subject (RFC 2253), its common name, and its
	// subject alternative names (DNS names, URIs and e-mail addresses,
	// comma-separated). Like every claim, a client cannot forge them.
	ClaimTLSSubject = "Tls-Subject"
	ClaimTLSCN      = "Tls-Cn"
	ClaimTLSSAN     = "Tls-San"

	// HeaderDelivery is set by the host on an event a durable handler
	// receives from its JetStream stream: which delivery of the event this
	// is, "1" the first time, more when an earlier one failed or timed
	// out. A handler keeps a redelivery idempotent by the event's
	// Nats-Msg-Id (or its own id), not by this count.
	HeaderDelivery = "Trellis-Delivery"

	// The headers the host adds to an event it dead-letters after every
	// attempt failed; the event keeps its own headers and data.
	HeaderDeadLetterError     = "Trellis-Error"      // the last failure's text
	HeaderDeadLetterErrorCode = "Trellis-Error-Code" // the last failure's status
	HeaderDeadLetterSubject   = "Trellis-Subject"    // the subject the event arrived on
	HeaderDeadLetterPlugin    = "Trellis-Plugin"     // the handler that failed
	HeaderDeadLetterAttempts  = "Trellis-Attempts"   // how many times it was tried

	// HeaderTraceparent and HeaderTracestate carry W3C trace context
	// (https://www.w3.org/TR/trace-context/) on NATS messages and HTTP
	// requests. When the host traces (OpenTelemetry), it reads them from a
	// message it receives and sets them, in these lower-case spellings, on
	// what it sends on: a plugin reads the trace id of the message it
	// handles from traceparent ("00-<32 hex trace id>-<16 hex parent
	// id>-<2 hex flags>"), and the host replaces any traceparent a plugin
	// passes to publish or request with the span of that call.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)
