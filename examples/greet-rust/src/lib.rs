//! greet: answers every request on subject `greet` with `Hello, <payload>!`.
//!
//! Build (in this directory):
//!     RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-wasi --offline
//! Output: target/wasm32-wasi/release/greet_rust.wasm

use trellis::{Error, Msg};

fn init() -> Result<(), Error> {
    trellis::subscribe("greet")?;
    Ok(())
}

fn handle(msg: &Msg) -> Result<(), Error> {
    if !msg.has_reply() {
        return Ok(()); // a plain publish: nobody to answer
    }
    // The payload is used as bytes, so a name that is not UTF-8 comes back
    // exactly as it was sent.
    let name = msg.data();
    let mut out = Vec::with_capacity(name.len() + 8);
    out.extend_from_slice(b"Hello, ");
    out.extend_from_slice(name);
    out.push(b'!');
    trellis::reply(&out)?;
    Ok(())
}

trellis::plugin! { init: init, handle: handle }
