//! Write [Trellis](https://github.com/trellis-mesh/trellis) plugins in Rust.
//!
//! A Trellis plugin is a WebAssembly module that handles messages from a NATS
//! bus. This crate is a thin, safe layer over plugin ABI v1 (`abi/ABI.md` in
//! the Trellis repository) with no dependencies beyond `std`.
//!
//! ```no_run
//! use trellis::{Error, Msg};
//!
//! fn init() -> Result<(), Error> {
//!     trellis::subscribe("echo")?;
//!     Ok(())
//! }
//!
//! fn handle(msg: &Msg) -> Result<(), Error> {
//!     if msg.has_reply() {
//!         trellis::reply(msg.data())?;
//!     }
//!     Ok(())
//! }
//!
//! trellis::plugin! { init: init, handle: handle }
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-wasi`:
//! `cargo build --release --target wasm32-wasi`.
//!
//! Everything here acts on the message being handled or on the plugin's
//! instance; the host never keeps a pointer into the plugin's memory, so every
//! argument only needs to live for the call. Functions that call the host
//! return `Result<_, Status>`; a handler returns `Result<(), Error>`, and an
//! [`Error`] carries the failure code and text the requester sees.
//!
//! Beyond messages: [`kv`] is the plugin's key-value store, shared by every
//! instance and host; [`response_header`] adds a header to the answer; and
//! [`policy`] writes traffic policies, which run before handlers and may
//! reject, answer, reroute or change a message, and change its response.

#![warn(missing_docs)]

use std::cell::UnsafeCell;
use std::fmt;
use std::time::Duration;

mod headers;
pub mod kv;
pub mod policy;
pub mod sys;

pub use headers::Headers;

/// The ABI version this crate implements; the marker export
/// [`plugin!`] defines is `trellis_abi_v1`.
pub const ABI_VERSION: u32 = 1;

/// Header of an error reply: its status, an HTTP-like code (ABI.md, "Headers").
pub const HEADER_ERROR_CODE: &str = "Nats-Service-Error-Code";
/// Header of an error reply: its text.
pub const HEADER_ERROR: &str = "Nats-Service-Error";
/// Header of a reply to a request from the HTTP ingress: the HTTP status to
/// answer with (200–599).
pub const HEADER_HTTP_STATUS: &str = "Trellis-Http-Status";
/// Followed by a parameter's name, the header that carries an HTTP route's
/// path parameter (`/orders/{id}`: `Trellis-Param-id`).
pub const HEADER_PARAM_PREFIX: &str = "Trellis-Param-";

// ---------------------------------------------------------------------------
// Status and Error
// ---------------------------------------------------------------------------

/// Why a host function failed (ABI.md section 6). Success is `Ok(..)`, so
/// there is no `Ok` variant here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 1: no such header or config key.
    NotFound,
    /// 2: a bad field or level, or malformed headers.
    InvalidArgument,
    /// 3: an empty subject, whitespace in it, or a wildcard where none is allowed.
    InvalidSubject,
    /// 4: the operator has not granted this subject.
    Denied,
    /// 5: the message has no reply subject.
    NoReply,
    /// 6: `reply` was already called for this message.
    AlreadyReplied,
    /// 7: the request timed out, or the call deadline passed.
    Timeout,
    /// 8: nobody is subscribed to the request subject.
    NoResponders,
    /// 9: the bus failed or refused the message.
    Bus,
    /// 10: not allowed now (`subscribe` outside init, `set_*` outside a policy).
    WrongPhase,
    /// 11: a value exceeds a host limit.
    TooLarge,
    /// 12: [`kv::compare_and_set`] found another value than the one expected.
    Conflict,
    /// A code this version of the SDK does not know.
    Unknown(i32),
}

impl Status {
    /// Returns the status for a positive code from ABI.md section 6.
    pub fn from_code(code: i32) -> Status {
        match code {
            1 => Status::NotFound,
            2 => Status::InvalidArgument,
            3 => Status::InvalidSubject,
            4 => Status::Denied,
            5 => Status::NoReply,
            6 => Status::AlreadyReplied,
            7 => Status::Timeout,
            8 => Status::NoResponders,
            9 => Status::Bus,
            10 => Status::WrongPhase,
            11 => Status::TooLarge,
            12 => Status::Conflict,
            other => Status::Unknown(other),
        }
    }

    /// Returns the positive code of ABI.md section 6.
    pub fn code(self) -> i32 {
        match self {
            Status::NotFound => 1,
            Status::InvalidArgument => 2,
            Status::InvalidSubject => 3,
            Status::Denied => 4,
            Status::NoReply => 5,
            Status::AlreadyReplied => 6,
            Status::Timeout => 7,
            Status::NoResponders => 8,
            Status::Bus => 9,
            Status::WrongPhase => 10,
            Status::TooLarge => 11,
            Status::Conflict => 12,
            Status::Unknown(code) => code,
        }
    }

    /// Returns the status's name as ABI.md's Go constants spell it.
    pub fn name(self) -> &'static str {
        match self {
            Status::NotFound => "not found",
            Status::InvalidArgument => "invalid argument",
            Status::InvalidSubject => "invalid subject",
            Status::Denied => "permission denied",
            Status::NoReply => "no reply subject",
            Status::AlreadyReplied => "already replied",
            Status::Timeout => "timeout",
            Status::NoResponders => "no responders",
            Status::Bus => "bus error",
            Status::WrongPhase => "not allowed in this phase",
            Status::TooLarge => "too large",
            Status::Conflict => "conflict",
            Status::Unknown(_) => "unknown status",
        }
    }

    /// Turns a host function's result into `Ok(value)` or `Err(status)`.
    pub fn check(result: i32) -> Result<u32, Status> {
        if result < 0 {
            Err(Status::from_code(result.wrapping_neg()))
        } else {
            Ok(result as u32)
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trellis: {}", self.name())
    }
}

impl std::error::Error for Status {}

/// A handler's failure: an HTTP-like code (400 bad input, 404, 500...) and a
/// description.
///
/// When a handler returns `Err(error)`, [`plugin!`] passes the description to
/// the host's `error` function and returns the code, so a requester that got
/// no reply is answered with the headers `Nats-Service-Error-Code: <code>` and
/// `Nats-Service-Error: <description>`. A code of 0 or less would mean success
/// or be ambiguous, so it is sent as 500.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
}

impl Error {
    /// Returns an error with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// Returns a 400 error: the message was not acceptable.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(400, message)
    }

    /// Returns a 404 error: what the message asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(404, message)
    }

    /// Returns a 500 error: the plugin failed.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(500, message)
    }

    /// Returns the code as it is sent: the given code, or 500 if it was not
    /// positive.
    pub fn code(&self) -> i32 {
        if self.code > 0 {
            self.code
        } else {
            500
        }
    }

    /// Returns the description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message)
    }
}

impl std::error::Error for Error {}

/// A failed host call inside a handler becomes a 504 for [`Status::Timeout`],
/// a 503 for [`Status::NoResponders`], a 409 for [`Status::Conflict`] and a
/// 500 otherwise, described by the status's name. This is what makes `?`
/// work on SDK calls in a handler.
impl From<Status> for Error {
    fn from(s: Status) -> Error {
        let code = match s {
            Status::Timeout => 504,
            Status::NoResponders => 503,
            Status::Conflict => 409,
            _ => 500,
        };
        Error::new(code, s.name())
    }
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// A field of the message being handled, or of the response to the last
/// successful [`request`] (ABI.md section 4). In a policy's response phase,
/// the result fields hold the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The subject the message arrived on.
    Subject,
    /// Its reply subject, empty if none.
    Reply,
    /// Its headers, encoded.
    Headers,
    /// Its payload.
    Data,
    /// Headers of the last successful request's response, encoded.
    ResultHeaders,
    /// Payload of that response.
    ResultData,
    /// HTTP method of a request from the HTTP ingress; empty for NATS messages.
    Method,
    /// Its URL path.
    Path,
    /// Its raw query string, without `?`.
    Query,
    /// The client's address, `host:port`.
    RemoteAddr,
}

impl Field {
    fn number(self) -> i32 {
        match self {
            Field::Subject => sys::field::SUBJECT,
            Field::Reply => sys::field::REPLY,
            Field::Headers => sys::field::HEADERS,
            Field::Data => sys::field::DATA,
            Field::ResultHeaders => sys::field::RESULT_HEADERS,
            Field::ResultData => sys::field::RESULT_DATA,
            Field::Method => sys::field::METHOD,
            Field::Path => sys::field::PATH,
            Field::Query => sys::field::QUERY,
            Field::RemoteAddr => sys::field::REMOTE_ADDR,
        }
    }
}

/// Copies bytes of `field` starting at `offset` into `buf` and returns the
/// field's total length; copies `min(buf.len(), total - offset)` bytes. Use
/// it to read a large field in chunks, or to read into a buffer you reuse.
pub fn read_into(field: Field, offset: usize, buf: &mut [u8]) -> Result<usize, Status> {
    let r = unsafe {
        sys::read(
            field.number(),
            offset as u32,
            buf.as_mut_ptr(),
            buf.len() as u32,
        )
    };
    Status::check(r).map(|n| n as usize)
}

/// Returns all of `field` in a new vector: one allocation and one copy.
pub fn read_field(field: Field) -> Result<Vec<u8>, Status> {
    let total = Status::check(unsafe { sys::read(field.number(), 0, std::ptr::null_mut(), 0) })?;
    Ok(read_exact(field.number(), total as usize))
}

/// Reads `field`, whose length is known to be `len`, without zeroing the
/// buffer first (this is the hot path of every handler that reads its data).
fn read_exact(field: i32, len: usize) -> Vec<u8> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut filled = 0usize;
    while filled < len {
        let want = len - filled;
        // The host writes at most `want` bytes at the pointer, all inside the
        // vector's capacity, and returns the field's total length.
        let total = unsafe {
            sys::read(
                field,
                filled as u32,
                buf.as_mut_ptr().add(filled),
                want as u32,
            )
        };
        if total < 0 || total as usize <= filled {
            break;
        }
        filled += want.min(total as usize - filled);
    }
    // Safety: the first `filled` bytes were written by the host.
    unsafe { buf.set_len(filled) };
    buf
}

/// Calls a host function of the form `(key, key_len, buf, buf_len) -> len`
/// twice, through `f(buf, buf_len)`: once for the length, once to copy.
fn read_keyed(f: impl Fn(*mut u8, u32) -> i32) -> Result<Vec<u8>, Status> {
    let len = Status::check(f(std::ptr::null_mut(), 0))? as usize;
    let mut buf = vec![0u8; len];
    let n = Status::check(f(buf.as_mut_ptr(), len as u32))? as usize;
    buf.truncate(n);
    Ok(buf)
}

fn read_header(name: &str) -> Result<Vec<u8>, Status> {
    read_keyed(|buf, len| unsafe { sys::header(name.as_ptr(), name.len() as u32, buf, len) })
}

fn read_config(key: &str) -> Result<Vec<u8>, Status> {
    read_keyed(|buf, len| unsafe { sys::config(key.as_ptr(), key.len() as u32, buf, len) })
}

fn into_string(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A value computed on first use and then kept: `std::cell::OnceCell` is newer
/// than the compilers this crate supports.
struct Lazy<T> {
    cell: UnsafeCell<Option<T>>,
}

impl<T> Lazy<T> {
    fn new() -> Lazy<T> {
        Lazy {
            cell: UnsafeCell::new(None),
        }
    }

    fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        // Safety: the cell is written only while it is None, when no reference
        // into it exists, and never again; `Lazy` is not Sync, and `f` (always
        // a host read in this crate) does not touch the cell.
        unsafe {
            if let Some(v) = &*self.cell.get() {
                return v;
            }
            let v = f();
            *self.cell.get() = Some(v);
            match &*self.cell.get() {
                Some(v) => v,
                None => std::hint::unreachable_unchecked(),
            }
        }
    }

    /// Replaces the value; `&mut self` guarantees no reference into it exists.
    fn set(&mut self, v: T) {
        *self.cell.get_mut() = Some(v);
    }

    /// Forgets the value, so the next `get_or_init` computes it again.
    fn reset(&mut self) {
        *self.cell.get_mut() = None;
    }
}

/// The message being handled.
///
/// Fields are read from the host the first time they are asked for and then
/// kept, so a handler pays only for what it looks at.
pub struct Msg {
    lens: [u32; 4],
    subject: Lazy<String>,
    reply: Lazy<String>,
    headers: Lazy<Headers>,
    data: Lazy<Vec<u8>>,
}

impl Msg {
    /// Returns the message the host announced with these field lengths (the
    /// arguments of `trellis_handle`). [`plugin!`] calls it for you.
    pub fn from_lengths(subject_len: u32, reply_len: u32, headers_len: u32, data_len: u32) -> Msg {
        Msg {
            lens: [subject_len, reply_len, headers_len, data_len],
            subject: Lazy::new(),
            reply: Lazy::new(),
            headers: Lazy::new(),
            data: Lazy::new(),
        }
    }

    /// Returns the subject the message arrived on.
    pub fn subject(&self) -> &str {
        self.subject
            .get_or_init(|| into_string(read_exact(sys::field::SUBJECT, self.lens[0] as usize)))
    }

    /// Returns the reply subject, or `""` if the message expects no reply.
    pub fn reply(&self) -> &str {
        self.reply
            .get_or_init(|| into_string(read_exact(sys::field::REPLY, self.lens[1] as usize)))
    }

    /// Reports whether the message expects a reply (costs no host call).
    pub fn has_reply(&self) -> bool {
        self.lens[1] != 0
    }

    /// Returns all the headers. Headers the host sends are well formed; if
    /// they were not, this would return the empty set.
    pub fn headers(&self) -> &Headers {
        self.headers.get_or_init(|| {
            let raw = read_exact(sys::field::HEADERS, self.lens[2] as usize);
            Headers::parse(&raw).unwrap_or_default()
        })
    }

    /// Returns the first value of header `name` (exact match first, then
    /// case-insensitive). It asks the host for that one value, without
    /// decoding all the headers.
    pub fn header(&self, name: &str) -> Option<String> {
        read_header(name).ok().map(into_string)
    }

    /// Returns the payload.
    pub fn data(&self) -> &[u8] {
        self.data
            .get_or_init(|| read_exact(sys::field::DATA, self.lens[3] as usize))
    }

    /// Returns the payload's length (costs no host call).
    pub fn data_len(&self) -> usize {
        self.lens[3] as usize
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Msg")
            .field("subject_len", &self.lens[0])
            .field("reply_len", &self.lens[1])
            .field("headers_len", &self.lens[2])
            .field("data_len", &self.lens[3])
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Answering and sending
// ---------------------------------------------------------------------------

/// Replies to the message being handled with `data` and no headers. At most
/// one reply per message.
///
/// Errors: [`Status::NoReply`] (the message expects none),
/// [`Status::AlreadyReplied`], [`Status::Bus`].
pub fn reply(data: &[u8]) -> Result<(), Status> {
    let r = unsafe { sys::reply(std::ptr::null(), 0, data.as_ptr(), data.len() as u32) };
    Status::check(r).map(|_| ())
}

/// Replies with `headers` and `data`. Errors as [`reply`], and
/// [`Status::InvalidArgument`] for malformed headers.
pub fn reply_with_headers(headers: &Headers, data: &[u8]) -> Result<(), Status> {
    let h = headers.encode();
    let r = unsafe { sys::reply(h.as_ptr(), h.len() as u32, data.as_ptr(), data.len() as u32) };
    Status::check(r).map(|_| ())
}

/// Publishes `data` on `subject`, which the operator must have granted.
///
/// Errors: [`Status::InvalidSubject`], [`Status::Denied`], [`Status::Bus`].
pub fn publish(subject: &str, data: &[u8]) -> Result<(), Status> {
    publish_with_headers(subject, &Headers::new(), data)
}

/// Publishes `data` with `headers` on `subject`. Errors as [`publish`], and
/// [`Status::InvalidArgument`] for malformed headers.
pub fn publish_with_headers(subject: &str, headers: &Headers, data: &[u8]) -> Result<(), Status> {
    let h = headers.encode();
    let r = unsafe {
        sys::publish(
            subject.as_ptr(),
            subject.len() as u32,
            h.as_ptr(),
            h.len() as u32,
            data.as_ptr(),
            data.len() as u32,
        )
    };
    Status::check(r).map(|_| ())
}

/// The response to a [`request`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    headers: Headers,
    data: Vec<u8>,
}

impl Response {
    /// Returns the response's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Returns the first value of header `name`, as [`Headers::get`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Returns the response's payload.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Returns the payload, consuming the response.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Returns the code and description of a NATS service error response
    /// (headers `Nats-Service-Error-Code` and `Nats-Service-Error`), which the
    /// host reports as a successful request. `None` for a normal response.
    pub fn service_error(&self) -> Option<(i32, &str)> {
        let code = self.headers.get(HEADER_ERROR_CODE)?;
        let code = code.trim().parse().unwrap_or(500);
        Some((code, self.headers.get(HEADER_ERROR).unwrap_or("")))
    }
}

/// Sends `data` as a request on `subject` and waits for the first response,
/// at most `timeout` and never past the current call's deadline
/// (`Duration::ZERO`: until the deadline). The operator must have granted
/// `subject` for requests.
///
/// A response carrying `Nats-Service-Error-Code` is still `Ok`: see
/// [`Response::service_error`].
///
/// Errors: [`Status::InvalidSubject`], [`Status::Denied`],
/// [`Status::Timeout`], [`Status::NoResponders`], [`Status::Bus`].
pub fn request(subject: &str, data: &[u8], timeout: Duration) -> Result<Response, Status> {
    request_with_headers(subject, &Headers::new(), data, timeout)
}

/// Sends a request with headers; as [`request`], and
/// [`Status::InvalidArgument`] for malformed headers.
pub fn request_with_headers(
    subject: &str,
    headers: &Headers,
    data: &[u8],
    timeout: Duration,
) -> Result<Response, Status> {
    let h = headers.encode();
    let r = unsafe {
        sys::request(
            subject.as_ptr(),
            subject.len() as u32,
            h.as_ptr(),
            h.len() as u32,
            data.as_ptr(),
            data.len() as u32,
            timeout_ms(timeout),
        )
    };
    let len = Status::check(r)? as usize;
    let data = read_exact(sys::field::RESULT_DATA, len);
    let raw = read_field(Field::ResultHeaders)?;
    Ok(Response {
        headers: Headers::parse(&raw).unwrap_or_default(),
        data,
    })
}

/// Converts a timeout to the ABI's milliseconds: rounded up, so that a short
/// non-zero timeout does not become 0 ("until the deadline"), and kept below
/// 2^31 so that it stays positive as an i32.
fn timeout_ms(d: Duration) -> u32 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    ms.min(i32::MAX as u128) as u32
}

// ---------------------------------------------------------------------------
// Logging, configuration, subscriptions, failure text
// ---------------------------------------------------------------------------

/// Writing to the plugin's logger on the host (a go-hclog logger named after
/// the plugin). Messages are cut at 64 KiB. Use `&format!(...)` for values.
pub mod log {
    use crate::sys;

    /// A log level (ABI.md section 5; go-hclog's values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Level {
        /// 1
        Trace = 1,
        /// 2
        Debug = 2,
        /// 3
        Info = 3,
        /// 4
        Warn = 4,
        /// 5
        Error = 5,
    }

    /// Logs `msg` at `level`. Logging cannot fail with a valid level, so
    /// nothing is returned.
    pub fn log(level: Level, msg: &str) {
        unsafe { sys::log(level as i32, msg.as_ptr(), msg.len() as u32) };
    }

    /// Logs `msg` at trace level.
    pub fn trace(msg: &str) {
        log(Level::Trace, msg)
    }

    /// Logs `msg` at debug level.
    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }

    /// Logs `msg` at info level.
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }

    /// Logs `msg` at warn level.
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }

    /// Logs `msg` at error level.
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }
}

/// Returns the operator's configuration value `key` for this plugin, or
/// `None` if it is not set. Bytes that are not UTF-8 become U+FFFD.
pub fn config(key: &str) -> Option<String> {
    read_config(key).ok().map(into_string)
}

/// Returns the configuration value `key` as bytes, or `None`.
pub fn config_bytes(key: &str) -> Option<Vec<u8>> {
    read_config(key).ok()
}

/// Declares that the plugin handles `subject` (NATS wildcards `*` and `>`
/// allowed), in the default queue group. Only allowed during init.
///
/// Errors: [`Status::InvalidSubject`], [`Status::WrongPhase`].
pub fn subscribe(subject: &str) -> Result<(), Status> {
    subscribe_queue(subject, "")
}

/// Declares a subject with queue group `queue` (`""`: the default group, the
/// plugin's name). Errors as [`subscribe`].
pub fn subscribe_queue(subject: &str, queue: &str) -> Result<(), Status> {
    call_with_strs(subject, queue, |s, sl, q, ql| unsafe {
        sys::subscribe(s, sl, q, ql)
    })
}

/// Calls a host function of the form `(a, a_len, b, b_len) -> 0 | -status`.
fn call_with_strs(
    a: &str,
    b: &str,
    f: impl FnOnce(*const u8, u32, *const u8, u32) -> i32,
) -> Result<(), Status> {
    Status::check(f(a.as_ptr(), a.len() as u32, b.as_ptr(), b.len() as u32)).map(|_| ())
}

/// Adds header `name: value` to the response the caller gets, whoever
/// produces it: the handler's reply, a policy's answer, or a rejection (a
/// policy's `Retry-After`, say). Allowed in handlers and policies.
///
/// Errors: [`Status::InvalidArgument`] (an empty name, `:` in it, or CR or LF
/// in either).
pub fn response_header(name: &str, value: &str) -> Result<(), Status> {
    call_with_strs(name, value, |n, nl, v, vl| unsafe {
        sys::response_header(n, nl, v, vl)
    })
}

/// Sets the description of the failure the handler is about to return (the
/// `Nats-Service-Error` header). Returning `Err(Error)` from a handler does
/// this for you; the last call wins.
pub fn set_error(msg: &str) {
    unsafe { sys::error(msg.as_ptr(), msg.len() as u32) };
}

// ---------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------

/// Defines the exports of a plugin (ABI.md section 3). Use it once, in the
/// crate root of a `cdylib`, with the functions the plugin has, in any order:
///
/// ```ignore
/// trellis::plugin! { init: init, handle: handle }
/// trellis::plugin! { handle: handle }   // no init: subjects come from config
/// trellis::plugin! { policy: policy }   // a policy only
/// trellis::plugin! { policy: policy, policy_response: on_response }
/// trellis::plugin! { init: init, handle: handle, policy: policy } // both
/// ```
///
/// It always defines the marker `trellis_abi_v1`, and one export per key:
///
/// - `init` → `trellis_init`: a `fn() -> Result<(), E>` run once per
///   instance. An `Err` is logged at error level and refuses the instance.
/// - `handle` → `trellis_handle`: a `fn(&trellis::Msg) -> Result<(), E>` run
///   once per message. An `Err` sets the failure text and returns its code.
/// - `policy` → `trellis_policy`: a
///   `fn(&mut trellis::policy::Inbound) -> Result<trellis::policy::Decision, E>`
///   run before the handler of each message it is attached to (see
///   [`policy`]). An `Err` rejects the message with its code and text.
/// - `policy_response` → `trellis_policy_response`: a
///   `fn(&mut trellis::policy::Response) -> Result<trellis::policy::Decision, E>`
///   that sees the response on its way back. Leave it out when there is
///   nothing to do there: the host then does not hold responses for it.
///
/// `E` is anything that converts into [`Error`] ([`Error`] itself, or
/// [`Status`]). A module must have `handle` or `policy` for the host to load
/// it.
#[macro_export]
macro_rules! plugin {
    (@export init $f:expr) => {
        #[no_mangle]
        pub extern "C" fn trellis_init() -> i32 {
            $crate::__rt::init($f)
        }
    };
    (@export handle $f:expr) => {
        #[no_mangle]
        pub extern "C" fn trellis_handle(subject_len: u32, reply_len: u32, headers_len: u32, data_len: u32) -> i32 {
            $crate::__rt::handle(subject_len, reply_len, headers_len, data_len, $f)
        }
    };
    (@export policy $f:expr) => {
        #[no_mangle]
        pub extern "C" fn trellis_policy(subject_len: u32, reply_len: u32, headers_len: u32, data_len: u32) -> i32 {
            $crate::__rt::policy(subject_len, reply_len, headers_len, data_len, $f)
        }
    };
    (@export policy_response $f:expr) => {
        #[no_mangle]
        pub extern "C" fn trellis_policy_response(status: i32, headers_len: u32, data_len: u32) -> i32 {
            $crate::__rt::policy_response(status, headers_len, data_len, $f)
        }
    };
    (@export $other:ident $f:expr) => {
        compile_error!(concat!(
            "trellis::plugin!: unknown key `",
            stringify!($other),
            "`; the keys are init, handle, policy and policy_response"
        ));
    };
    ($($key:ident : $value:expr),+ $(,)?) => {
        #[no_mangle]
        pub extern "C" fn trellis_abi_v1() {}

        $($crate::plugin!(@export $key $value);)+
    };
}

