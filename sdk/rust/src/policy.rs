//! Traffic policies (ABI.md section 5a).
//!
//! A policy runs before the handler of every message the operator attaches it
//! to (NATS messages, or HTTP requests through the host's ingress). It reads
//! the message like a handler, and decides: let it go on ([`Decision::Continue`],
//! possibly after [`Inbound::set_header`], [`Inbound::set_data`] or
//! [`Inbound::route`]), answer it itself ([`Inbound::answer`]), or reject it
//! ([`Decision::reject`]). A policy may also look at the response on its way
//! back ([`Response`]).
//!
//! ```no_run
//! use trellis::policy::{Decision, Inbound, Response};
//! use trellis::Error;
//!
//! fn policy(req: &mut Inbound) -> Result<Decision, Error> {
//!     match req.header("Authorization") {
//!         Some(token) if token == "Bearer let-me-in" => {
//!             req.set_header("X-User", "ada")?;
//!             Ok(Decision::Continue)
//!         }
//!         _ => {
//!             trellis::response_header("WWW-Authenticate", "Bearer")?;
//!             Ok(Decision::reject(401, "no valid token"))
//!         }
//!     }
//! }
//!
//! fn on_response(resp: &mut Response) -> Result<Decision, Error> {
//!     if resp.is_success() {
//!         trellis::response_header("X-Checked", "yes")?;
//!     }
//!     Ok(Decision::Continue)
//! }
//!
//! trellis::plugin! { policy: policy, policy_response: on_response }
//! ```

use std::fmt;
use std::ops::Deref;

use crate::{into_string, read_exact, sys, Error, Headers, Lazy, Msg, Status};

/// What a policy decides about a message or a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the message go on: to the next policy, then the handler (or where
    /// [`Inbound::route`] sent it); or let the response go back unchanged
    /// except for what the policy set.
    Continue,
    /// Refuse it: a request gets an error reply with the error's code
    /// (`Nats-Service-Error-Code`) and text (`Nats-Service-Error`), plus the
    /// [`response_header`](crate::response_header)s; over HTTP the response
    /// has that status.
    Reject(Error),
}

impl Decision {
    /// Returns a rejection with an HTTP-like `status` (401, 403, 429...; 0 or
    /// less becomes 403) and a `reason` the caller sees, which must not leak
    /// secrets.
    pub fn reject(status: i32, reason: impl Into<String>) -> Decision {
        Decision::Reject(Error::new(if status > 0 { status } else { 403 }, reason))
    }
}

/// A message a policy decides on: a NATS message, or an HTTP request that
/// came through the host's ingress (then [`Inbound::is_http`] is true and
/// [`method`](Inbound::method), [`path`](Inbound::path),
/// [`query`](Inbound::query) and [`remote_addr`](Inbound::remote_addr) are
/// set).
///
/// It dereferences to [`Msg`] for the subject, headers and payload, which
/// reflect the policy's own [`set_header`](Inbound::set_header) and
/// [`set_data`](Inbound::set_data). Every field is read from the host the
/// first time it is asked for.
pub struct Inbound {
    msg: Msg,
    method: Lazy<String>,
    path: Lazy<String>,
    query: Lazy<String>,
    remote_addr: Lazy<String>,
}

fn read_text(field: i32) -> String {
    let n = unsafe { sys::read(field, 0, std::ptr::null_mut(), 0) };
    if n <= 0 {
        return String::new();
    }
    into_string(read_exact(field, n as usize))
}

fn field_len(field: i32) -> u32 {
    let n = unsafe { sys::read(field, 0, std::ptr::null_mut(), 0) };
    if n < 0 {
        0
    } else {
        n as u32
    }
}

impl Inbound {
    /// Returns the message the host announced with these field lengths (the
    /// arguments of `trellis_policy`). [`plugin!`](crate::plugin) calls it
    /// for you.
    pub fn from_lengths(
        subject_len: u32,
        reply_len: u32,
        headers_len: u32,
        data_len: u32,
    ) -> Inbound {
        Inbound {
            msg: Msg::from_lengths(subject_len, reply_len, headers_len, data_len),
            method: Lazy::new(),
            path: Lazy::new(),
            query: Lazy::new(),
            remote_addr: Lazy::new(),
        }
    }

    /// Returns the message.
    pub fn msg(&self) -> &Msg {
        &self.msg
    }

    /// Returns the HTTP method, or `""` for a NATS message.
    pub fn method(&self) -> &str {
        self.method.get_or_init(|| read_text(sys::field::METHOD))
    }

