// The Trellis SDK for AssemblyScript: plugin ABI v1 (abi/ABI.md).
//
// A plugin's entry file registers its functions and re-exports the three
// exports the host calls:
//
//   import { Msg, Status, TrellisError, failStatus, plugin, reply, subscribe } from "@trellis-mesh/sdk";
//   export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk";
//
//   function init(): TrellisError | null {
//     const s = subscribe("echo");
//     return s == Status.OK ? null : failStatus(s);
//   }
//   function handle(msg: Msg): TrellisError | null {
//     if (!msg.hasReply()) return null;
//     const s = reply(msg.data());
//     return s == Status.OK ? null : failStatus(s);
//   }
//   plugin(handle, init);
//
// A policy registers its function with policy(fn, responseFn) and
// re-exports trellis_policy (and trellis_policy_response if it has a response
// function) the same way.
//
// Build with --runtime incremental (README.md says why). The host never keeps
// a pointer into the plugin's memory, so every argument only needs to live
// for the call.

import * as sys from "./sys";

/** The ABI version this SDK implements; the marker export is trellis_abi_v1. */
export const ABI_VERSION: i32 = 1;

/** Header of an error reply: its status, an HTTP-like code (ABI.md, "Headers"). */
export const HEADER_ERROR_CODE: string = "Nats-Service-Error-Code";
/** Header of an error reply: its text. */
export const HEADER_ERROR: string = "Nats-Service-Error";
/** Header of a reply to a request from the HTTP ingress: the HTTP status to answer with (200–599). */
export const HEADER_HTTP_STATUS: string = "Trellis-Http-Status";
/** Followed by a parameter's name, the header that carries an HTTP route's path parameter. */
export const HEADER_PARAM_PREFIX: string = "Trellis-Param-";

// ---------------------------------------------------------------------------
// Status and failures
// ---------------------------------------------------------------------------

/** Status codes, ABI.md section 6. Host functions return their negation; the functions here return them positive. */
export enum Status {
  /** Success. */
  OK = 0,
  /** No such header or config key. */
  NOT_FOUND = 1,
  /** A bad field or level, or malformed headers. */
  INVALID_ARGUMENT = 2,
  /** An empty subject, whitespace in it, or a wildcard where none is allowed. */
  INVALID_SUBJECT = 3,
  /** The operator has not granted this subject. */
  DENIED = 4,
  /** The message has no reply subject. */
  NO_REPLY = 5,
  /** reply was already called for this message. */
  ALREADY_REPLIED = 6,
  /** The request timed out, or the call deadline passed. */
  TIMEOUT = 7,
  /** Nobody is subscribed to the request subject. */
  NO_RESPONDERS = 8,
  /** The bus failed or refused the message. */
  BUS = 9,
  /** Not allowed now (subscribe outside init, set_* outside a policy). */
  WRONG_PHASE = 10,
  /** A value exceeds a host limit. */
  TOO_LARGE = 11,
  /** kvCompareAndSet found another value than the one expected. */
  CONFLICT = 12,
}

/** Returns the name of a status code as ABI.md's Go constants spell it; accepts the code or its negation. */
export function statusName(status: i32): string {
  if (status < 0) status = -status;
  switch (status) {
    case Status.OK: return "ok";
    case Status.NOT_FOUND: return "not found";
    case Status.INVALID_ARGUMENT: return "invalid argument";
    case Status.INVALID_SUBJECT: return "invalid subject";
    case Status.DENIED: return "permission denied";
    case Status.NO_REPLY: return "no reply subject";
    case Status.ALREADY_REPLIED: return "already replied";
    case Status.TIMEOUT: return "timeout";
    case Status.NO_RESPONDERS: return "no responders";
    case Status.BUS: return "bus error";
    case Status.WRONG_PHASE: return "not allowed in this phase";
    case Status.TOO_LARGE: return "too large";
    case Status.CONFLICT: return "conflict";
  }
  return "unknown status";
}

/** Turns a host result (>= 0, or -status) into a Status. */
// @ts-ignore: decorator
@inline
function statusOf(result: i32): Status {
  return result < 0 ? <Status>(-result) : Status.OK;
}

/**
 * A handler's failure: an HTTP-like code (400 bad input, 404, 500...) and a
 * description. When a handler returns one, the SDK passes the description to
 * the host's `error` function and returns the code, so a requester that got
 * no reply is answered with `Nats-Service-Error-Code: <code>` and
 * `Nats-Service-Error: <description>`. A code of 0 or less is sent as 500.
 */
