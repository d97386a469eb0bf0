//! The raw host functions of ABI.md section 5, exactly as the host defines
//! them: import module `trellis`, every parameter and result an `i32`.
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
    /// Headers of the response to this call's last successful `request`.
    pub const RESULT_HEADERS: i32 = 4;
    /// Payload of that response.
    pub const RESULT_DATA: i32 = 5;
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
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