    /// Returns the URL path of an HTTP request (`/orders/42`), or `""`.
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| read_text(sys::field::PATH))
    }

    /// Returns the raw query string of an HTTP request, without `?`, or `""`.
    pub fn query(&self) -> &str {
        self.query.get_or_init(|| read_text(sys::field::QUERY))
    }

    /// Returns the HTTP client's address, `host:port`, or `""`.
    pub fn remote_addr(&self) -> &str {
        self.remote_addr
            .get_or_init(|| read_text(sys::field::REMOTE_ADDR))
    }

    /// Reports whether the message is an HTTP request from the ingress.
    pub fn is_http(&self) -> bool {
        !self.method().is_empty()
    }

    /// Sets header `name` of the message that goes on to the handler,
    /// replacing its values; an empty `value` removes it. (A JWT policy passes
    /// verified claims on this way.)
    ///
    /// Errors: [`Status::InvalidArgument`] (an empty name, CR or LF in either),
    /// [`Status::WrongPhase`].
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Status> {
        crate::call_with_strs(name, value, |n, nl, v, vl| unsafe {
            sys::set_header(n, nl, v, vl)
        })?;
        // The host re-encoded the headers: read them afresh when asked.
        self.msg.lens[2] = field_len(sys::field::HEADERS);
        self.msg.headers.reset();
        Ok(())
    }

    /// Replaces the payload the handler gets.
    ///
    /// Errors: [`Status::WrongPhase`].
    pub fn set_data(&mut self, data: &[u8]) -> Result<(), Status> {
        Status::check(unsafe { sys::set_data(data.as_ptr(), data.len() as u32) })?;
        self.msg.lens[3] = data.len() as u32;
        self.msg.data.set(data.to_vec());
        Ok(())
    }

    /// Sends the message to `subject` instead of this route's handler: as a
    /// request if the caller waits for an answer (the operator must have
    /// granted `subject` for requests), else as an event (granted for
    /// publishing). Return [`Decision::Continue`] after it.
    ///
    /// Errors: [`Status::InvalidSubject`], [`Status::Denied`],
    /// [`Status::WrongPhase`].
    pub fn route(&self, subject: &str) -> Result<(), Status> {
        Status::check(unsafe { sys::set_subject(subject.as_ptr(), subject.len() as u32) })
            .map(|_| ())
    }

    /// Answers the message from the policy, so it goes no further, and
    /// returns the decision to return, [`Decision::Continue`]:
    /// `return Ok(req.answer(b"cached")?);`
    ///
    /// Errors: as [`reply`](crate::reply).
    pub fn answer(&self, data: &[u8]) -> Result<Decision, Status> {
        crate::reply(data).map(|()| Decision::Continue)
    }

    /// Answers with headers and data; as [`Inbound::answer`].
    pub fn answer_with_headers(&self, headers: &Headers, data: &[u8]) -> Result<Decision, Status> {
        crate::reply_with_headers(headers, data).map(|()| Decision::Continue)
    }
}

impl Deref for Inbound {
    type Target = Msg;

    fn deref(&self) -> &Msg {
        &self.msg
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound").field("msg", &self.msg).finish()
    }
}

/// The response a policy sees in its response phase, on its way back to the
/// caller (after the handler, in reverse order of the policy chain).
pub struct Response {
    status: i32,
    lens: [u32; 2],
    headers: Lazy<Headers>,
    data: Lazy<Vec<u8>>,
}

impl Response {
    /// Returns the response the host announced with these arguments of
    /// `trellis_policy_response`. [`plugin!`](crate::plugin) calls it for you.
    pub fn from_parts(status: i32, headers_len: u32, data_len: u32) -> Response {
        Response {
            status,
            lens: [headers_len, data_len],
            headers: Lazy::new(),
            data: Lazy::new(),
        }
    }

    /// Returns 0 for a success, else the error status.
    pub fn status(&self) -> i32 {
        self.status
    }

    /// Reports whether the response is a success.
    pub fn is_success(&self) -> bool {
        self.status == 0
    }

    /// Returns the response's headers.
    pub fn headers(&self) -> &Headers {
        self.headers.get_or_init(|| {
            let raw = read_exact(sys::field::RESULT_HEADERS, self.lens[0] as usize);
            Headers::parse(&raw).unwrap_or_default()
        })
    }

    /// Returns the first value of the response's header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }

    /// Returns the response's payload.
    pub fn data(&self) -> &[u8] {
        self.data
            .get_or_init(|| read_exact(sys::field::RESULT_DATA, self.lens[1] as usize))
    }

    /// Returns the first value of header `name` of the request this response
    /// answers, as the policies before left it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        crate::read_header(name).ok().map(into_string)
    }

    /// Replaces the response's payload.
    ///
    /// Errors: [`Status::WrongPhase`].
    pub fn set_data(&mut self, data: &[u8]) -> Result<(), Status> {
        Status::check(unsafe { sys::set_data(data.as_ptr(), data.len() as u32) })?;
        self.lens[1] = data.len() as u32;
        self.data.set(data.to_vec());
        Ok(())
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers_len", &self.lens[0])
            .field("data_len", &self.lens[1])
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_keeps_a_positive_status() {
        assert_eq!(
            Decision::reject(429, "slow down"),
            Decision::Reject(Error::new(429, "slow down"))
        );
        assert_eq!(
            Decision::reject(0, "no"),
            Decision::Reject(Error::new(403, "no"))
        );
        assert_eq!(
            Decision::reject(-1, "no"),
            Decision::Reject(Error::new(403, "no"))
        );
    }

    #[test]
    fn response_knows_success_without_the_host() {
        let ok = Response::from_parts(0, 0, 0);
        assert!(ok.is_success());
        assert!(ok.data().is_empty());
        assert!(ok.headers().is_empty());
        let failed = Response::from_parts(503, 0, 0);
        assert!(!failed.is_success());
        assert_eq!(failed.status(), 503);
    }
}