export class TrellisError {
  constructor(public code: i32, public message: string) {}
}

/** Returns a failure with `code` and `message`, for `return fail(400, "bad input")`. */
export function fail(code: i32, message: string): TrellisError {
  return new TrellisError(code, message);
}

/**
 * Returns the failure for a host function that failed inside a handler: 504
 * for TIMEOUT, 503 for NO_RESPONDERS, 409 for CONFLICT, 500 otherwise,
 * described by the status's name.
 */
export function failStatus(status: Status): TrellisError {
  let code = 500;
  if (status == Status.TIMEOUT) code = 504;
  else if (status == Status.NO_RESPONDERS) code = 503;
  else if (status == Status.CONFLICT) code = 409;
  return new TrellisError(code, statusName(status));
}

// ---------------------------------------------------------------------------
// Bytes and strings
// ---------------------------------------------------------------------------

/** Reads a field whose length is known: one allocation, one copy. */
function readExact(field: i32, len: u32): Uint8Array {
  const buf = new Uint8Array(<i32>len);
  if (len > 0) sys.read(field, 0, buf.dataStart, len);
  return buf;
}

/**
 * Copies bytes of `field` (a `sys.field` number) starting at `offset` into
 * `buf`; returns the field's total length, or -status. Use it to read a large
 * field in chunks, or into a buffer you reuse.
 */
export function readInto(field: i32, offset: u32, buf: Uint8Array): i32 {
  return sys.read(field, offset, buf.dataStart, <u32>buf.byteLength);
}

/** Returns all of `field` (a `sys.field` number), or null if there is no such field. */
export function readField(field: i32): Uint8Array | null {
  const n = sys.read(field, 0, 0, 0);
  if (n < 0) return null;
  return readExact(field, <u32>n);
}

function decode(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.byteLength);
}

/** Reads a text field of unknown length; "" when it is empty or missing. */
function readText(field: i32): string {
  const n = sys.read(field, 0, 0, 0);
  if (n <= 0) return "";
  return decode(readExact(field, <u32>n));
}

/** The first value of header `name` of the current message, from the host, or null. */
function hostHeader(name: string): string | null {
  const key = String.UTF8.encode(name);
  const k = changetype<usize>(key), kl = <u32>key.byteLength;
  const n = sys.header(k, kl, 0, 0);
  if (n < 0) return null;
  const buf = new Uint8Array(n);
  sys.header(k, kl, buf.dataStart, <u32>n);
  return decode(buf);
}

/** Returns the UTF-8 bytes of `s`. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

function asciiEqualFold(a: string, b: string): bool {
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x >= 65 && x <= 90) x += 32;
    if (y >= 65 && y <= 90) y += 32;
    if (x != y) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

/**
 * Message headers: an ordered list of (name, value) pairs in which a name may
 * appear several times. Names are case-sensitive, as in NATS; `get` falls back
 * to a case-insensitive match as the host's `header` function does. On the
 * wire (ABI.md section 4) each value is one line, `Name: value\r\n`.
 */
export class Headers {
  private names: string[] = [];
  private values: string[] = [];

  /** The number of values (a name with two values counts twice). */
  get length(): i32 {
    return this.names.length;
  }

  /** The name of the i-th value. */
  nameAt(i: i32): string {
    return this.names[i];
  }

  /** The i-th value. */
  valueAt(i: i32): string {
    return this.values[i];
  }

