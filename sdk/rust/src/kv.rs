//! The plugin's key-value store (ABI.md section 5, `kv_*`).
//!
//! Values live in NATS JetStream KV on the host's bus, so every instance of
//! the plugin and every host sharing the bus sees the same ones: this is where
//! state that must outlive one instance goes (counters, rate limits, caches).
//! Each plugin has its own namespace unless the operator gives several the
//! same one.
//!
//! Keys are 1 to 256 bytes of `A-Z a-z 0-9 - _ = . /`; a bad key is
//! [`Status::InvalidArgument`]. A bus without JetStream gives [`Status::Bus`].
//! A `ttl` of [`Duration::ZERO`] means the value never expires; others are
//! rounded up to whole milliseconds. Every call is a round trip to the bus.
//!
//! ```no_run
//! use std::time::Duration;
//! use trellis::{kv, Status};
//!
//! # fn run() -> Result<(), Status> {
//! kv::set("greeting", b"hello", Duration::ZERO)?;
//! assert_eq!(kv::get("greeting")?, Some(b"hello".to_vec()));
//! let hits = kv::incr("hits", 1, Duration::from_secs(60))?;
//! match kv::compare_and_set("lock", b"", b"mine", Duration::from_secs(5)) {
//!     Ok(()) => { /* we hold the lock */ }
//!     Err(Status::Conflict) => { /* somebody else does */ }
//!     Err(other) => return Err(other),
//! }
//! # let _ = hits;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use crate::{sys, timeout_ms, Status};

/// Returns the value of `key`, or `None` if there is none.
///
/// Errors: [`Status::InvalidArgument`], [`Status::Bus`].
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Status> {
    let found = |r: i32| match Status::check(r) {
        Ok(n) => Ok(Some(n as usize)),
        Err(Status::NotFound) => Ok(None),
        Err(s) => Err(s),
    };
    let mut len = match found(unsafe {
        sys::kv_get(key.as_ptr(), key.len() as u32, std::ptr::null_mut(), 0)
    })? {
        Some(n) => n,
        None => return Ok(None),
    };
    // Another instance may change the value between the calls: read again
    // until the buffer held all of it, so the value is never torn.
    loop {
        let mut buf = vec![0u8; len];
        let n = match found(unsafe {
            sys::kv_get(key.as_ptr(), key.len() as u32, buf.as_mut_ptr(), len as u32)
        })? {
            Some(n) => n,
            None => return Ok(None),
        };
        if n <= len {
            buf.truncate(n);
            return Ok(Some(buf));
        }
        len = n;
    }
}

/// Stores `value` under `key`; it expires after `ttl` (zero: never).
///
/// Errors: [`Status::InvalidArgument`], [`Status::TooLarge`] (over 1 MiB),
/// [`Status::Bus`].
pub fn set(key: &str, value: &[u8], ttl: Duration) -> Result<(), Status> {
    let r = unsafe {
        sys::kv_set(
            key.as_ptr(),
            key.len() as u32,
            value.as_ptr(),
            value.len() as u32,
            timeout_ms(ttl),
        )
    };
    Status::check(r).map(|_| ())
}

/// Atomically adds `delta` to the decimal integer stored under `key` (a
/// missing key counts as 0), across all instances and hosts, and returns the
/// new value. A key this call creates expires after `ttl` (zero: never); later
/// increments keep that expiry.
///
/// Errors: [`Status::InvalidArgument`] (a bad key, or a value that is not an
/// integer), [`Status::Timeout`] (too much contention before the call's
/// deadline), [`Status::Bus`].
pub fn incr(key: &str, delta: i64, ttl: Duration) -> Result<i64, Status> {
    let mut out = [0u8; 8];
    let r = unsafe {
        sys::kv_incr(
            key.as_ptr(),
            key.len() as u32,
            delta,
            timeout_ms(ttl),
            out.as_mut_ptr(),
        )
    };
    Status::check(r)?;
    Ok(i64::from_le_bytes(out))
}

/// Compare-and-set: stores `value` under `key` only if the key's current
/// value is exactly `expected` (empty `expected`: only if the key does not
/// exist), atomically across instances and hosts. The value expires after
/// `ttl` (zero: never).
///
/// Any read-modify-write is safe with it: [`get`], compute, `compare_and_set`,
/// and on [`Status::Conflict`] start again.
///
/// Errors: [`Status::Conflict`] (the value was another one),
/// [`Status::InvalidArgument`], [`Status::TooLarge`], [`Status::Bus`].
pub fn compare_and_set(
    key: &str,
    expected: &[u8],
    value: &[u8],
    ttl: Duration,
) -> Result<(), Status> {
    let r = unsafe {
        sys::kv_cas(
            key.as_ptr(),
            key.len() as u32,
            expected.as_ptr(),
            expected.len() as u32,
            value.as_ptr(),
            value.len() as u32,
            timeout_ms(ttl),
        )
    };
    Status::check(r).map(|_| ())
}

/// Removes `key`; removing a missing key is not an error.
///
/// Errors: [`Status::InvalidArgument`], [`Status::Bus`].
pub fn delete(key: &str) -> Result<(), Status> {
    Status::check(unsafe { sys::kv_delete(key.as_ptr(), key.len() as u32) }).map(|_| ())
}