/// What the exports defined by [`plugin!`] run. Not part of the API.
#[doc(hidden)]
pub mod __rt {
    use crate::policy::{Decision, Inbound, Response};
    use crate::{log, set_error, Error, Msg};

    pub fn init<F, E>(f: F) -> i32
    where
        F: FnOnce() -> Result<(), E>,
        E: Into<Error>,
    {
        match f() {
            Ok(()) => 0,
            Err(e) => {
                let e: Error = e.into();
                let mut text = String::from("init failed: ");
                text.push_str(e.message());
                log::error(&text);
                e.code()
            }
        }
    }

    pub fn handle<F, E>(
        subject_len: u32,
        reply_len: u32,
        headers_len: u32,
        data_len: u32,
        f: F,
    ) -> i32
    where
        F: FnOnce(&Msg) -> Result<(), E>,
        E: Into<Error>,
    {
        let msg = Msg::from_lengths(subject_len, reply_len, headers_len, data_len);
        match f(&msg) {
            Ok(()) => 0,
            Err(e) => fail(e.into()),
        }
    }

    pub fn policy<F, E>(
        subject_len: u32,
        reply_len: u32,
        headers_len: u32,
        data_len: u32,
        f: F,
    ) -> i32
    where
        F: FnOnce(&mut Inbound) -> Result<Decision, E>,
        E: Into<Error>,
    {
        let mut req = Inbound::from_lengths(subject_len, reply_len, headers_len, data_len);
        decide(f(&mut req))
    }