  /** The first value of `name`: an exact match if there is one, else the first case-insensitive match. */
  get(name: string): string | null {
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] == name) return this.values[i];
    }
    for (let i = 0; i < this.names.length; i++) {
      if (asciiEqualFold(this.names[i], name)) return this.values[i];
    }
    return null;
  }

  /** Every value of `name` in order, matching the exact name if present, else case-insensitively. */
  getAll(name: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] == name) out.push(this.values[i]);
    }
    if (out.length > 0) return out;
    for (let i = 0; i < this.names.length; i++) {
      if (asciiEqualFold(this.names[i], name)) out.push(this.values[i]);
    }
    return out;
  }

  /** Adds a value for `name`, after any it already has. */
  append(name: string, value: string): Headers {
    this.names.push(name);
    this.values.push(value);
    return this;
  }

  /** Sets `name` to the single value `value`, replacing the values it had (exact-case match). */
  set(name: string, value: string): Headers {
    this.delete(name);
    return this.append(name, value);
  }

  /** Removes every value of `name` (exact-case match). */
  delete(name: string): Headers {
    const names: string[] = [];
    const values: string[] = [];
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] != name) {
        names.push(this.names[i]);
        values.push(this.values[i]);
      }
    }
    this.names = names;
    this.values = values;
    return this;
  }

  /** Encodes the headers: `Name: value\r\n` per value, in order. Empty headers encode to no bytes. */
  encode(): Uint8Array {
    let s = "";
    for (let i = 0; i < this.names.length; i++) {
      s += this.names[i] + ": " + this.values[i] + "\r\n";
    }
    return utf8(s);
  }

  /**
   * Decodes the encoding of ABI.md section 4; the final `\r\n` may be
   * missing. Returns null for a line without ": ", an empty name, or a lone
   * CR or LF, as the host would judge it.
   */
  static parse(b: Uint8Array): Headers | null {
    const h = new Headers();
    const n = b.length;
    let start = 0;
    while (start < n) {
      let end = start;
      while (end < n && b[end] != 13 && b[end] != 10) end++;
      let next = end;
      if (end < n) {
        if (b[end] != 13 || end + 1 >= n || b[end + 1] != 10) return null;
        next = end + 2;
      }
      let colon = -1;
      for (let i = start; i + 1 < end; i++) {
        if (b[i] == 58 && b[i + 1] == 32) {
          colon = i;
          break;
        }
      }
      if (colon <= start) return null;
      const base = b.dataStart;
      h.append(
        String.UTF8.decodeUnsafe(base + <usize>start, <usize>(colon - start)),
        String.UTF8.decodeUnsafe(base + <usize>(colon + 2), <usize>(end - colon - 2)),
      );
      start = next;
    }
    return h;
  }
}

// ---------------------------------------------------------------------------
// The message
// ---------------------------------------------------------------------------

/**
 * The message being handled. Fields are read from the host the first time
 * they are asked for and then kept, so a handler pays only for what it uses.
 */
export class Msg {
  private _subject: string | null = null;
  private _reply: string | null = null;
  protected _headers: Headers | null = null;
  protected _data: Uint8Array | null = null;
  protected _headersLen: u32;
  protected _dataLen: u32;

  /** The message the host announced with these field lengths (the arguments of trellis_handle). */
  constructor(
    public readonly subjectLen: u32,
    public readonly replyLen: u32,
    headersLen: u32,
    dataLen: u32,
  ) {
    this._headersLen = headersLen;
    this._dataLen = dataLen;
  }

  /** The length of the encoded headers (costs no host call). */
  get headersLen(): u32 {
    return this._headersLen;
  }

  /** The length of the payload (costs no host call). */
  get dataLen(): u32 {
    return this._dataLen;
  }

  /** The subject the message arrived on. */
  subject(): string {
    let s = this._subject;
    if (s === null) {
      s = decode(readExact(sys.field.SUBJECT, this.subjectLen));
      this._subject = s;
    }
    return s;
  }

  /** The reply subject, or "" if the message expects no reply. */
  reply(): string {
    let s = this._reply;
    if (s === null) {
      s = decode(readExact(sys.field.REPLY, this.replyLen));
      this._reply = s;
    }
    return s;
  }

  /** Whether the message expects a reply (costs no host call). */
  hasReply(): bool {
    return this.replyLen != 0;
  }

  /** All the headers. */
  headers(): Headers {
    const cached = this._headers;
    if (cached !== null) return cached;
    let h = Headers.parse(readExact(sys.field.HEADERS, this._headersLen));
    if (h === null) h = new Headers();
    this._headers = h;
    return h;
  }

  /**
   * The first value of header `name` (exact match first, then
   * case-insensitive), or null. Asks the host for that one value, without
   * decoding all the headers.
   */
  header(name: string): string | null {
    return hostHeader(name);
  }

  /** The payload. */
  data(): Uint8Array {
    let d = this._data;
    if (d === null) {
      d = readExact(sys.field.DATA, this._dataLen);
      this._data = d;
    }
    return d;
  }

  /** The payload decoded as UTF-8. */
  dataString(): string {
    return decode(this.data());
  }
}

