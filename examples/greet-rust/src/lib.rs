//! greet: answers every request on subject `greet` with `Hello, <payload>!`.
//! The operator may change the greeting word with the config key `greeting`.
//! It joins queue group `greet`, as the greet examples in the other languages
//! do, so each request is answered by one of them.
//!
//! Build (in this directory):
//!     RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-wasi --offline
//!     cp target/wasm32-wasi/release/greet_rust.wasm greet-rust.wasm

use trellis::{Error, Msg};

fn init() -> Result<(), Error> {
    trellis::subscribe_queue("greet", "greet")?;
    Ok(())
}

fn handle(msg: &Msg) -> Result<(), Error> {
    if !msg.has_reply() {
        return Ok(()); // a plain publish: nobody to answer
    }
    let greeting = trellis::config_bytes("greeting").unwrap_or_else(|| b"Hello".to_vec());
    // The payload is used as bytes, so a name that is not UTF-8 comes back
    // exactly as it was sent.
    let name = msg.data();
    let mut out = Vec::with_capacity(greeting.len() + 2 + name.len() + 1);
    out.extend_from_slice(&greeting);
    out.extend_from_slice(b", ");
    out.extend_from_slice(name);
    out.push(b'!');
    trellis::reply(&out)?;
    Ok(())
}

trellis::plugin! { init: init, handle: handle }