    pub fn policy_response<F, E>(status: i32, headers_len: u32, data_len: u32, f: F) -> i32
    where
        F: FnOnce(&mut Response) -> Result<Decision, E>,
        E: Into<Error>,
    {
        let mut resp = Response::from_parts(status, headers_len, data_len);
        decide(f(&mut resp))
    }

    fn decide<E: Into<Error>>(d: Result<Decision, E>) -> i32 {
        match d {
            Ok(Decision::Continue) => 0,
            Ok(Decision::Reject(e)) => fail(e),
            Err(e) => fail(e.into()),
        }
    }

    fn fail(e: Error) -> i32 {
        set_error(e.message());
        e.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for code in 1..=12 {
            assert_eq!(Status::from_code(code).code(), code);
        }
        assert_eq!(Status::check(-4), Err(Status::Denied));
        assert_eq!(Status::check(17), Ok(17));
        assert_eq!(Status::check(i32::MIN), Err(Status::Unknown(i32::MIN)));
    }

    #[test]
    fn error_codes_are_positive() {
        assert_eq!(Error::new(0, "x").code(), 500);
        assert_eq!(Error::new(-3, "x").code(), 500);
        assert_eq!(Error::bad_request("x").code(), 400);
        assert_eq!(Error::from(Status::Timeout).code(), 504);
        assert_eq!(Error::from(Status::Denied).message(), "permission denied");
        assert_eq!(Error::from(Status::Conflict).code(), 409);
    }