// ---------------------------------------------------------------------------
// Answering and sending
// ---------------------------------------------------------------------------

/**
 * Replies to the message being handled with `data` and no headers. At most
 * one reply per message. Returns OK, NO_REPLY (the message expects none),
 * ALREADY_REPLIED or BUS.
 */
export function reply(data: Uint8Array): Status {
  return statusOf(sys.reply(0, 0, data.dataStart, <u32>data.byteLength));
}

/** Replies with the UTF-8 bytes of `text`; as `reply`. */
export function replyString(text: string): Status {
  return reply(utf8(text));
}

/** Replies with `headers` and `data`; as `reply`, and INVALID_ARGUMENT for malformed headers. */
export function replyWithHeaders(headers: Headers, data: Uint8Array): Status {
  const h = headers.encode();
  return statusOf(sys.reply(h.dataStart, <u32>h.byteLength, data.dataStart, <u32>data.byteLength));
}

/**
 * Publishes `data` on `subject`, which the operator must have granted.
 * Returns OK, INVALID_SUBJECT, DENIED or BUS.
 */
export function publish(subject: string, data: Uint8Array): Status {
  return publishWithHeaders(subject, new Headers(), data);
}

/** Publishes with headers; as `publish`, and INVALID_ARGUMENT for malformed headers. */
export function publishWithHeaders(subject: string, headers: Headers, data: Uint8Array): Status {
  const s = utf8(subject);
  const h = headers.encode();
  return statusOf(sys.publish(
    s.dataStart, <u32>s.byteLength,
    h.dataStart, <u32>h.byteLength,
    data.dataStart, <u32>data.byteLength,
  ));
}

/** The outcome of a request: a status and, when it is OK, the response. */
export class Response {
  constructor(
    /** OK, or why the request failed (INVALID_SUBJECT, DENIED, TIMEOUT, NO_RESPONDERS, BUS...). */
    public status: Status,
    /** The response's headers (empty on failure). */
    public headers: Headers,
    /** The response's payload (empty on failure). */
    public data: Uint8Array,
  ) {}

  /** Whether the request got a response. */
  get ok(): bool {
    return this.status == Status.OK;
  }

  /** The payload decoded as UTF-8. */
  dataString(): string {
    return decode(this.data);
  }

  /** The first value of header `name`, as `Headers.get`. */
  header(name: string): string | null {
    return this.headers.get(name);
  }

  /**
   * The code of a NATS service error response (header
   * Nats-Service-Error-Code), which the host reports as a successful
   * request; 0 for a normal response. The text is header Nats-Service-Error.
   */
  serviceErrorCode(): i32 {
    const c = this.headers.get(HEADER_ERROR_CODE);
    if (c === null) return 0;
    const n = I32.parseInt(c);
    return n > 0 ? n : 500;
  }
}

/**
 * Sends `data` as a request on `subject` and waits for the first response, at
 * most `timeoutMs` milliseconds and never past the current call's deadline (0:
 * until the deadline). The operator must have granted `subject` for requests.
 * Check `response.ok` (or `status`) before using the response. A response
 * carrying Nats-Service-Error-Code is still OK: see `serviceErrorCode`.
 */
export function request(subject: string, data: Uint8Array, timeoutMs: u32 = 0): Response {
  return requestWithHeaders(subject, new Headers(), data, timeoutMs);
}

/** Sends a request with headers; as `request`, and INVALID_ARGUMENT for malformed headers. */
export function requestWithHeaders(subject: string, headers: Headers, data: Uint8Array, timeoutMs: u32 = 0): Response {
  const s = utf8(subject);
  const h = headers.encode();
  // The ABI passes timeout_ms as an i32: keep it non-negative.
  if (timeoutMs > <u32>i32.MAX_VALUE) timeoutMs = <u32>i32.MAX_VALUE;
  const n = sys.request(
    s.dataStart, <u32>s.byteLength,
    h.dataStart, <u32>h.byteLength,
    data.dataStart, <u32>data.byteLength,
    timeoutMs,
  );
  if (n < 0) return new Response(statusOf(n), new Headers(), new Uint8Array(0));
  const body = readExact(sys.field.RESULT_DATA, <u32>n);
  let resultHeaders = new Headers();
  const raw = readField(sys.field.RESULT_HEADERS);
  if (raw !== null) {
    const parsed = Headers.parse(raw);
    if (parsed !== null) resultHeaders = parsed;
  }
  return new Response(Status.OK, resultHeaders, body);
}

