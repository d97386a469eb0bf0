//! The Rust SDK's implementation of the Trellis conformance plugin: the same
//! behaviours as sdk/go/conformance, which the host's conformance suite runs
//! against every SDK. It subscribes to `conf.>` and acts on the last token:
//!
//! - `conf.echo`: reply with the payload
//! - `conf.headers`: reply with the value of header X-In as payload, and
//!   headers X-Out (the same value) and X-Subject (the subject)
//! - `conf.publish`: publish the payload to published.conf with header
//!   X-From: conformance, reply "ok"
//! - `conf.request`: request upstream.conf with the payload (500 ms timeout)
//!   and reply "upstream:" + the response; on timeout or no responders fail
//!   with 504 "upstream: timeout" / "upstream: no responders"
//! - `conf.log`: log "level N: <payload>" at levels 1..5, reply "ok"
//! - `conf.error`: fail with 422 "rejected: <payload>"
//! - `conf.config`: reply with the config value named by the payload, or fail
//!   with 404 "no config key <payload>"
//! - `conf.trap`: trap (here: a panic)
//!
//! Build (in this directory):
//!     RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-wasi --offline
//! Output: target/wasm32-wasi/release/conformance_rust.wasm

use std::time::Duration;
use trellis::log::{self, Level};
use trellis::{Error, Headers, Msg, Status};

fn init() -> Result<(), Error> {
    trellis::subscribe("conf.>")?;
    Ok(())
}

/// Replies with `data` when the message expects a reply, as the Go SDK does
/// with a handler's result.
fn answer(msg: &Msg, data: &[u8]) -> Result<(), Error> {
    if !msg.has_reply() {
        return Ok(());
    }
    match trellis::reply(data) {
        Ok(()) | Err(Status::AlreadyReplied) => Ok(()),
        Err(s) => Err(Error::internal(format!("reply: {}", s))),
    }
}

fn handle(msg: &Msg) -> Result<(), Error> {
    let subject = msg.subject();
    let data = msg.data();
    let text = String::from_utf8_lossy(data);
    let what = subject.rsplit('.').next().unwrap_or("");
    match what {
        "echo" => answer(msg, data),
        "headers" => {
            let input = msg.headers().get("X-In").unwrap_or("").to_string();
            let mut h = Headers::new();
            h.insert("X-Out", input.as_str())
                .insert("X-Subject", subject);
            if msg.has_reply() {
                trellis::reply_with_headers(&h, input.as_bytes())
                    .map_err(|s| Error::internal(format!("reply: {}", s)))?;
            }
            Ok(())
        }
        "publish" => {
            let mut h = Headers::new();
            h.insert("X-From", "conformance");
            trellis::publish_with_headers("published.conf", &h, data)
                .map_err(|s| Error::internal(format!("publish: {}", s)))?;
            answer(msg, b"ok")
        }
        "request" => match trellis::request("upstream.conf", data, Duration::from_millis(500)) {
            Ok(resp) => {
                let mut out = b"upstream:".to_vec();
                out.extend_from_slice(resp.data());
                answer(msg, &out)
            }
            Err(Status::Timeout) => Err(Error::new(504, "upstream: timeout")),
            Err(Status::NoResponders) => Err(Error::new(504, "upstream: no responders")),
            Err(s) => Err(Error::internal(format!("upstream: {}", s))),
        },
        "log" => {
            for level in [
                Level::Trace,
                Level::Debug,
                Level::Info,
                Level::Warn,
                Level::Error,
            ] {
                log::log(level, &format!("level {}: {}", level as i32, text));
            }
            answer(msg, b"ok")
        }
        "error" => Err(Error::new(422, format!("rejected: {}", text))),
        "config" => match trellis::config_bytes(&text) {
            Some(v) => answer(msg, &v),
            None => Err(Error::not_found(format!("no config key {}", text))),
        },
        "trap" => panic!("conformance: trap requested"),
        _ => Err(Error::not_found(format!("unknown behaviour {}", subject))),
    }
}

trellis::plugin! { init: init, handle: handle }
