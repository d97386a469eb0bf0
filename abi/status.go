package abi

// Status is the result of a host function. Host functions return 0 or a
// non-negative length on success and the negated Status on failure, so a
// guest tests "result < 0" and negates to get the Status.
type Status int32

// The status codes. The list is the one in ABI.md; codes are never reused.
const (
	StatusOK              Status = 0  // success
	StatusNotFound        Status = 1  // no such header or config key
	StatusInvalidArgument Status = 2  // a bad field, level, or malformed headers
	StatusInvalidSubject  Status = 3  // an empty or over-long subject or queue name, or one with spaces or bad wildcards
	StatusDenied          Status = 4  // the operator did not grant this subject, or it is a system subject
	StatusNoReply         Status = 5  // the message has no reply subject
	StatusAlreadyReplied  Status = 6  // reply was already called for this message
	StatusTimeout         Status = 7  // the request timed out, or the call deadline passed
	StatusNoResponders    Status = 8  // nobody is subscribed to the request subject
	StatusBus             Status = 9  // the bus failed (connection closed, payload too large)
	StatusWrongPhase      Status = 10 // the function is not allowed now (subscribe outside init)
	StatusTooLarge        Status = 11 // a value exceeds a host limit, or a per-call budget is spent
	StatusConflict        Status = 12 // kv_cas found another value than expected
)

var statusNames = [...]string{
	StatusOK:              "ok",
	StatusNotFound:        "not found",
	StatusInvalidArgument: "invalid argument",
	StatusInvalidSubject:  "invalid subject",
	StatusDenied:          "permission denied",
	StatusNoReply:         "no reply subject",
	StatusAlreadyReplied:  "already replied",
	StatusTimeout:         "timeout",
	StatusNoResponders:    "no responders",
	StatusBus:             "bus error",
	StatusWrongPhase:      "not allowed in this phase",
	StatusTooLarge:        "too large",
	StatusConflict:        "conflict",
}

var statusIdents = [...]string{
	StatusOK:              "OK",
	StatusNotFound:        "NOT_FOUND",
	StatusInvalidArgument: "INVALID_ARGUMENT",
	StatusInvalidSubject:  "INVALID_SUBJECT",
	StatusDenied:          "DENIED",
	StatusNoReply:         "NO_REPLY",
	StatusAlreadyReplied:  "ALREADY_REPLIED",
	StatusTimeout:         "TIMEOUT",
	StatusNoResponders:    "NO_RESPONDERS",
	StatusBus:             "BUS",
	StatusWrongPhase:      "WRONG_PHASE",
	StatusTooLarge:        "TOO_LARGE",
	StatusConflict:        "CONFLICT",
}

// Valid reports whether s is a status code of this ABI version.
func (s Status) Valid() bool { return s >= 0 && int(s) < len(statusNames) }

// Name returns the status's name in ABI.md's table ("NOT_FOUND"), which the
// SDKs spell their constants after (C: TRELLIS_NOT_FOUND); "" if s is not
// Valid.
func (s Status) Name() string {
	if !s.Valid() {
		return ""
	}
	return statusIdents[s]
}

// String returns the status's description as the Go SDK's errors say it
// ("not found").
func (s Status) String() string {
	if s.Valid() {
		return statusNames[s]
	}
	return "unknown status"
}

// Error makes a Status usable as an error value on the host and in SDKs.
func (s Status) Error() string { return "trellis: " + s.String() }

// Result returns the i32 a host function hands back for s: its negation.
func (s Status) Result() int32 { return -int32(s) }