    #[test]
    fn conflict_is_a_known_status() {
        assert_eq!(Status::from_code(12), Status::Conflict);
        assert_eq!(Status::check(-12), Err(Status::Conflict));
        assert_eq!(Status::Conflict.name(), "conflict");
    }

    #[test]
    fn timeouts_round_up_and_stay_positive() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), i32::MAX as u32);
    }

    #[test]
    fn service_error_reads_the_nats_headers() {
        let mut r = Response::default();
        assert_eq!(r.service_error(), None);
        r.headers
            .append("Nats-Service-Error-Code", "404")
            .append("Nats-Service-Error", "no such user");
        assert_eq!(r.service_error(), Some((404, "no such user")));
    }
}

/// The macro must accept every combination of keys; compiling this module is
/// the test (the exports it defines are never called natively).
#[cfg(test)]
mod plugin_macro {
    use crate::policy::{Decision, Inbound, Response};
    use crate::{Error, Msg, Status};

    fn init() -> Result<(), Status> {
        Ok(())
    }
    fn handle(_: &Msg) -> Result<(), Error> {
        Ok(())
    }
    fn policy(_: &mut Inbound) -> Result<Decision, Status> {
        Ok(Decision::Continue)
    }
    fn respond(_: &mut Response) -> Result<Decision, Error> {
        Ok(Decision::reject(500, "no"))
    }

    crate::plugin! {
        init: init,
        handle: handle,
        policy: policy,
        policy_response: respond,
    }

    #[test]
    fn exports_exist() {
        let _: extern "C" fn() = trellis_abi_v1;
        let _: extern "C" fn() -> i32 = trellis_init;
        let _: extern "C" fn(u32, u32, u32, u32) -> i32 = trellis_handle;
        let _: extern "C" fn(u32, u32, u32, u32) -> i32 = trellis_policy;
        let _: extern "C" fn(i32, u32, u32) -> i32 = trellis_policy_response;
    }
}