// ---------------------------------------------------------------------------
// Logging, configuration, subscriptions, failure text
// ---------------------------------------------------------------------------

/** Log levels, ABI.md section 5 (go-hclog's values). */
export enum Level {
  TRACE = 1,
  DEBUG = 2,
  INFO = 3,
  WARN = 4,
  ERROR = 5,
}

/** Writing to the plugin's logger on the host. Messages are cut at 64 KiB. */
export namespace log {
  /** Logs `msg` at `level`. */
  export function write(level: Level, msg: string): void {
    const b = String.UTF8.encode(msg);
    sys.log(level, changetype<usize>(b), <u32>b.byteLength);
  }
  /** Logs `msg` at trace level. */
  export function trace(msg: string): void { write(Level.TRACE, msg); }
  /** Logs `msg` at debug level. */
  export function debug(msg: string): void { write(Level.DEBUG, msg); }
  /** Logs `msg` at info level. */
  export function info(msg: string): void { write(Level.INFO, msg); }
  /** Logs `msg` at warn level. */
  export function warn(msg: string): void { write(Level.WARN, msg); }
  /** Logs `msg` at error level. */
  export function error(msg: string): void { write(Level.ERROR, msg); }
}

/** Returns the operator's config value `key` as bytes, or null if it is not set. */
export function configBytes(key: string): Uint8Array | null {
  const k = String.UTF8.encode(key);
  const kp = changetype<usize>(k), kl = <u32>k.byteLength;
  const n = sys.config(kp, kl, 0, 0);
  if (n < 0) return null;
  const buf = new Uint8Array(n);
  sys.config(kp, kl, buf.dataStart, <u32>n);
  return buf;
}

/** Returns the operator's config value `key`, or null if it is not set. */
export function config(key: string): string | null {
  const b = configBytes(key);
  return b === null ? null : decode(b);
}

/**
 * Declares that the plugin handles `subject` (NATS wildcards `*` and `>`
 * allowed) in queue group `queue` ("": the default group, the plugin's name).
 * Only allowed during init. Returns OK, INVALID_SUBJECT or WRONG_PHASE.
 */
export function subscribe(subject: string, queue: string = ""): Status {
  const s = utf8(subject);
  const q = utf8(queue);
  return statusOf(sys.subscribe(s.dataStart, <u32>s.byteLength, q.dataStart, <u32>q.byteLength));
}

/**
 * Adds header `name: value` to the response the caller gets, whoever produces
 * it: the handler's reply, a policy's answer, or a rejection (a policy's
 * Retry-After, say). Allowed in handlers and policies. Returns OK, or
 * INVALID_ARGUMENT (an empty name, ":" in it, CR or LF in either).
 */
export function responseHeader(name: string, value: string): Status {
  const n = utf8(name);
  const v = utf8(value);
  return statusOf(sys.response_header(n.dataStart, <u32>n.byteLength, v.dataStart, <u32>v.byteLength));
}

// ---------------------------------------------------------------------------
// Key-value store
// ---------------------------------------------------------------------------
//
// Each plugin has its own namespace in NATS JetStream KV on the host's bus:
// every instance and every host sharing the bus sees the same values. Keys are
// 1 to 256 bytes of A-Z a-z 0-9 - _ = . / (else INVALID_ARGUMENT); a bus
// without JetStream gives BUS. ttlMs 0 means the value never expires. Every
// call is a round trip to the bus.

/** The ABI's ttl_ms is kept below 2^31, as the other SDKs keep it. */
function ttl(ms: u32): u32 {
  return ms > <u32>i32.MAX_VALUE ? <u32>i32.MAX_VALUE : ms;
}

/** The outcome of kvGet: a status and, when it is OK, the value. */
export class KVValue {
  constructor(
    /** OK, NOT_FOUND (no such key), INVALID_ARGUMENT or BUS. */
    public status: Status,
    /** The value (empty unless status is OK). */
    public value: Uint8Array,
  ) {}

  /** Whether the key was found. */
  get ok(): bool {
    return this.status == Status.OK;
  }

  /** The value decoded as UTF-8. */
  valueString(): string {
    return decode(this.value);
  }
}

