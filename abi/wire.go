package abi

// Header names that cross the wire: between a plugin and the host, between
// the host and NATS clients, and between the HTTP ingress and handlers.
// ABI.md's "Headers" table says who sets each and what it means. Each name is
// declared here once; the host, the SDKs and the built-in policies use these.
const (
	// HeaderErrorCode and HeaderError are a failed request's error reply:
	// the status (an HTTP-like code) and its text. They are the NATS
	// micro-service convention, so `nats` tooling and nats.go's micro
	// package read them as they are.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"

	// HeaderReservedPrefix starts the names NATS itself uses (Nats-Msg-Id,
	// Nats-Expected-*, the error headers above). The HTTP ingress drops them
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

	// The headers the host adds to an event it dead-letters after every
	// attempt failed; the event keeps its own headers and data.
	HeaderDeadLetterError     = "Trellis-Error"      // the last failure's text
	HeaderDeadLetterErrorCode = "Trellis-Error-Code" // the last failure's status
	HeaderDeadLetterSubject   = "Trellis-Subject"    // the subject the event arrived on
	HeaderDeadLetterPlugin    = "Trellis-Plugin"     // the handler that failed
	HeaderDeadLetterAttempts  = "Trellis-Attempts"   // how many times it was tried

	// HeaderClaimPrefix followed by a claim's name ("X-Claim-sub") carries a
	// claim the auth policy verified to the policies after it and the
	// handler. The auth policy removes every incoming header with this
	// prefix, in any case, so a client cannot forge one.
	HeaderClaimPrefix = "X-Claim-"
)
