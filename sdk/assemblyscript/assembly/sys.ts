// The raw host functions of ABI.md section 5, exactly as the host defines
// them: import module "trellis", every parameter and result an i32, except the
// delta of kv_incr, an i64.
//
// Each returns a value >= 0 on success (0, or a length where the ABI says so)
// and the negated Status on failure. Pointers must lie wholly inside the
// plugin's memory: the host treats a pointer that does not as a trap. The
// functions in index.ts are built on these; import this file only for what
// they do not cover (reading a large field in chunks, for instance).

/** Message field numbers for `read` (ABI.md section 4). */
export namespace field {
  /** The subject the message arrived on. */
  export const SUBJECT: i32 = 0;
  /** Its reply subject, empty if none. */
  export const REPLY: i32 = 1;
  /** Its headers, "Name: value\r\n" per value, empty if none. */
  export const HEADERS: i32 = 2;
  /** Its payload. */
  export const DATA: i32 = 3;
  /** Headers of the response to this call's last successful request; in trellis_policy_response, the response's. */
  export const RESULT_HEADERS: i32 = 4;
  /** Payload of that response; in trellis_policy_response, the response's. */
  export const RESULT_DATA: i32 = 5;
  /** HTTP method of a request that came through the HTTP ingress; empty for NATS messages. */
  export const METHOD: i32 = 6;
  /** Its URL path (/orders/42). */
  export const PATH: i32 = 7;
  /** Its raw query string, without "?". */
  export const QUERY: i32 = 8;
  /** The client's address, host:port. */
  export const REMOTE_ADDR: i32 = 9;
}

/** Copies bytes [offset, offset + bufLen) of `field` into `buf`; returns the field's total length. */
// @ts-ignore: decorator
@external("trellis", "read")
export declare function read(field: i32, offset: u32, buf: usize, bufLen: u32): i32;

/** Copies the first value of header `name` into `buf`; returns its total length. */
// @ts-ignore: decorator
@external("trellis", "header")
export declare function header(name: usize, nameLen: u32, buf: usize, bufLen: u32): i32;

/** Replies to the message being handled. */
// @ts-ignore: decorator
@external("trellis", "reply")
export declare function reply(headers: usize, headersLen: u32, data: usize, dataLen: u32): i32;

/** Publishes a message. */
// @ts-ignore: decorator
@external("trellis", "publish")
export declare function publish(
  subject: usize, subjectLen: u32,
  headers: usize, headersLen: u32,
  data: usize, dataLen: u32,
): i32;

/** Sends a request and waits for the first response; returns its data length. */
// @ts-ignore: decorator
@external("trellis", "request")
export declare function request(
  subject: usize, subjectLen: u32,
  headers: usize, headersLen: u32,
  data: usize, dataLen: u32,
  timeoutMs: u32,
): i32;

/** Writes to the plugin's logger at `level` (1 trace ... 5 error). */
// @ts-ignore: decorator
@external("trellis", "log")
export declare function log(level: i32, msg: usize, msgLen: u32): i32;

/** Copies the operator's config value `key` into `buf`; returns its total length. */
// @ts-ignore: decorator
@external("trellis", "config")
export declare function config(key: usize, keyLen: u32, buf: usize, bufLen: u32): i32;

/** Declares a subject the plugin handles (only inside trellis_init). */
// @ts-ignore: decorator
@external("trellis", "subscribe")
export declare function subscribe(subject: usize, subjectLen: u32, queue: usize, queueLen: u32): i32;

/** Sets the description of the failure trellis_handle is about to return. */
// @ts-ignore: decorator
@external("trellis", "error")
export declare function error(msg: usize, msgLen: u32): i32;

/** In a policy: sets header `name` of the message that goes on (valueLen 0 removes it). */
// @ts-ignore: decorator
@external("trellis", "set_header")
export declare function set_header(name: usize, nameLen: u32, value: usize, valueLen: u32): i32;

/** In a policy: replaces the payload the handler gets; in a response phase, the response's payload. */
// @ts-ignore: decorator
@external("trellis", "set_data")
export declare function set_data(data: usize, dataLen: u32): i32;

/** In a policy: sends the message to `subject` instead of the handler. */
// @ts-ignore: decorator
@external("trellis", "set_subject")
export declare function set_subject(subject: usize, subjectLen: u32): i32;

/** Adds a header to the response the caller gets. */
// @ts-ignore: decorator
@external("trellis", "response_header")
export declare function response_header(name: usize, nameLen: u32, value: usize, valueLen: u32): i32;

/** Copies the value of `key` into `buf`; returns its total length. */
// @ts-ignore: decorator
@external("trellis", "kv_get")
export declare function kv_get(key: usize, keyLen: u32, buf: usize, bufLen: u32): i32;

/** Stores `value` under `key`, expiring after `ttlMs` (0: never). */
// @ts-ignore: decorator
@external("trellis", "kv_set")
export declare function kv_set(key: usize, keyLen: u32, value: usize, valueLen: u32, ttlMs: u32): i32;

/** Adds `delta` to the integer under `key`; writes the new value (8 bytes, little-endian) at `out`. */
// @ts-ignore: decorator
@external("trellis", "kv_incr")
export declare function kv_incr(key: usize, keyLen: u32, delta: i64, ttlMs: u32, out: usize): i32;

/** Stores `value` under `key` only if its value is `expected` (expectedLen 0: only if it does not exist). */
// @ts-ignore: decorator
@external("trellis", "kv_cas")
export declare function kv_cas(
  key: usize, keyLen: u32,
  expected: usize, expectedLen: u32,
  value: usize, valueLen: u32,
  ttlMs: u32,
): i32;

/** Removes `key`. */
// @ts-ignore: decorator
@external("trellis", "kv_delete")
export declare function kv_delete(key: usize, keyLen: u32): i32;