/** The outcome of kvIncr: a status and, when it is OK, the new value. */
export class KVCounter {
  constructor(
    /** OK, INVALID_ARGUMENT (bad key, or a value that is not an integer), TIMEOUT or BUS. */
    public status: Status,
    /** The value after the increment (0 unless status is OK). */
    public value: i64,
  ) {}

  /** Whether the increment happened. */
  get ok(): bool {
    return this.status == Status.OK;
  }
}

/** Reads `key`. Check `ok` (or `status`: NOT_FOUND for a missing key) before using the value. */
export function kvGet(key: string): KVValue {
  const k = utf8(key);
  let n = sys.kv_get(k.dataStart, <u32>k.byteLength, 0, 0);
  // Another instance may change the value between the calls: read again
  // until the buffer held all of it, so the value is never torn.
  while (n >= 0) {
    const buf = new Uint8Array(n);
    const m = sys.kv_get(k.dataStart, <u32>k.byteLength, buf.dataStart, <u32>n);
    if (m >= 0 && m <= n) return new KVValue(Status.OK, m == n ? buf : buf.subarray(0, m));
    n = m;
  }
  return new KVValue(statusOf(n), new Uint8Array(0));
}

/** Stores `value` under `key`; it expires after `ttlMs` (0: never). Returns OK, INVALID_ARGUMENT, TOO_LARGE (over 1 MiB) or BUS. */
export function kvSet(key: string, value: Uint8Array, ttlMs: u32 = 0): Status {
  const k = utf8(key);
  return statusOf(sys.kv_set(k.dataStart, <u32>k.byteLength, value.dataStart, <u32>value.byteLength, ttl(ttlMs)));
}

/**
 * Atomically adds `delta` to the decimal integer under `key` (a missing key
 * counts as 0), across all instances and hosts, and returns the new value. A
 * key this call creates expires after `ttlMs` (0: never); later increments
 * keep that expiry.
 */
export function kvIncr(key: string, delta: i64 = 1, ttlMs: u32 = 0): KVCounter {
  const k = utf8(key);
  const out = memory.data(8, 8);
  const r = sys.kv_incr(k.dataStart, <u32>k.byteLength, delta, ttl(ttlMs), out);
  if (r < 0) return new KVCounter(statusOf(r), 0);
  return new KVCounter(Status.OK, load<i64>(out));
}

/**
 * Compare-and-set: stores `value` under `key` only if its current value is
 * exactly `expected` (empty: only if the key does not exist), atomically
 * across instances and hosts; it expires after `ttlMs` (0: never). Returns OK,
 * CONFLICT when the value was another one (read it again, recompute, retry),
 * INVALID_ARGUMENT, TOO_LARGE or BUS.
 */
export function kvCompareAndSet(key: string, expected: Uint8Array, value: Uint8Array, ttlMs: u32 = 0): Status {
  const k = utf8(key);
  return statusOf(sys.kv_cas(
    k.dataStart, <u32>k.byteLength,
    expected.dataStart, <u32>expected.byteLength,
    value.dataStart, <u32>value.byteLength,
    ttl(ttlMs),
  ));
}

/** Removes `key`; removing a missing key is not an error. Returns OK, INVALID_ARGUMENT or BUS. */
export function kvDelete(key: string): Status {
  const k = utf8(key);
  return statusOf(sys.kv_delete(k.dataStart, <u32>k.byteLength));
}

// ---------------------------------------------------------------------------
// Policies (ABI.md section 5a)
// ---------------------------------------------------------------------------

/**
 * Returns a rejection for a policy to return: an HTTP-like `status` (401,
 * 403, 429...; 0 or less becomes 403) and a `reason` the caller sees, which
 * must not leak secrets.
 */
export function reject(status: i32, reason: string): TrellisError {
  return new TrellisError(status > 0 ? status : 403, reason);
}

/**
 * A message a policy decides on: a NATS message, or an HTTP request that came
 * through the host's ingress (then `isHttp()` is true and `method()`,
 * `path()`, `query()` and `remoteAddr()` are set). As a Msg, its headers and
 * payload reflect the policy's own setHeader and setData.
 */
export class Inbound extends Msg {
  private _http: string[] | null = null;

  /** The message the host announced with these field lengths (the arguments of trellis_policy). */
  constructor(subjectLen: u32, replyLen: u32, headersLen: u32, dataLen: u32) {
    super(subjectLen, replyLen, headersLen, dataLen);
  }

