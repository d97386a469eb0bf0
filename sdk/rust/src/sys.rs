//! The raw host functions of ABI.md section 5, exactly as the host defines
//! them: import module `trellis`, every parameter and result an `i32`, except
//! the `delta` of [`kv_incr`], an `i64`.
//!
//! Each returns a value `>= 0` on success (0, or a length where the ABI says
//! so) and the negated [`Status`](crate::Status) code on failure. Pointers
//! must lie wholly inside the plugin's memory: the host treats a pointer that
//! does not as a trap. The safe functions at the crate root are built on these;
//! use these only for what they do not cover (reading a field in chunks, for
//! instance).
//!
//! Outside WebAssembly (`cargo test` on the build machine) the functions exist
//! so that code using the SDK compiles and can be unit-tested, but calling one
//! panics: there is no host.

/// Message field numbers for [`read`] (ABI.md section 4).
pub mod field {
    /// The subject the message arrived on.
    pub const SUBJECT: i32 = 0;
    /// Its reply subject, empty if none.
    pub const REPLY: i32 = 1;
    /// Its headers, `Name: value\r\n` per value, empty if none.
    pub const HEADERS: i32 = 2;
    /// Its payload.
    pub const DATA: i32 = 3;
    /// Headers of the response to this call's last successful `request`; in
    /// `trellis_policy_response`, the response's headers.
    pub const RESULT_HEADERS: i32 = 4;
    /// Payload of that response; in `trellis_policy_response`, the response's.
    pub const RESULT_DATA: i32 = 5;
    /// HTTP method of a request that came through the HTTP ingress; empty for
    /// NATS messages.
    pub const METHOD: i32 = 6;
    /// Its URL path (`/orders/42`).
    pub const PATH: i32 = 7;
    /// Its raw query string, without `?`.
    pub const QUERY: i32 = 8;
    /// The client's address, `host:port`.
    pub const REMOTE_ADDR: i32 = 9;
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "trellis")]
extern "C" {
    /// Copies bytes `[offset, offset + buf_len)` of `field` into `buf`;
    /// returns the field's total length.
    pub fn read(field: i32, offset: u32, buf: *mut u8, buf_len: u32) -> i32;
    /// Copies the first value of header `name` into `buf`; returns its length.
    pub fn header(name: *const u8, name_len: u32, buf: *mut u8, buf_len: u32) -> i32;
    /// Replies to the message being handled.
    pub fn reply(headers: *const u8, headers_len: u32, data: *const u8, data_len: u32) -> i32;
    /// Publishes a message.
    pub fn publish(
        subject: *const u8,
        subject_len: u32,
        headers: *const u8,
        headers_len: u32,
        data: *const u8,
        data_len: u32,
    ) -> i32;
    /// Sends a request and waits for the response; returns its data length.
    pub fn request(
        subject: *const u8,
        subject_len: u32,
        headers: *const u8,
        headers_len: u32,
        data: *const u8,
        data_len: u32,
        timeout_ms: u32,
    ) -> i32;
    /// Writes to the plugin's logger at `level` (1 trace … 5 error).
    pub fn log(level: i32, msg: *const u8, msg_len: u32) -> i32;
    /// Copies the operator's config value `key` into `buf`; returns its length.
    pub fn config(key: *const u8, key_len: u32, buf: *mut u8, buf_len: u32) -> i32;
    /// Declares a subject the plugin handles (only inside `trellis_init`).
    pub fn subscribe(subject: *const u8, subject_len: u32, queue: *const u8, queue_len: u32)
        -> i32;
    /// Sets the description of the failure `trellis_handle` is about to return.
    pub fn error(msg: *const u8, msg_len: u32) -> i32;
    /// In a policy: sets header `name` of the message that goes on
    /// (`value_len` 0 removes it).
    pub fn set_header(name: *const u8, name_len: u32, value: *const u8, value_len: u32) -> i32;
    /// In a policy: replaces the payload the handler gets; in a response
    /// phase, the response's payload.
    pub fn set_data(data: *const u8, data_len: u32) -> i32;
    /// In a policy: sends the message to `subject` instead of the handler.
    pub fn set_subject(subject: *const u8, subject_len: u32) -> i32;
    /// Adds a header to the response the caller gets.
    pub fn response_header(name: *const u8, name_len: u32, value: *const u8, value_len: u32)
        -> i32;
    /// Copies the value of `key` into `buf`; returns its total length.
    pub fn kv_get(key: *const u8, key_len: u32, buf: *mut u8, buf_len: u32) -> i32;
    /// Stores `value` under `key`, expiring after `ttl_ms` (0: never).
    pub fn kv_set(
        key: *const u8,
        key_len: u32,
        value: *const u8,
        value_len: u32,
        ttl_ms: u32,
    ) -> i32;
    /// Adds `delta` to the integer under `key`; writes the new value, 8 bytes
    /// little-endian, at `out`.
    pub fn kv_incr(key: *const u8, key_len: u32, delta: i64, ttl_ms: u32, out: *mut u8) -> i32;
    /// Stores `value` under `key` only if its value is `expected`
    /// (`expected_len` 0: only if it does not exist).
    pub fn kv_cas(
        key: *const u8,
        key_len: u32,
        expected: *const u8,
        expected_len: u32,
        value: *const u8,
        value_len: u32,
        ttl_ms: u32,
    ) -> i32;
    /// Removes `key`.
    pub fn kv_delete(key: *const u8, key_len: u32) -> i32;
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    #![allow(clippy::missing_safety_doc, unused_variables)]

    fn no_host(name: &str) -> ! {
        panic!(
            "trellis::sys::{}: host functions exist only inside a wasm32 plugin",
            name
        )
    }

    /// See the wasm32 declaration.
    pub unsafe fn read(field: i32, offset: u32, buf: *mut u8, buf_len: u32) -> i32 {
        no_host("read")
    }
    /// See the wasm32 declaration.
    pub unsafe fn header(name: *const u8, name_len: u32, buf: *mut u8, buf_len: u32) -> i32 {
        no_host("header")
    }
    /// See the wasm32 declaration.
    pub unsafe fn reply(
        headers: *const u8,
        headers_len: u32,
        data: *const u8,
        data_len: u32,
    ) -> i32 {
        no_host("reply")
    }
    /// See the wasm32 declaration.
    pub unsafe fn publish(
        subject: *const u8,
        subject_len: u32,
        headers: *const u8,
        headers_len: u32,
        data: *const u8,
        data_len: u32,
    ) -> i32 {
        no_host("publish")
    }
    /// See the wasm32 declaration.
    pub unsafe fn request(
        subject: *const u8,
        subject_len: u32,
        headers: *const u8,
        headers_len: u32,
        data: *const u8,
        data_len: u32,
        timeout_ms: u32,
    ) -> i32 {
        no_host("request")
    }
    /// See the wasm32 declaration.
    pub unsafe fn log(level: i32, msg: *const u8, msg_len: u32) -> i32 {
        no_host("log")
    }
    /// See the wasm32 declaration.
    pub unsafe fn config(key: *const u8, key_len: u32, buf: *mut u8, buf_len: u32) -> i32 {
        no_host("config")
    }
    /// See the wasm32 declaration.
    pub unsafe fn subscribe(
        subject: *const u8,
        subject_len: u32,
        queue: *const u8,
        queue_len: u32,
    ) -> i32 {
        no_host("subscribe")
    }
    /// See the wasm32 declaration.
    pub unsafe fn error(msg: *const u8, msg_len: u32) -> i32 {
        no_host("error")
    }
    /// See the wasm32 declaration.
    pub unsafe fn set_header(
        name: *const u8,
        name_len: u32,
        value: *const u8,
        value_len: u32,
    ) -> i32 {
        no_host("set_header")
    }
    /// See the wasm32 declaration.
    pub unsafe fn set_data(data: *const u8, data_len: u32) -> i32 {
        no_host("set_data")
    }
    /// See the wasm32 declaration.
    pub unsafe fn set_subject(subject: *const u8, subject_len: u32) -> i32 {
        no_host("set_subject")
    }
    /// See the wasm32 declaration.
    pub unsafe fn response_header(
        name: *const u8,
        name_len: u32,
        value: *const u8,
        value_len: u32,
    ) -> i32 {
        no_host("response_header")
    }
    /// See the wasm32 declaration.
    pub unsafe fn kv_get(key: *const u8, key_len: u32, buf: *mut u8, buf_len: u32) -> i32 {
        no_host("kv_get")
    }
    /// See the wasm32 declaration.
    pub unsafe fn kv_set(
        key: *const u8,
        key_len: u32,
        value: *const u8,
        value_len: u32,
        ttl_ms: u32,
    ) -> i32 {
        no_host("kv_set")
    }
    /// See the wasm32 declaration.
    pub unsafe fn kv_incr(
        key: *const u8,
        key_len: u32,
        delta: i64,
        ttl_ms: u32,
        out: *mut u8,
    ) -> i32 {
        no_host("kv_incr")
    }
    /// See the wasm32 declaration.
    pub unsafe fn kv_cas(
        key: *const u8,
        key_len: u32,
        expected: *const u8,
        expected_len: u32,
        value: *const u8,
        value_len: u32,
        ttl_ms: u32,
    ) -> i32 {
        no_host("kv_cas")
    }
    /// See the wasm32 declaration.
    pub unsafe fn kv_delete(key: *const u8, key_len: u32) -> i32 {
        no_host("kv_delete")
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
