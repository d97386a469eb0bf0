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
//! - `conf.kv`: payload "key=value": kv_set(key, value, no TTL), then reply
//!   with kv_get(key); "incr:key": kv_incr(key, 1) twice, reply with the
//!   second result in decimal; "cas:key": kv_cas(key, absent, "first"), then
//!   kv_cas(key, absent, "second"), which must fail with CONFLICT: reply
//!   "conflict", else fail with 500
//! - `conf.respheader`: response_header("X-Resp", "yes"), reply "ok"
//!
//! The same module is a policy (`trellis_policy`), acting on the message's
//! header X-Policy:
//!
//! - absent, "allow": continue
//! - "reject": reject with 403 "rejected by conformance policy"
//! - "answer": reply "answered by conformance policy"
//! - "header": set header X-In: from-policy, continue
//! - "route": send the message to conf.echo, continue
//! - "data": replace the payload with "replaced", continue
//! - "http": for an HTTP request, replace the payload with
//!   "<method> <path>?<query> from <remote address>" and continue; a NATS
//!   message goes on unchanged
//! - anything else: reject with 400 "unknown policy action <value>"
//!
//! and its response phase (`trellis_policy_response`) appends " [response]" to
//! a successful response's payload when the request has X-Response: append.
//!
//! Build (in this directory):
//!     RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-wasi --offline
//! Output: target/wasm32-wasi/release/conformance_rust.wasm

use std::time::Duration;
use trellis::log::{self, Level};
use trellis::policy::{Decision, Inbound, Response};
use trellis::{kv, Error, Headers, Msg, Status};

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
        "kv" => kv_behaviour(msg, &text),
        "respheader" => {
            trellis::response_header("X-Resp", "yes").map_err(|s| failed("response_header", s))?;
            answer(msg, b"ok")
        }
        _ => Err(Error::not_found(format!("unknown behaviour {}", subject))),
    }
}

/// Fails with 500 "<call>: trellis: <status name>".
fn failed(call: &str, s: Status) -> Error {
    Error::internal(format!("{}: {}", call, s))
}

fn kv_behaviour(msg: &Msg, payload: &str) -> Result<(), Error> {
    if let Some(key) = payload.strip_prefix("incr:") {
        kv::incr(key, 1, Duration::ZERO).map_err(|s| failed("kv incr", s))?;
        let n = kv::incr(key, 1, Duration::ZERO).map_err(|s| failed("kv incr", s))?;
        return answer(msg, n.to_string().as_bytes());
    }
    if let Some(key) = payload.strip_prefix("cas:") {
        kv::compare_and_set(key, b"", b"first", Duration::ZERO).map_err(|s| failed("kv cas", s))?;
        return match kv::compare_and_set(key, b"", b"second", Duration::ZERO) {
            Err(Status::Conflict) => answer(msg, b"conflict"),
            Err(s) => Err(failed("kv cas", s)),
            Ok(()) => Err(Error::internal(
                "kv cas: the second compare-and-set did not conflict",
            )),
        };
    }
    let (key, value) = payload.split_once('=').ok_or_else(|| {
        Error::bad_request("kv: the payload is not key=value, incr:key or cas:key")
    })?;
    kv::set(key, value.as_bytes(), Duration::ZERO).map_err(|s| failed("kv set", s))?;
    match kv::get(key) {
        Ok(Some(v)) => answer(msg, &v),
        Ok(None) => Err(failed("kv get", Status::NotFound)),
        Err(s) => Err(failed("kv get", s)),
    }
}

fn policy(req: &mut Inbound) -> Result<Decision, Error> {
    let action = req.header("X-Policy").unwrap_or_default();
    match action.as_str() {
        "" | "allow" => Ok(Decision::Continue),
        "reject" => Ok(Decision::reject(403, "rejected by conformance policy")),
        "answer" => req
            .answer(b"answered by conformance policy")
            .map_err(|s| failed("reply", s)),
        "header" => {
            req.set_header("X-In", "from-policy")
                .map_err(|s| failed("set_header", s))?;
            Ok(Decision::Continue)
        }
        "route" => {
            req.route("conf.echo")
                .map_err(|s| failed("set_subject", s))?;
            Ok(Decision::Continue)
        }
        "data" => {
            req.set_data(b"replaced")
                .map_err(|s| failed("set_data", s))?;
            Ok(Decision::Continue)
        }
        "http" => {
            if !req.is_http() {
                return Ok(Decision::Continue);
            }
            let text = format!(
                "{} {}?{} from {}",
                req.method(),
                req.path(),
                req.query(),
                req.remote_addr()
            );
            req.set_data(text.as_bytes())
                .map_err(|s| failed("set_data", s))?;
            Ok(Decision::Continue)
        }
        other => Ok(Decision::reject(
            400,
            format!("unknown policy action {}", other),
        )),
    }
}

fn respond(resp: &mut Response) -> Result<Decision, Error> {
    if !resp.is_success() || resp.request_header("X-Response").as_deref() != Some("append") {
        return Ok(Decision::Continue);
    }
    let mut data = resp.data().to_vec();
    data.extend_from_slice(b" [response]");
    resp.set_data(&data).map_err(|s| failed("set_data", s))?;
    Ok(Decision::Continue)
}

trellis::plugin! {
    init: init,
    handle: handle,
    policy: policy,
    policy_response: respond,
}