  /** HTTP field i (method, path, query, remote address), read with the others on first use. */
  private httpField(i: i32): string {
    let h = this._http;
    if (h === null) {
      const method = readText(sys.field.METHOD);
      h = [method, "", "", ""];
      if (method.length > 0) { // a NATS message has none of them: one host call
        h[1] = readText(sys.field.PATH);
        h[2] = readText(sys.field.QUERY);
        h[3] = readText(sys.field.REMOTE_ADDR);
      }
      this._http = h;
    }
    return h[i];
  }

  /** The HTTP method, or "" for a NATS message. */
  method(): string {
    return this.httpField(0);
  }

  /** The URL path of an HTTP request (/orders/42), or "". */
  path(): string {
    return this.httpField(1);
  }

  /** The raw query string of an HTTP request, without "?", or "". */
  query(): string {
    return this.httpField(2);
  }

  /** The HTTP client's address, host:port, or "". */
  remoteAddr(): string {
    return this.httpField(3);
  }

  /** Whether the message is an HTTP request from the ingress. */
  isHttp(): bool {
    return this.method().length > 0;
  }

  /**
   * Sets header `name` of the message that goes on to the handler, replacing
   * its values; an empty value removes it. Returns OK, INVALID_ARGUMENT (an
   * empty name, CR or LF) or WRONG_PHASE.
   */
  setHeader(name: string, value: string): Status {
    const n = utf8(name);
    const v = utf8(value);
    const s = statusOf(sys.set_header(n.dataStart, <u32>n.byteLength, v.dataStart, <u32>v.byteLength));
    if (s == Status.OK) {
      // The host re-encoded the headers: read them afresh when asked.
      const len = sys.read(sys.field.HEADERS, 0, 0, 0);
      this._headersLen = len < 0 ? 0 : <u32>len;
      this._headers = null;
    }
    return s;
  }

  /** Replaces the payload the handler gets. Returns OK or WRONG_PHASE. */
  setData(data: Uint8Array): Status {
    const s = statusOf(sys.set_data(data.dataStart, <u32>data.byteLength));
    if (s == Status.OK) {
      this._data = data;
      this._dataLen = <u32>data.byteLength;
    }
    return s;
  }

  /**
   * Sends the message to `subject` instead of this route's handler: as a
   * request if the caller waits for an answer (the operator must have granted
   * the subject for requests), else as an event (granted for publishing).
   * Returns OK, INVALID_SUBJECT, DENIED or WRONG_PHASE.
   */
  route(subject: string): Status {
    const b = utf8(subject);
    return statusOf(sys.set_subject(b.dataStart, <u32>b.byteLength));
  }

  /**
   * Answers the message from the policy, so it goes no further, and returns
   * what the policy returns: null once the reply is sent, else a 500
   * "reply: trellis: <status>". For `return req.answer(utf8("cached"));`.
   */
  answer(data: Uint8Array): TrellisError | null {
    return this.answerWithHeaders(new Headers(), data);
  }

  /** Answers with headers and data; as `answer`. */
  answerWithHeaders(headers: Headers, data: Uint8Array): TrellisError | null {
    const s = replyWithHeaders(headers, data);
    return s == Status.OK ? null : fail(500, "reply: trellis: " + statusName(s));
  }
}

/** The response a policy sees in its response phase, on its way back to the caller. */
export class PolicyResponse {
  private _headers: Headers | null = null;
  private _data: Uint8Array | null = null;

  /** The response the host announced (the arguments of trellis_policy_response). */
  constructor(
    /** 0 for a success, else the error status. */
    public readonly status: i32,
    private headersLen: u32,
    private dataLen: u32,
  ) {}

  /** Whether the response is a success. */
  get ok(): bool {
    return this.status == 0;
  }

  /** The response's headers. */
  headers(): Headers {
    const cached = this._headers;
    if (cached !== null) return cached;
    let h = Headers.parse(readExact(sys.field.RESULT_HEADERS, this.headersLen));
    if (h === null) h = new Headers();
    this._headers = h;
    return h;
  }

  /** The first value of the response's header `name`, as `Headers.get`. */
  header(name: string): string | null {
    return this.headers().get(name);
  }

  /** The response's payload. */
  data(): Uint8Array {
    let d = this._data;
    if (d === null) {
      d = readExact(sys.field.RESULT_DATA, this.dataLen);
      this._data = d;
    }
    return d;
  }

  /** The payload decoded as UTF-8. */
  dataString(): string {
    return decode(this.data());
  }

  /** The first value of header `name` of the request this response answers, as the policies before left it, or null. */
  requestHeader(name: string): string | null {
    return hostHeader(name);
  }

  /** Replaces the response's payload. Returns OK or WRONG_PHASE. */
  setData(data: Uint8Array): Status {
    const s = statusOf(sys.set_data(data.dataStart, <u32>data.byteLength));
    if (s == Status.OK) {
      this._data = data;
      this.dataLen = <u32>data.byteLength;
    }
    return s;
  }
}

/**
 * Sets the description of the failure the handler is about to return (the
 * Nats-Service-Error header). Returning a TrellisError from a handler does
 * this for you; the last call wins.
 */
export function setError(msg: string): void {
  const b = String.UTF8.encode(msg);
  sys.error(changetype<usize>(b), <u32>b.byteLength);
}

// ---------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------

/** A plugin's per-instance initialisation: subscribe, read config. null is success. */
export type InitFn = () => TrellisError | null;

/** A plugin's message handler. null is success. */
export type HandleFn = (msg: Msg) => TrellisError | null;

/** A policy: null lets the message go on, a TrellisError (`reject`) refuses it. */
export type PolicyFn = (req: Inbound) => TrellisError | null;

/** A policy's response phase: null lets the response go back, a TrellisError turns it into that error. */
export type PolicyResponseFn = (resp: PolicyResponse) => TrellisError | null;

let registeredInit: InitFn | null = null;
let registeredHandle: HandleFn | null = null;
let registeredPolicy: PolicyFn | null = null;
let registeredResponse: PolicyResponseFn | null = null;

/**
 * Registers the plugin's handler and, optionally, its init function. Call it
 * once at the top level of the entry file, which must also re-export
 * `trellis_abi_v1`, `trellis_init` and `trellis_handle` from this module.
 */
export function plugin(handle: HandleFn, init: InitFn | null = null): void {
  registeredHandle = handle;
  registeredInit = init;
}

/**
 * Registers the plugin's policy and, optionally, its response phase. Call it
 * once at the top level of the entry file, which must also re-export
 * `trellis_abi_v1` and `trellis_policy` from this module, and
 * `trellis_policy_response` when there is a response function (without one,
 * leave it out: the host then does not hold responses for this policy). A
 * module may be a handler and a policy at once: call `plugin` too.
 */
export function policy(fn: PolicyFn, response: PolicyResponseFn | null = null): void {
  registeredPolicy = fn;
  registeredResponse = response;
}

function codeOf(e: TrellisError): i32 {
  return e.code > 0 ? e.code : 500;
}

/** The ABI version marker (ABI.md section 2). Never called. */
export function trellis_abi_v1(): void {}

/** Runs the registered init function once per instance; a failure is logged and refuses the instance. */
export function trellis_init(): i32 {
  const init = registeredInit;
  if (init === null) return 0;
  const e = init();
  if (e === null) return 0;
  log.error("init failed: " + e.message);
  return codeOf(e);
}

/** Runs the registered handler for one message. */
export function trellis_handle(subjectLen: u32, replyLen: u32, headersLen: u32, dataLen: u32): i32 {
  const handle = registeredHandle;
  if (handle === null) {
    setError("no handler: call plugin(handle) in the entry file");
    return 500;
  }
  const e = handle(new Msg(subjectLen, replyLen, headersLen, dataLen));
  if (e === null) return 0;
  setError(e.message);
  return codeOf(e);
}

/** Runs the registered policy for one message. */
export function trellis_policy(subjectLen: u32, replyLen: u32, headersLen: u32, dataLen: u32): i32 {
  const fn = registeredPolicy;
  if (fn === null) {
    setError("no policy: call policy(fn) in the entry file");
    return 500;
  }
  const e = fn(new Inbound(subjectLen, replyLen, headersLen, dataLen));
  if (e === null) return 0;
  setError(e.message);
  return codeOf(e);
}

/** Runs the registered response phase for one response; without one, lets it go back. */
export function trellis_policy_response(status: i32, headersLen: u32, dataLen: u32): i32 {
  const fn = registeredResponse;
  if (fn === null) return 0;
  const e = fn(new PolicyResponse(status, headersLen, dataLen));
  if (e === null) return 0;
  setError(e.message);
  return codeOf(e);
}
